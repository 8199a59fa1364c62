"""A real, varied corpus nobody here wrote (issue #25 item 4): documents shipped by PyPI source distributions
(python-docx's and python-pptx's test files, odfpy's examples, pypdf's sample PDFs, their images, text and
reStructuredText) and by Debian packages (debian-reference-en's PDF and HTML manual, lynx-common's HTML help),
fetched with the ordinary clients (``pip download --no-binary :all:``, ``apt-get download`` + ``dpkg-deb -x``)
into a cache folder outside the repository: nothing of them is committed.

Every file is ingested with ``python -m indexer ingest CORPUS --json`` into a temporary data folder.  Checks:
every file ends ``ok``, ``duplicate``, ``skipped`` or ``failed``, every skip and failure has a reason, no reason
and nothing on stderr holds a traceback, the command exits 0 or 1.  Prints a table per extension (counts of each
status, the most common failure reasons).

    python bench/real_corpus.py                                   # everything (~330 files)
    python bench/real_corpus.py --sources odfpy python-docx --per-ext 5 --model minilm-moe-upcycled
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PIP = {"python-docx": "python_docx", "python-pptx": "python_pptx", "odfpy": "odfpy", "pypdf": "pypdf"}
APT = ("debian-reference-en", "lynx-common")
SOURCES = (*PIP, *APT)
TAKE = {".docx", ".pptx", ".xlsx", ".odt", ".ods", ".odp", ".pdf", ".html", ".htm", ".png", ".jpg", ".jpeg", ".tif",
        ".tiff", ".txt", ".md", ".rst", ".csv", ".rtf", ".doc", ".xls", ".ppt", ".msg", ".eml", ".epub"}
SKIP_DIRS = ("__pycache__",)
STATUSES = ("ok", "duplicate", "skipped", "failed")
MAX_MB = 20  # larger members are left out of the corpus (the big files are bench/big_files.py's)


def fetch(source: str, cache: Path) -> Path:
    """The source's archive (downloaded once into ``cache``)."""
    if source in PIP:
        folder = cache / "pip"
        folder.mkdir(parents=True, exist_ok=True)
        found = sorted(folder.glob(f"{PIP[source]}-*.tar.gz")) + sorted(folder.glob(f"{PIP[source]}-*.zip"))
        if not found:
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                            source, "-d", str(folder)], check=True)
            found = sorted(folder.glob(f"{PIP[source]}-*.tar.gz")) + sorted(folder.glob(f"{PIP[source]}-*.zip"))
        return found[-1]
    folder = cache / "apt"
    folder.mkdir(parents=True, exist_ok=True)
    found = sorted(folder.glob(f"{source}_*.deb"))
    if not found:
        subprocess.run(["apt-get", "download", source], cwd=folder, check=True, capture_output=True)
        found = sorted(folder.glob(f"{source}_*.deb"))
    return found[-1]


def members(archive: Path) -> list[tuple[str, bytes]]:
    """(path, bytes) of an archive's files (a .deb is unpacked with dpkg-deb; a .gz inside it is gunzipped)."""
    out: list[tuple[str, bytes]] = []
    if archive.suffix == ".deb":
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["dpkg-deb", "-x", str(archive), tmp], check=True)
            for path in sorted(Path(tmp).rglob("*")):
                if path.is_file() and not path.is_symlink():
                    name, data = str(path.relative_to(tmp)), path.read_bytes()
                    if name.endswith(".gz"):
                        name, data = name[:-3], gzip.decompress(data)
                    out.append((name, data))
        return out
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zf:
            return [(i.filename, zf.read(i)) for i in zf.infolist() if not i.is_dir()]
    with tarfile.open(archive) as tf:
        for info in tf.getmembers():
            if info.isfile():
                out.append((info.name, tf.extractfile(info).read()))
    return out


def build_corpus(sources: list[str], cache: Path, corpus: Path, per_ext: int | None) -> dict[str, str]:
    """Copy the documents of ``sources`` into ``corpus`` (flat names: ``source__path``); name -> origin."""
    corpus.mkdir(parents=True, exist_ok=True)
    taken: dict[str, str] = {}
    counts: collections.Counter = collections.Counter()
    for source in sources:
        archive = fetch(source, cache)
        for name, data in members(archive):
            path = PurePosixPath(name)
            ext = path.suffix.lower()
            deb_doc = archive.suffix == ".deb" and "/doc/" in f"/{name}" and not ext
            if (ext not in TAKE and not deb_doc) or any(d in path.parts for d in SKIP_DIRS) or not data \
                    or len(data) > MAX_MB << 20:
                continue
            if per_ext is not None and counts[ext] >= per_ext:
                continue
            flat = f"{source}__{'_'.join(path.parts[-3:])}"
            (corpus / flat).write_bytes(data)
            taken[flat] = f"{archive.name}:{name}"
            counts[ext] += 1
    return taken


