"""Big ordinary files (issue #25 item 3): a plain-text file of 1, 5 and 50 MB and a DOCX holding ~120 MB of XML,
read at the default caps.

Two parts, each file generated in a temporary folder:

- **reader**: ``indexer.sandbox.Reader`` (the reader process every ingest uses) extracts and chunks each file on
  the default model's tokenizer, at the default caps: wall time, the reader's peak RSS (its ``/proc`` resident
  size, sampled every 20 ms by the watchdog; ``RUSAGE_CHILDREN``'s max RSS as a cross-check), pages, chunks,
  outcome.  Targets: the 50 MB text indexes with the reader under 1 GB and in time proportional to its size (s/MB
  at 50 MB within 2x of that at 1 MB); the 120 MB-XML DOCX fails in under 20 s (its text is over
  ``MOESEARCH_MAX_CHARS``) or is read within its caps.  ``--tiny-paragraphs`` adds the worst case for the DOCX
  reader: 120 MB of XML in ~2.7M one-word-pair paragraphs (~24M characters, within the caps, so it is read).
- **ingest**: ``python -m indexer ingest FILE --json`` end to end (read, chunk, embed, write) into a temporary
  data folder for the text files of ``--ingest-mb`` MB and for the DOCX: wall time (with the process start and
  model load), the file's own seconds from the JSON report, exit code, status, reason.
  Embedding dominates (~10 chunks/s on 2 busy cores), so the default sizes are 1 and 5 MB; time per MB shows the
  proportionality.

    OMP_NUM_THREADS=1 python bench/big_files.py                       # reader 1/5/50 MB + DOCX, ingest 1 and 5 MB
    python bench/big_files.py --ingest-mb 0.5 1 --model minilm-moe-upcycled --json bench/out/big_files.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from embedder.registry import default_model_dir  # noqa: E402
from indexer.loaders.base import ExtractError  # noqa: E402
from indexer.sandbox import ChunkPlan, FileCaps, Reader  # noqa: E402
from indexer.settings import IndexerSettings  # noqa: E402

MB = 1 << 20
WORDS = ("the of and to in is that for it as was with be by on not he this are or his from at which but have an "
         "they you were her all she there would their we him been has when who will more no if out so said what up "
         "its about into than them can only other new some could time these two may then do first any my now such "
         "like our over man me even most made after also did many before must through back years where much your "
         "way well down should because each just those people how too little state good very make world still own "
         "see men work long get here between both life being under never day same another know while last might "
         "river harbour lantern orchard glacier meadow").split()
W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def text_file(megabytes: float, seed: int = 1) -> bytes:
    """English-like text: sentences of 5-20 words, one per line, a blank line every ~10 lines."""
    rnd = random.Random(seed)
    out, size, target = [], 0, int(megabytes * MB)
    while size < target:
        line = " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(5, 20))).capitalize() + ".\n"
        if rnd.random() < 0.1:
            line += "\n"
        out.append(line)
        size += len(line)
    return "".join(out).encode()[:target]


def docx_with_xml(xml_mb: float, paragraph: str) -> bytes:
    """A DOCX (python-docx's template) whose document.xml holds ``xml_mb`` MB of copies of one paragraph."""
    import docx

    base = io.BytesIO()
    docx.Document().save(base)
    one = f"<w:p><w:r><w:t>{paragraph}</w:t></w:r></w:p>".encode()
    body = one * int(xml_mb * MB / len(one))
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(base.getvalue())) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "word/document.xml":
                data = data.replace(b"<w:body>", b"<w:body>" + body, 1)
            dst.writestr(info.filename, data)
    return out.getvalue()


def read_one(reader: Reader, data: bytes, name: str, caps: FileCaps, plan: ChunkPlan) -> dict:
    t0 = time.perf_counter()
    try:
        extracted, chunks = reader.read(data, name, caps, plan)
        outcome, reason, pages, n_chunks = "ok", "", len(extracted.pages), len(chunks)
    except ExtractError as exc:
        outcome, reason, pages, n_chunks = "failed", str(exc), 0, 0
    seconds = time.perf_counter() - t0
    return {"file": name, "mb": round(len(data) / MB, 2), "seconds": round(seconds, 2),
            "s_per_mb": round(seconds / (len(data) / MB), 3), "reader_peak_rss_mb": round(reader.peak_rss / MB),
            "outcome": outcome, "reason": reason, "pages": pages, "chunks": n_chunks}


