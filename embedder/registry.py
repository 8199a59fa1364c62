"""Versioned, immutable model folders: publish never overwrites or deletes what an index may still use.

Layout of a published model NAME (under ``models/`` or any root)::

    NAME/current          one line: the version that serves by default (replaced atomically)
    NAME/<version>/       an immutable model folder; <version> = the first 12 hex of its weights' sha256

``publish`` copies a model folder aside, fsyncs it, renames it into place (so a reader sees all of it or
none of it) and then moves the ``current`` pointer; re-publishing the same weights is a no-op. A model
spec (``MOESEARCH_MODEL``, ``--model``) is a model folder path, a published NAME (follows ``current``),
or ``NAME@<version>`` (one exact version). A plain folder (``NAME/config.json``, the pre-registry layout)
still resolves to itself. Torch-free: the runtime, the indexer and the app read it.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from .settings import BUILT_MODELS, DEFAULT_MODEL, MODELS_DIR, SHIPPED_MODEL, sha256

CURRENT = "current"
WEIGHTS = "model.safetensors"
VERSION_CHARS = 12
_version_cache: dict[tuple[str, int, int], str] = {}


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: the exact folder, its version (weights hash prefix) and the published name, if any."""

    folder: Path
    version: str
    name: str | None = None  # the registry name when the folder is a published version

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}" if self.name else f"{self.folder.name}@{self.version}"


def weights_version(folder: str | os.PathLike) -> str:
    """Content address of a model folder: the first 12 hex digits of its weights' sha256 (cached by mtime)."""
    path = Path(folder) / WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; {folder} is not a model folder")
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _version_cache:
        _version_cache[key] = sha256(path)[:VERSION_CHARS]
    return _version_cache[key]


def _manifest_version(folder: Path) -> str:
    """The version of a folder shipped without torch weights (ONNX only): from the export manifest."""
    import json

    manifest = folder / "onnx" / "manifest.json"
    sha = json.loads(manifest.read_text()).get("weights_sha256", "") if manifest.is_file() else ""
    return sha[:VERSION_CHARS]


def is_registry(root: Path) -> bool:
    return (root / CURRENT).is_file()


def current_version(root: str | os.PathLike) -> str:
    root = Path(root)
    version = (root / CURRENT).read_text().strip()
    if not (root / version / "config.json").is_file():
        raise FileNotFoundError(f"{root / CURRENT} names version {version!r}, which is not in {root}")
    return version


def versions(root: str | os.PathLike) -> list[str]:
    """Published versions of one model, oldest first."""
    root = Path(root)
    found = [p for p in root.iterdir() if p.is_dir() and (p / "config.json").is_file() and not p.name.startswith(".")]
    return [p.name for p in sorted(found, key=lambda p: (p.stat().st_mtime, p.name))]


def resolve(spec: str | os.PathLike, models_dir: Path = MODELS_DIR) -> ModelRef:
    """A model spec -> the exact folder it means now. See the module docstring for the accepted forms."""
    text = str(spec)
    name, _, version = text.partition("@") if "@" in Path(text).name else (text, "", "")
    root = Path(name).expanduser()
    if not root.is_absolute() and not root.exists() and (models_dir / root).exists():
        root = models_dir / root
    if is_registry(root):
        version = version or current_version(root)
        folder = root / version
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{root}: no version {version!r}; published: {versions(root)}")
        return ModelRef(folder, version, root.name)
    if version:
        raise FileNotFoundError(f"{root}: not a published model (no {CURRENT} pointer), so @{version} means nothing")
    if (root / "config.json").is_file() or (root / "moesearch.json").is_file():
        parent = root.parent
        name = parent.name if is_registry(parent) and root.name in versions(parent) else None
        return ModelRef(root, weights_version(root) if (root / WEIGHTS).is_file() else _manifest_version(root), name)
    raise FileNotFoundError(f"{spec}: no model there (a model folder, a published name under {models_dir}, "
                            "or NAME@VERSION)")


def _fsync_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def set_current(root: str | os.PathLike, version: str) -> None:
    """Point ``root/current`` at an existing version (atomic replace: readers see the old or the new one)."""
    root = Path(root)
    if not (root / version / "config.json").is_file():
        raise FileNotFoundError(f"{root}: no version {version!r}; published: {versions(root)}")
    tmp = root / f".{CURRENT}.{uuid.uuid4().hex}"
    with open(tmp, "w") as f:
        f.write(version + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, root / CURRENT)
    _fsync_dir(root)


def publish(src: str | os.PathLike, root: str | os.PathLike, *, make_current: bool = True,
            ignore: tuple[str, ...] = ("onnx", "trainer_state.pt")) -> ModelRef:
    """Publish the model folder ``src`` as a new immutable version of ``root`` (a registry folder)."""
    src, root = Path(src), Path(root)
    if (root / "config.json").is_file():
        raise ValueError(f"{root} is a plain model folder, not a registry; publish under another name or move it "
                         f"into {root}/<version>/ with a {CURRENT} file")
    version = weights_version(src)
    dst = root / version
    root.mkdir(parents=True, exist_ok=True)
    if not (dst / "config.json").is_file():
        tmp = root / f".publishing-{version}-{uuid.uuid4().hex[:8]}"
        try:
            shutil.copytree(src, tmp, ignore=shutil.ignore_patterns(*ignore))
            if weights_version(tmp) != version:
                raise RuntimeError(f"{src}: weights changed while publishing; publish again")
            _fsync_tree(tmp)
            os.rename(tmp, dst)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # never leave a half-written version behind
            raise
        _fsync_dir(root)
    if make_current:
        set_current(root, version)
    return ModelRef(dst, version, root.name)


def removable(root: str | os.PathLike, in_use: set[str]) -> list[str]:
    """Versions that neither ``current`` nor an index (``in_use``) needs: what a garbage collection may drop."""
    root = Path(root)
    keep = set(in_use) | {current_version(root)}
    return [v for v in versions(root) if v not in keep]


def remove_version(root: str | os.PathLike, version: str) -> None:
    root = Path(root)
    if version == current_version(root):
        raise ValueError(f"{root}: {version} is current; point {CURRENT} elsewhere first")
    shutil.rmtree(root / version)


def default_model_dir() -> Path:
    """The exact model folder to serve: ``MOESEARCH_MODEL`` if set (a folder, a name under models/, a published
    name that follows its ``current`` pointer, or NAME@VERSION; see the module doc), else the shipped model's
    current version, else the built default (`DEFAULT_MODEL`)."""
    env = os.environ.get("MOESEARCH_MODEL")
    if env:
        name, built = Path(env).name, MODELS_DIR / Path(env).name
        if name in BUILT_MODELS and Path(env).resolve() in (built.resolve(), Path(name).resolve()) \
                and not built.exists():
            return built  # one of the models built at install, not built yet: `embedder prepare` builds it
        return resolve(env).folder
    if (SHIPPED_MODEL / "current").is_file() or (SHIPPED_MODEL / "config.json").is_file():
        return resolve(SHIPPED_MODEL).folder
    return DEFAULT_MODEL
