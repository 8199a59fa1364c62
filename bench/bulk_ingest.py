"""Bulk ingest: ``Pipeline.ingest(..., workers=2)`` (two embedding processes) against ``workers=1`` (embedding in
the ingesting process), same generated PDF corpus, timed interleaved in one run (1, 2, 2, 1, 1, 2, ...) so the
machine's noise hits both alike.  Each run ingests the whole corpus into a fresh index: a temporary embedded
qdrant-edge folder, or, when ``QDRANT_URL`` is set, a fresh collection on that server or cluster (``QDRANT_API_KEY``
and the ``QDRANT_SHARDS`` / ``QDRANT_REPLICATION_FACTOR`` / ``QDRANT_WRITE_CONSISTENCY`` layout apply; the
collection is deleted afterwards).  A workers=2 run includes starting its worker processes.

Reports chunks/s and pages/s per run, the median per setting, and the ratio workers=2 / workers=1.  Each worker
gets cores/N onnxruntime threads; the in-process embedder of workers=1 uses all cores.

    python bench/bulk_ingest.py --quick                 # 12 PDFs x 3 pages, one run each
    python bench/bulk_ingest.py --json bench/out/bulk_ingest.json   # 100 PDFs x 5 pages, three runs each
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ingest_pdfs import make_corpus  # noqa: E402

from indexer.pipeline import Pipeline  # noqa: E402
from indexer.settings import IndexerSettings  # noqa: E402
from indexer.workers import EmbedPool, WorkerSpec, available_cores, threads_per_worker  # noqa: E402


def one_run(base: IndexerSettings, embedder, docs: Path, workers: int, scratch: Path) -> dict:
    """Ingest ``docs`` into a fresh index with ``workers`` embedding processes; returns its counts and rates."""
    if base.backend == "server":
        settings = base.with_(collection=f"bench-bulk-{uuid.uuid4().hex[:8]}")
    else:
        settings = base.with_(data_dir=Path(tempfile.mkdtemp(prefix="run-", dir=scratch)))
    with Pipeline(settings, embedder=embedder) as p:
        try:
            t0 = time.perf_counter()
            report = p.ingest([docs], workers=workers)
            seconds = time.perf_counter() - t0
            assert report.all_ok, report.to_dict()
            kind = p.root.kind
            location = f"server {p.root.location}" if kind == "server" else f"{kind} (a fresh folder per run)"
        finally:
            if settings.backend == "server":
                for name in p.root.collections():
                    p.root.client.delete_collection(name)  # its alias goes with it
    return {"workers": workers, "seconds": seconds, "files": report.ok, "pages": report.pages,
            "chunks": report.chunks, "chunks_per_s": report.chunks / seconds, "pages_per_s": report.pages / seconds,
            "store": location}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="12 PDFs x 3 pages, one run per setting")
    ap.add_argument("--pdfs", type=int, default=100)
    ap.add_argument("--pages", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3, help="runs per setting, interleaved")
    ap.add_argument("--workers", type=int, default=2, help="the bulk setting compared with workers=1")
    ap.add_argument("--model", type=Path, default=None, help="model folder (default: MOESEARCH_MODEL or the app's)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    n_pdfs, pages, rounds = (12, 3, 1) if args.quick else (args.pdfs, args.pages, args.rounds)
    settings = IndexerSettings.from_env(**({"model_dir": args.model} if args.model else {}))
    settings = settings.with_(hnsw_threshold=0)  # the same store work in both settings: no HNSW build in a run

    from embedder.runtime import Embedder

    embedder = Embedder(settings.model_dir, device=settings.device, dim=settings.dim)
    embedder.embed_documents(["warm-up passage"] * 4)
    t0 = time.perf_counter()
    with EmbedPool(WorkerSpec.of(embedder, args.workers), args.workers) as pool:  # start-up cost, reported alone
        pool.submit(["warm-up passage"], 1).result()
    startup = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="moesearch-bench-bulk-") as tmp:
        scratch = Path(tmp)
        docs = scratch / "docs"
        docs.mkdir()
        t0 = time.perf_counter()
        total_pages = make_corpus(docs, n_pdfs, pages)
        print(f"generated {n_pdfs} PDFs x {pages} pages in {time.perf_counter() - t0:.1f} s; model "
              f"{embedder.model_id} ({embedder.model_file.name} on {embedder.provider}); {available_cores()} cores, "
              f"{threads_per_worker(args.workers)} onnxruntime thread(s) per worker", flush=True)
        runs = []
        for r in range(rounds):
            order = (1, args.workers) if r % 2 == 0 else (args.workers, 1)
            for workers in order:
                run = one_run(settings, embedder, docs, workers, scratch)
                assert run["pages"] == total_pages, run
                runs.append(run)
                print(f"  round {r + 1} workers={workers}: {run['seconds']:.1f} s, {run['chunks_per_s']:.1f} "
                      f"chunks/s, {run['pages_per_s']:.1f} pages/s", file=sys.stderr, flush=True)
    medians = {w: {k: statistics.median(x[k] for x in runs if x["workers"] == w)
                   for k in ("seconds", "chunks_per_s", "pages_per_s")} for w in (1, args.workers)}
    ratio = medians[args.workers]["chunks_per_s"] / medians[1]["chunks_per_s"]
    print(f"\n{n_pdfs} PDFs, {total_pages} pages, {runs[0]['chunks']} chunks; store {runs[0]['store']}; "
          f"{rounds} run(s) per setting, medians:\n")
    print("| workers | seconds | chunks/s | pages/s |\n|---:|---:|---:|---:|")
    for w, m in medians.items():
        print(f"| {w} | {m['seconds']:.1f} | {m['chunks_per_s']:.1f} | {m['pages_per_s']:.1f} |")
    print(f"\nthroughput workers={args.workers} / workers=1: {ratio:.2f} (each workers={args.workers} run includes "
          f"starting the workers, {startup:.1f} s when measured alone)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"pdfs": n_pdfs, "pages": total_pages, "rounds": rounds,
                                         "cores": available_cores(), "model": str(embedder.model_dir),
                                         "runs": runs, "medians": {str(k): v for k, v in medians.items()},
                                         "ratio": ratio, "worker_startup_s": startup}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
