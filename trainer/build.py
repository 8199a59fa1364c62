"""``python -m trainer data``: fetch the offline sources, parse them, write ``pairs/*.jsonl`` + ``manifest.json``.

Sources come from the package registries only: the bigbench==1.0.0 sdist through pip, chatterbot-corpus through
pip, the Django wheel's message catalogues through ``pip download`` (read from the wheel, never installed),
WordNet through ``apt-get download wordnet-base`` (or an installed /usr/share/wordnet). Each source is built
on its own: one that fails is recorded in the manifest with its error and the others are still written. Every
source's licence, origin and whether it allows commercial use (trainer/licences.py) go into the manifest. The
held-out evaluation collections (squad_shifts-nyt, techfaq) are built beside them under ``eval/``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from .config import ALL_SOURCES, DataConfig
from .data import Pair, ReadReport, read_training, write_jsonl
from .heldout import HELD_OUT_SQUAD_DOMAIN, Decontaminator, check_source
from .heldout_sets import TECHFAQ, build_techfaq
from .licences import LICENCES, USER_LICENCE
from .sources import BIGBENCH_TASKS, SQUAD_SOURCES, squad_eval_beir

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BIGBENCH_SOURCES = ("squad_shifts", "squad_shifts_web", "vitaminc", "gem", "multiemo", "disfl_qa", "paragraph")
BIGBENCH_SPEC = "bigbench==1.0.0"
DJANGO_SPEC = "django==5.2.20"  # its wheel's locale/*/LC_MESSAGES/*.po (BSD-3-Clause, translations included)
SQUAD_EVAL = f"eval/squad_shifts-{HELD_OUT_SQUAD_DOMAIN}"
TECHFAQ_EVAL = "eval/techfaq"


def default_beir_root() -> Path:
    return Path(os.environ.get("MOESEARCH_BEIR_DIR", PROJECT_ROOT.parent / "shared" / "data" / "beir"))


def _task_root(folder: Path) -> Path | None:
    for cand in (folder, folder / "benchmark_tasks", folder / "bigbench" / "benchmark_tasks"):
        if (cand / "squad_shifts").is_dir():
            return cand
    return None


def bigbench_tasks(data_dir: Path, spec: str = "") -> Path:
    """The BIG-bench ``benchmark_tasks`` folder holding the tasks we use, cached under ``data_dir/sources``."""
    cache = data_dir / "sources" / "bigbench"
    if (cache / "squad_shifts").is_dir() and not spec:
        return cache
    if spec:
        src = Path(spec)
        if src.is_dir():
            root = _task_root(src)
            if root is None:
                raise FileNotFoundError(f"{src}: no benchmark_tasks/squad_shifts inside (not a bigbench sdist)")
            return root
        if src.is_file() and src.name.endswith((".tar.gz", ".tgz")):
            _extract_tar(src, cache)
            return cache
        raise FileNotFoundError(f"{src}: expected a bigbench-1.0.0.tar.gz or its unpacked folder")
    # pip downloads and unpacks the sdist, then fails while resolving its metadata (it declares a file:// URL
    # dependency, which PyPI distributions may not). --no-clean keeps the unpacked tree, which is all we need.
    tmp = data_dir / "sources" / "pip-tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--no-clean",
           "-d", str(tmp / "dl"), BIGBENCH_SPEC]
    log.info("fetching %s (~358 MB) with pip: %s", BIGBENCH_SPEC, " ".join(cmd))
    proc = subprocess.run(cmd, env={**os.environ, "TMPDIR": str(tmp)}, capture_output=True, text=True)
    roots = [r for r in (_task_root(p) for p in tmp.glob("pip-*/*")) if r is not None]
    archives = list((tmp / "dl").glob("bigbench-*.tar.gz")) if (tmp / "dl").is_dir() else []
    if archives:
        _extract_tar(archives[0], cache)
    elif roots:
        cache.mkdir(parents=True, exist_ok=True)
        for task in BIGBENCH_TASKS:
            if task == "multiemo":
                for d in (roots[0] / task).glob("all_text_*"):
                    shutil.copytree(d, cache / task / d.name, dirs_exist_ok=True)
            else:
                shutil.copytree(roots[0] / task, cache / task, dirs_exist_ok=True)
    else:
        raise RuntimeError(f"pip could not fetch {BIGBENCH_SPEC}: {proc.stderr.strip()[-500:]}")
    shutil.rmtree(tmp, ignore_errors=True)
    return cache


def _extract_tar(archive: Path, cache: Path) -> None:
    """Extract only the task folders we use (multiemo: the all_text_* folders) from the sdist archive."""
    with tarfile.open(archive) as tar:
        members = []
        for m in tar.getmembers():
            parts = Path(m.name).parts
            if "benchmark_tasks" not in parts or not m.isfile():
                continue
            rel = Path(*parts[parts.index("benchmark_tasks") + 1:])
            if rel.parts and rel.parts[0] in BIGBENCH_TASKS and (
                    rel.parts[0] != "multiemo" or (len(rel.parts) > 1 and rel.parts[1].startswith("all_text_"))):
                m.name = str(rel)
                members.append(m)
        cache.mkdir(parents=True, exist_ok=True)
        tar.extractall(cache, members=members, filter="data")


def wordnet_dir(data_dir: Path) -> Path:
    """WordNet's dictionary folder: the installed one, else ``apt-get download wordnet-base`` unpacked here."""
    for cand in (Path("/usr/share/wordnet"), data_dir / "sources" / "wordnet" / "usr" / "share" / "wordnet"):
        if (cand / "data.noun").is_file():
            return cand
    dest = data_dir / "sources" / "wordnet"
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(["apt-get", "download", "wordnet-base"], cwd=tmp, capture_output=True, text=True)
        debs = list(Path(tmp).glob("wordnet-base*.deb"))
        if not debs:
            raise RuntimeError(f"apt-get download wordnet-base failed: {proc.stderr.strip()[-400:]} "
                               "(run `apt-get update` first, or `apt-get install wordnet-base`)")
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(dest)], check=True, capture_output=True)
    return dest / "usr" / "share" / "wordnet"


