"""Inputs to ingest (paths, folders, uploads), reading them safely, and kept copies for download."""

from __future__ import annotations

import os
import shutil
import stat
import unicodedata
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from .extract import ExtractError
from .formats import SUPPORTED_SUFFIXES
from .sniff import ENCRYPTED, sniff


@dataclass(frozen=True)
class Stored:
    """A document already in an index (reindex): its manifest record and its pages rebuilt from its chunks."""

    record: dict = field(hash=False)
    pages: Callable[[], list[tuple[int, str]]] = field(hash=False)  # raises ValueError if chunks are missing


MAX_NAME = 180  # characters of a stored upload name (the original is kept in the document's notes)
SNIFF_BYTES = 8192  # the first bytes of a file without an extension that tell whether it is a document
BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def safe_name(raw: str) -> str:
    """An upload's name made safe to store and show: control, format (bidi, zero-width) and separator characters
    out (``/`` and ``\\`` become ``_``, so no name is cut and none is a path), no leading dots, at most
    ``MAX_NAME`` characters with the extension kept; ``unnamed`` if nothing is left."""
    text = unicodedata.normalize("NFC", str(raw))
    text = "".join(c for c in text if c not in BIDI and unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Co",
                                                                                          "Zl", "Zp"))
    text = text.replace("/", "_").replace("\\", "_")
    text = " ".join(text.split())  # tabs, runs of spaces
    text = text.lstrip(". ").rstrip(". ")
    if len(text) > MAX_NAME:
        stem, dot, suffix = text.rpartition(".")
        suffix = suffix[:16] if dot and stem else ""
        text = text[:MAX_NAME - len(suffix) - 1].rstrip(". ") + "." + suffix if suffix else text[:MAX_NAME]
    return text or "unnamed"


@dataclass(frozen=True)
class Source:
    """One thing to ingest, the one type from the API's edge inward: a file on disk (``Source.file``), an upload
    (``Source.upload``: a plain file name and its bytes, or ``Source.spooled``: bytes in a spool file) or, for a
    reindex, a document rebuilt from its stored chunks (``stored``).  ``key`` identifies "the same file" across
    versions (absolute path, or the upload's name) for replace-on-change; ``original`` is an upload's name as
    given when it had to be made safe (``safe_name``)."""

    name: str
    key: str
    fs_path: Path | None = None
    data: bytes | None = None
    skip: str | None = None  # set for folder entries that are not documents
    stored: Stored | None = None
    original: str | None = None
    spooled_upload: bool = False  # fs_path is an upload's spool file (an upload, not a file on the server)

    @classmethod
    def upload(cls, name: str, data: bytes) -> Source:
        if not name or "/" in name or "\\" in name:
            raise ValueError(f"upload name must be a plain file name, got {name!r} (see Source.named)")
        return cls(name, name, data=bytes(data))

    @classmethod
    def named(cls, raw_name: str, data: bytes | None = None, spool: str | os.PathLike | None = None) -> Source:
        """An upload under whatever name the client sent (made safe by ``safe_name``; the original kept for
        display), its bytes given or in a spool file."""
        if (data is None) == (spool is None):
            raise ValueError("give the upload's bytes or its spool file, not both")
        name = safe_name(raw_name)
        original = raw_name if name != raw_name else None
        if spool is not None:
            return cls(name, name, fs_path=Path(spool), original=original, spooled_upload=True)
        return cls(name, name, data=bytes(data), original=original)

    @classmethod
    def spooled(cls, name: str, path: str | os.PathLike) -> Source:
        return cls.named(name, spool=path)

    @classmethod
    def file(cls, path: str | os.PathLike) -> Source:
        path = Path(path).expanduser()
        return cls(path.name, str(path.absolute()), fs_path=path)

    @classmethod
    def in_folder(cls, path: str | os.PathLike) -> Source:
        """A file found in a folder (an ingested or a synced one): skipped with the reason when it is not a
        document (``not_a_document``); a file given by name is always read."""
        path = Path(path).expanduser()
        return cls(path.name, str(path.absolute()), fs_path=path, skip=not_a_document(path))

    @property
    def is_upload(self) -> bool:
        return self.stored is None and (self.fs_path is None or self.spooled_upload)

    @property
    def size(self) -> int:
        """Bytes to read (0 when unknown)."""
        if self.data is not None:
            return len(self.data)
        try:
            return self.fs_path.stat().st_size if self.fs_path is not None and self.skip is None else 0
        except OSError:
            return 0