def ingest_one(path: Path, data_dir: Path, model: str | None) -> dict:
    env = {**os.environ, "MOESEARCH_DATA_DIR": str(data_dir), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS",
                                                                                                 "1")}
    if model:
        env["MOESEARCH_MODEL"] = model
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "indexer", "ingest", str(path), "--json"], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    try:
        status = json.loads(proc.stdout)["files"][0]
    except (ValueError, KeyError, IndexError):
        status = {"status": "crash", "reason": proc.stderr.strip()[-300:]}
    mb = path.stat().st_size / MB
    return {"file": path.name, "mb": round(mb, 2), "seconds": round(seconds, 1), "s_per_mb": round(seconds / mb, 1),
            "file_seconds": status.get("seconds"), "exit": proc.returncode, "status": status.get("status"),
            "reason": status.get("reason", ""),
            "chunks": status.get("chunks"), "traceback": "Traceback" in proc.stderr}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--read-mb", type=float, nargs="+", default=[1, 5, 50], help="text sizes read by the reader")
    ap.add_argument("--ingest-mb", type=float, nargs="*", default=[1, 5], help="text sizes ingested end to end")
    ap.add_argument("--xml-mb", type=float, default=120, help="XML in the DOCX")
    ap.add_argument("--tiny-paragraphs", action="store_true", help="also read the one-word-pair-paragraph DOCX")
    ap.add_argument("--model", default=None, help="MOESEARCH_MODEL for the ingest part (default: the default)")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = ap.parse_args()

    settings = IndexerSettings()
    caps = FileCaps.from_settings(settings)
    plan = ChunkPlan(str(default_model_dir() / "tokenizer.json"), settings.chunk_tokens, settings.chunk_overlap)
    print(f"caps: MOESEARCH_MAX_CHARS {caps.max_chars:,}, MOESEARCH_MAX_CHUNKS {caps.max_chunks:,}, memory "
          f"{caps.memory_mb} MB, {caps.seconds:g} s per file; page = {settings.text_page_chars:,} characters")
    long_paragraph = " ".join(random.Random(2).choice(WORDS) for _ in range(120))
    bombs = {"bomb.docx": docx_with_xml(args.xml_mb, long_paragraph)}
    if args.tiny_paragraphs:
        bombs["bomb-tiny-paragraphs.docx"] = docx_with_xml(args.xml_mb, "bomb text")
    rows: list[dict] = []
    reader = Reader()
    try:
        reader.start()
        for mb in args.read_mb:
            rows.append(read_one(reader, text_file(mb), f"text-{mb:g}mb.txt", caps, plan))
            print("reader", rows[-1], flush=True)
        for name, data in bombs.items():
            rows.append(read_one(reader, data, name, caps, plan))
            rows[-1]["docx_kb"] = round(len(data) / 1024)
            print("reader", rows[-1], flush=True)
    finally:
        reader.close()
    children_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024
    print(f"RUSAGE_CHILDREN max RSS of the reader processes: {children_rss} MB")

    ingests: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for mb in args.ingest_mb:
            path = Path(tmp) / f"ingest-{mb:g}mb.txt"
            path.write_bytes(text_file(mb, seed=7))
            ingests.append(ingest_one(path, Path(tmp) / f"data-{mb:g}", args.model))
            print("ingest", ingests[-1], flush=True)
        path = Path(tmp) / "bomb.docx"
        path.write_bytes(bombs["bomb.docx"])
        ingests.append(ingest_one(path, Path(tmp) / "data-bomb", args.model))
        print("ingest", ingests[-1], flush=True)

    checks = []
    texts = {r["mb"]: r for r in rows if r["file"].endswith(".txt")}
    if 50 in texts:
        big = texts[50]
        checks.append(("50 MB text indexes (reader ok)", big["outcome"] == "ok"))
        checks.append(("reader RSS < 1 GB on 50 MB text", big["reader_peak_rss_mb"] < 1024))
        if 1 in texts:
            checks.append(("reader time proportional: s/MB at 50 MB <= 2x s/MB at 1 MB",
                           big["s_per_mb"] <= 2 * texts[1]["s_per_mb"]))
    bomb = next(r for r in rows if r["file"] == "bomb.docx")
    checks.append(("docx bomb fails < 20 s or reads within caps (reader)",
                   bomb["outcome"] == "ok" or bomb["seconds"] < 20))
    cli_bomb = ingests[-1]
    checks.append(("docx bomb fails < 20 s (CLI ingest: the file's own seconds in the report, without the "
                   "process start and model load)",
                   cli_bomb["status"] == "ok" or (cli_bomb["file_seconds"] or 1e9) < 20))
    checks.append(("no traceback, exit 0/1 in every CLI ingest",
                   all(not r["traceback"] and r["exit"] in (0, 1) for r in ingests)))
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"reader": rows, "ingest": ingests, "children_max_rss_mb": children_rss,
                                         "checks": checks}, indent=2))
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