def django_wheel(data_dir: Path) -> Path:
    """The Django wheel (``DJANGO_SPEC``), cached under ``data_dir/sources/django``: ``pip download`` only."""
    dest = data_dir / "sources" / "django"
    version = DJANGO_SPEC.split("==")[1]
    found = sorted(dest.glob(f"[Dd]jango-{version}-*.whl"))
    if found:
        return found[0]
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-d", str(dest), DJANGO_SPEC]
    log.info("fetching %s with pip: %s", DJANGO_SPEC, " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(dest.glob(f"[Dd]jango-{version}-*.whl"))
    if not found:
        raise RuntimeError(f"pip could not fetch {DJANGO_SPEC}: {proc.stderr.strip()[-500:]}")
    return found[0]


def chatterbot_dir() -> Path:
    try:
        import chatterbot_corpus
    except ImportError as exc:
        raise RuntimeError("chatterbot-corpus is missing: pip install chatterbot-corpus==1.3.3") from exc
    return Path(chatterbot_corpus.__file__).parent / "data"


def _builders(name: str, data_dir: Path, cfg: DataConfig):
    """(file stem, records iterator factory) pairs for one source."""
    from . import sources as S

    if name in SQUAD_SOURCES:
        tasks = bigbench_tasks(data_dir, cfg.bigbench)
        return [(f"squad_shifts-{d}", lambda d=d: S.squad_shifts(tasks, d)) for d in SQUAD_SOURCES[name]]
    if name in ("vitaminc", "gem", "multiemo", "disfl_qa", "paragraph"):
        tasks = bigbench_tasks(data_dir, cfg.bigbench)
        return [(name, lambda: getattr(S, name)(tasks))]
    if name == "chatterbot":
        return [(name, lambda: S.chatterbot(chatterbot_dir()))]
    if name == "wordnet":
        return [(name, lambda: S.wordnet(wordnet_dir(data_dir)))]
    if name == "django_l10n":  # one file per locale: a batch then holds one language pair
        by_lang = S.django_l10n(django_wheel(data_dir), cfg.languages)
        return [(f"{name}-{lang}", lambda recs=recs: iter(recs)) for lang, recs in by_lang.items()]
    raise ValueError(f"unknown source {name!r}; allowed: {ALL_SOURCES}")  # unreachable: DataConfig validates


def finalise(records, dec: Decontaminator, cap: int, seed: int, stem: str) -> tuple[list[Pair], dict]:
    """Decontaminate (query or positive a held-out text), deduplicate (query, pos), shuffle (seeded), cap."""
    seen, out, dropped = set(), [], 0
    for rec in records:
        check_source(rec.source, stem)
        if dec.is_held_out(rec.query) or dec.is_held_out(rec.pos):
            dropped += 1
            continue
        key = (rec.query, rec.pos)
        if key not in seen:
            seen.add(key)
            out.append(rec)
    random.Random(f"{seed}:{stem}").shuffle(out)
    total = len(out)
    if cap:
        out = out[:cap]
    return out, {"parsed": total, "written": len(out), "decontaminated": dropped}


def build_data(cfg: DataConfig, data_dir: str | Path, seed: int = 0) -> dict:
    """Build every requested source into ``data_dir/pairs`` and return the manifest (also written)."""
    data_dir = Path(data_dir)
    (data_dir / "pairs").mkdir(parents=True, exist_ok=True)
    names = cfg.sources
    manifest_path = data_dir / "manifest.json"
    manifest: dict = {"sources": {}, "seed": seed, "max_per_source": cfg.max_per_source}  # this build only
    squad_dir = None
    cached = data_dir / "sources" / "bigbench" / "squad_shifts"
    if set(names) & set(BIGBENCH_SOURCES):
        try:
            squad_dir = bigbench_tasks(data_dir, cfg.bigbench) / "squad_shifts"
        except (OSError, RuntimeError) as exc:
            log.warning("bigbench unavailable (%s); its sources will fail", exc)
    elif cached.is_dir():
        squad_dir = cached
    techfaq = data_dir / TECHFAQ_EVAL
    if names and not (techfaq / "queries.jsonl").is_file():  # with built-in sources: the full recipe
        try:
            build_techfaq(techfaq)
        except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
            log.warning("held-out techfaq not built (%s): `python -m trainer heldout-build techfaq`", exc)
    dec = Decontaminator.from_files(default_beir_root(), squad_dir, (techfaq,))
    for name in names:
        lic = LICENCES[name]
        licence, origin = lic.licence, lic.origin
        try:
            for stem, make in _builders(name, data_dir, cfg):
                t0 = time.time()
                recs, stats = finalise(make(), dec, cfg.max_per_source, seed, stem)
                if not recs:
                    raise ValueError(f"{stem}: no records parsed")
                path = data_dir / "pairs" / f"{stem}.jsonl"
                write_jsonl(path, recs)
                manifest["sources"][stem] = {"source": name, "licence": licence, "commercial": lic.commercial,
                                             "origin": origin, "file": f"pairs/{stem}.jsonl",
                                             **stats, "with_negs": sum(bool(r.negs) for r in recs)}
                log.info("%s: %d pairs (%d parsed) in %.1fs", stem, stats["written"], stats["parsed"],
                         time.time() - t0)
        except Exception as exc:  # one bad source never stops the others
            log.error("source %s failed: %s", name, exc)
            manifest["sources"][name] = {"source": name, "licence": licence, "commercial": lic.commercial,
                                         "origin": origin, "error": f"{type(exc).__name__}: {exc}"}
    for spec in cfg.user:
        report = ReadReport()
        stem = "user-" + Path(spec.split(":")[0]).name.removesuffix(".jsonl")
        try:
            recs, stats = finalise(read_training([spec], report), dec, cfg.max_per_source, seed, stem)
            write_jsonl(data_dir / "pairs" / f"{stem}.jsonl", recs)
            manifest["sources"][stem] = {"source": stem, "licence": USER_LICENCE, "commercial": False,
                                         "origin": spec, "file": f"pairs/{stem}.jsonl", **stats,
                                         "errors": report.errors[:20]}
        except Exception as exc:
            manifest["sources"][stem] = {"source": stem, "licence": USER_LICENCE, "commercial": False,
                                         "origin": spec, "error": str(exc), "errors": report.errors[:20]}
    manifest["eval"] = {}
    if squad_dir is not None:
        squad_eval_beir(squad_dir.parent, data_dir / SQUAD_EVAL)
        manifest["eval"][f"squad_shifts-{HELD_OUT_SQUAD_DOMAIN}"] = SQUAD_EVAL
    if (techfaq / "queries.jsonl").is_file():
        manifest["eval"]["techfaq"] = TECHFAQ_EVAL
    manifest["held_out"] = {"squad_shifts_domain": HELD_OUT_SQUAD_DOMAIN,
                            "beir": ["scifact:*", "cranfield:*", "techfaq:*", "squad_shifts-nyt:*", "xquad*:*"],
                            "decontamination_texts": len(dec.digests)}
    manifest_path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return manifest


def build_heldout(name: str, data_dir: Path, out: Path | None = None, bigbench: str = "") -> dict:
    """Build one held-out collection by name into ``out`` (default ``data_dir/eval/NAME``)."""
    nyt = f"squad_shifts-{HELD_OUT_SQUAD_DOMAIN}"
    out = out or data_dir / "eval" / name
    if name == TECHFAQ:
        return build_techfaq(out)
    if name == nyt:
        squad_eval_beir(bigbench_tasks(data_dir, bigbench), out)
        n = sum(1 for _ in open(out / "queries.jsonl", encoding="utf-8"))
        return {"name": name, "queries": n, "folder": str(out)}
    raise ValueError(f"unknown held-out collection {name!r}; allowed: {(TECHFAQ, nyt)}")