def expand(items: Iterable[str | os.PathLike | Source]) -> list[Source]:
    """Sources for paths (folders recurse, hidden entries ignored); ``Source`` items pass through."""
    out: list[Source] = []
    for item in items:
        if isinstance(item, Source):
            out.append(item)
        elif isinstance(item, str | os.PathLike):
            path = Path(item).expanduser()
            out.extend(_walk(path) if path.is_dir() else [Source.file(path)])
        else:
            raise TypeError(f"cannot ingest {type(item).__name__}: give paths or Source.upload(name, data)")
    return out


def _walk(folder: Path) -> list[Source]:
    found: list[Source] = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            found.append(Source.in_folder(Path(root) / name))
    return found


def not_a_document(path: Path) -> str | None:
    """Why a file in a folder is not read (None: it is).  Its extension decides; a file without one (README,
    LICENSE, Makefile) is read when its first bytes are text or a supported format's."""
    if path.suffix.lower() in SUPPORTED_SUFFIXES:
        return None
    if path.suffix:
        return (f"not a supported document type ({path.suffix}); the {len(SUPPORTED_SUFFIXES)} supported "
                "extensions are in README's formats table")
    try:
        with open(path, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
    except OSError:
        return None  # reading it says why (read_source)
    found = sniff(head)
    if found.kind in ("binary", ENCRYPTED) and head:
        return f"no extension, and the content is {found.description}, not a document"
    return None


def read_source(source: Source, max_bytes: int) -> bytes:
    """The source's bytes, or an ``ExtractError`` saying why it cannot be read."""
    cap = f"{max_bytes / 1024 / 1024:.0f} MB"
    if source.data is not None:
        if len(source.data) > max_bytes:
            raise ExtractError(f"file is {len(source.data) / 1024 / 1024:.1f} MB, over the {cap} size cap "
                               "(MOESEARCH_MAX_FILE_MB)")
        return source.data
    path = source.fs_path
    try:
        st = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise ExtractError(f"cannot read {path}: broken symbolic link") from None
        raise ExtractError(f"cannot read {path}: no such file") from None
    except OSError as exc:
        raise ExtractError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ExtractError(f"cannot read {path}: not a regular file (a device, socket or pipe)")
    if st.st_size > max_bytes:
        raise ExtractError(f"file is {st.st_size / 1024 / 1024:.1f} MB, over the {cap} size cap "
                           "(MOESEARCH_MAX_FILE_MB)")
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise ExtractError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise ExtractError(f"file grew past the {cap} size cap while being read")
    return data


SPOOL_CHUNK = 1 << 20


def spool_uploads(files: Iterable[tuple[str, bytes | BinaryIO]], parent: Path) -> tuple[list[Source], Path]:
    """Uploads written to a fresh folder under ``parent`` (1 MB at a time from file objects), as sources that
    read from there, so a batch is never held in memory; remove the folder with ``remove_spool`` when done."""
    folder = Path(parent) / uuid.uuid4().hex
    folder.mkdir(parents=True)
    sources = []
    try:
        for i, (name, content) in enumerate(files):
            path = folder / f"{i:05d}"
            with open(path, "wb") as out:
                if isinstance(content, bytes | bytearray | memoryview):
                    out.write(content)
                else:
                    if hasattr(content, "seek"):
                        content.seek(0)
                    while block := content.read(SPOOL_CHUNK):
                        out.write(block)
            sources.append(Source.named(name, spool=path))
    except BaseException:
        remove_spool(folder)
        raise
    return sources, folder


def remove_spool(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


class FileStore:
    """Content-addressed copies of ingested files: ``folder/ab/abcdef...`` (sha256 of the bytes)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def _path(self, doc_id: str) -> Path:
        if len(doc_id) != 64 or any(c not in "0123456789abcdef" for c in doc_id):
            raise ValueError(f"not a doc_id: {doc_id!r}")
        return self.folder / doc_id[:2] / doc_id

    def put(self, doc_id: str, data: bytes) -> Path:
        path = self._path(doc_id)
        if path.is_file():
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return path

    def find(self, doc_id: str) -> Path | None:
        """The kept copy's path, if there is one."""
        path = self._path(doc_id)
        return path if path.is_file() else None

    def delete(self, doc_id: str) -> None:
        self._path(doc_id).unlink(missing_ok=True)