def ingest(corpus: Path, data_dir: Path, model: str | None) -> tuple[dict, int, str, float]:
    env = {**os.environ, "MOESEARCH_DATA_DIR": str(data_dir)}
    env.setdefault("OMP_NUM_THREADS", "1")
    if model:
        env["MOESEARCH_MODEL"] = model
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "indexer", "ingest", str(corpus), "--json"], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        report = {"files": []}
    return report, proc.returncode, proc.stderr, seconds


def problems(report: dict, names: set[str], code: int, stderr: str) -> list[str]:
    """What breaks the item's rules: a file without a final status, a failure without a reason, a traceback."""
    out = []
    if code not in (0, 1):
        out.append(f"exit code {code}: {stderr.strip()[-400:]}")
    if "Traceback" in stderr:
        out.append("a traceback on stderr: " + stderr[stderr.index("Traceback"):][:400])
    seen = {Path(f.get("path") or f["name"]).name for f in report.get("files", [])} | \
        {f["name"] for f in report.get("files", [])}
    out += [f"{n}: no status in the report" for n in sorted(names - seen)]
    for f in report.get("files", []):
        if f["status"] not in STATUSES:
            out.append(f"{f['name']}: status {f['status']!r}")
        if f["status"] in ("skipped", "failed") and not f.get("reason", "").strip():
            out.append(f"{f['name']}: {f['status']} without a reason")
        if "Traceback" in f.get("reason", "") or 'File "' in f.get("reason", ""):
            out.append(f"{f['name']}: a traceback in its reason")
    return out


def ext_of(name: str) -> str:
    return PurePosixPath(name.split("__", 1)[-1]).suffix.lower() or "(none)"


def table(report: dict) -> list[dict]:
    rows: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    reasons: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for f in report.get("files", []):
        ext = ext_of(f["name"])
        rows[ext][f["status"]] += 1
        if f["status"] != "ok" and f.get("reason"):
            reasons[ext][f["reason"].split(";")[0].split(" (")[0][:90]] += 1
    return [{"ext": ext, **{s: rows[ext][s] for s in STATUSES},
             "top reasons": "; ".join(f"{r} (x{n})" for r, n in reasons[ext].most_common(2))}
            for ext in sorted(rows, key=lambda e: -sum(rows[e].values()))]


def run(sources: list[str], cache: Path, per_ext: int | None, model: str | None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        taken = build_corpus(sources, cache, corpus, per_ext)
        report, code, stderr, seconds = ingest(corpus, Path(tmp) / "data", model)
        found = problems(report, set(taken), code, stderr)
        shutil.rmtree(corpus, ignore_errors=True)
    return {"files": len(taken), "exit": code, "seconds": round(seconds, 1), "problems": found,
            "table": table(report), "report": report}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sources", nargs="+", default=list(SOURCES), choices=SOURCES)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "moesearch-real-corpus",
                    help="where the downloaded archives are kept (outside the repository)")
    ap.add_argument("--per-ext", type=int, default=None, help="at most this many files per extension")
    ap.add_argument("--model", default=None, help="MOESEARCH_MODEL (default: the default model)")
    ap.add_argument("--json", type=Path, default=None, help="write the report and the table here")
    args = ap.parse_args()
    got = run(args.sources, args.cache, args.per_ext, args.model)
    print(f"{got['files']} files from {', '.join(args.sources)}; exit {got['exit']}, {got['seconds']} s")
    print(f"{'ext':8} {'ok':>4} {'dup':>4} {'skip':>4} {'fail':>4}  top failure / skip reasons")
    for row in got["table"]:
        print(f"{row['ext']:8} {row['ok']:>4} {row['duplicate']:>4} {row['skipped']:>4} {row['failed']:>4}  "
              f"{row['top reasons']}")
    for p in got["problems"]:
        print("PROBLEM", p)
    print(f"{'PASS' if not got['problems'] else 'FAIL'}  every file ok / duplicate / skipped / failed with a reason, "
          "no traceback, exit 0 or 1")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(got, indent=2))
    return 0 if not got["problems"] else 1


if __name__ == "__main__":
    sys.exit(main())
