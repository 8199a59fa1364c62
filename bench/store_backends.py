"""Store benchmark: qdrant-edge (the embedded default) vs qdrant-client local mode, same points, same run.

Measures, at each size: upsert points/s (batches of 256 points carrying a 384-d dense vector, a BM25 sparse
vector and a chunk-like payload), query latency p50/p95 (dense, BM25 keyword, hybrid RRF, dense with a
keyword filter on ``source``) and reopen time; for edge also after ``optimize()`` (HNSW).  Local mode runs in
memory for upserts and queries (its path mode searches the same in-memory structures but commits every point
to SQLite, so its upsert rate is measured on a 1,024-point sample on the same disk, and its reopen time on a
copy built in /dev/shm).  Prints a table and local/edge ratios.

    python bench/store_backends.py --quick          # 10k points
    python bench/store_backends.py                  # 10k and 100k points
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from indexer.schema import IndexSpec, collection_spec  # noqa: E402
from indexer.settings import IndexerSettings  # noqa: E402
from indexer.sparse import Bm25Encoder  # noqa: E402
from indexer.store.base import Match, PointRecord, QuerySpec  # noqa: E402

DIM, BATCH = 384, 256


def vocabulary() -> list[str]:
    vocab = (ROOT / "models" / "minilm-moe-upcycled" / "vocab.txt")
    if vocab.is_file():
        words = [w for w in vocab.read_text().split() if w.isalpha() and len(w) > 2]
        if len(words) > 1000:
            return words
    rng = np.random.default_rng(1)
    return ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), size=rng.integers(3, 10))) for _ in range(20000)]


def make_texts(n: int, words: list[str], rng, length: int = 150) -> list[str]:
    ranks = np.minimum(rng.zipf(1.2, size=(n, length)) - 1, len(words) - 1)  # Zipf like real text
    return [" ".join(words[i] for i in row) for row in ranks]


def make_points(n: int, rng, words, bm25) -> list[PointRecord]:
    dense = rng.normal(size=(n, DIM)).astype(np.float32)
    dense /= np.linalg.norm(dense, axis=1, keepdims=True)
    texts = make_texts(n, words, rng)
    out = []
    for i in range(n):
        doc = f"{i // 40:064x}"
        payload = {"kind": "chunk", "state": "complete", "doc_id": doc, "source": f"file{i // 40}.pdf",
                   "path": f"/corpus/file{i // 40}.pdf", "doc_type": "pdf", "page": 1 + (i % 40) // 3,
                   "chunk_index": i % 40, "char_start": 0, "char_end": len(texts[i]), "text": texts[i],
                   "content_sha256": "0" * 64, "ingested_at": "2026-01-01T00:00:00.000000Z", "model_id": "bench"}
        out.append(PointRecord(str(uuid.uuid5(uuid.NAMESPACE_URL, str(i))), payload, dense[i], bm25.document(texts[i])))
    return out


def open_root(kind: str, folder: Path | None):
    if kind == "edge":
        from indexer.store.edge import EdgeRoot

        return EdgeRoot(folder)
    from indexer.store.server import ClientRoot

    return ClientRoot(":memory:" if folder is None else str(folder))


def percentiles(samples: list[float]) -> tuple[float, float]:
    a = np.array(samples) * 1000
    return float(np.percentile(a, 50)), float(np.percentile(a, 95))


def time_queries(col, queries, where=()) -> dict[str, tuple[float, float]]:
    out = {}
    for mode in ("dense", "keyword", "hybrid", "filtered"):
        samples = []
        for dense, sparse, source in queries:
            spec = QuerySpec(limit=10, dense=None if mode == "keyword" else dense,
                             sparse=sparse if mode in ("keyword", "hybrid") else None,
                             where=(*where, *((Match("source", (source,)),) if mode == "filtered" else ())),
                             prefetch=100, hnsw_ef=128)
            t0 = time.perf_counter()
            col.query(spec)
            samples.append(time.perf_counter() - t0)
        out[mode] = percentiles(samples)
    return out


def fill(kind: str, folder: Path | None, points, settings) -> tuple[object, object, float]:
    root = open_root(kind, folder)
    col = root.create("moesearch-bench", collection_spec(IndexSpec("bench", DIM, 256, 32), settings))
    root.activate(col.name)
    t0 = time.perf_counter()
    for start in range(0, len(points), BATCH):
        col.upsert(points[start:start + BATCH])
    col.flush()
    return root, col, time.perf_counter() - t0


def reopen_s(kind: str, folder: Path) -> float:
    t0 = time.perf_counter()
    root = open_root(kind, folder)
    root.open("moesearch-bench").count()
    elapsed = time.perf_counter() - t0
    root.close()
    return elapsed


def run_size(n: int, n_queries: int, words, bm25, disk: Path, ram: Path) -> dict:
    rng = np.random.default_rng(n)
    points = make_points(n, rng, words, bm25)
    qrng = np.random.default_rng(7)
    queries = []
    for text in make_texts(n_queries, words, qrng, length=6):
        v = qrng.normal(size=DIM).astype(np.float32)
        queries.append((v / np.linalg.norm(v), bm25.query(text), f"file{qrng.integers(0, max(1, n // 40))}.pdf"))
    settings = IndexerSettings(hnsw_threshold=1000)  # so optimize() builds HNSW at every size measured

    root, col, secs = fill("edge", disk / f"edge-{n}", points, settings)
    edge = {"upsert_pts_s": n / secs, "queries": time_queries(col, queries)}
    root.close()
    edge["reopen_s"] = reopen_s("edge", disk / f"edge-{n}")
    root = open_root("edge", disk / f"edge-{n}")
    col = root.open("moesearch-bench")
    t0 = time.perf_counter()
    col.optimize()
    edge["optimize_s"] = time.perf_counter() - t0
    edge["queries_hnsw"] = time_queries(col, queries)
    root.close()
    print(f"  edge  n={n}: upsert {edge['upsert_pts_s']:.0f} pts/s, reopen {edge['reopen_s']:.2f} s", flush=True)

    root, col, secs = fill("local", None, points, settings)  # local mode in memory: its fastest form
    local = {"upsert_pts_s": n / secs, "queries": time_queries(col, queries)}
    root.close()
    sample = points[:1024]  # path mode commits every point to SQLite: measure its rate on a sample, on disk
    root, _, secs = fill("local", disk / f"local-sample-{n}", sample, settings)
    local["path_upsert_pts_s"] = len(sample) / secs
    root.close()
    root, _, _ = fill("local", ram / f"local-{n}", points, settings)  # built in RAM to keep the run short
    root.close()
    local["reopen_s"] = reopen_s("local", ram / f"local-{n}")
    print(f"  local n={n}: upsert {local['upsert_pts_s']:.0f} pts/s (memory), {local['path_upsert_pts_s']:.0f} "
          f"pts/s (path), reopen {local['reopen_s']:.2f} s", flush=True)
    for folder in (disk, ram):
        for child in folder.iterdir():
            shutil.rmtree(child, ignore_errors=True)
    return {"edge": edge, "local": local}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10k points only, 30 queries")
    ap.add_argument("--sizes", type=int, nargs="*", help="point counts (default 10000 100000)")
    ap.add_argument("--queries", type=int, default=None)
    args = ap.parse_args()
    sizes = args.sizes or ([10_000] if args.quick else [10_000, 100_000])
    n_queries = args.queries or (30 if args.quick else 50)
    words, bm25 = vocabulary(), Bm25Encoder()
    shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(prefix="moesearch-bench-store-") as disk, \
            tempfile.TemporaryDirectory(prefix="moesearch-bench-store-", dir=shm) as ram:
        all_results = {n: run_size(n, n_queries, words, bm25, Path(disk), Path(ram)) for n in sizes}
    print(f"\nstore benchmark: {n_queries} queries, top-10, {DIM}-d cosine + BM25 (IDF), payload ~1 KB; edge on disk, "
          "local = qdrant-client local mode in memory (path mode searches the same way after loading)")
    print(f"{'points':>7} {'metric':<28} {'edge':>13} {'local':>13} {'local/edge':>10}")
    for n, r in all_results.items():
        e, lo = r["edge"], r["local"]
        print(f"{n:>7} {'upsert points/s':<28} {e['upsert_pts_s']:>13.0f} {lo['upsert_pts_s']:>13.0f} "
              f"{lo['upsert_pts_s'] / e['upsert_pts_s']:>9.2f}x")
        print(f"{n:>7} {'upsert points/s, path mode':<28} {'':>13} {lo['path_upsert_pts_s']:>13.0f} "
              f"{lo['path_upsert_pts_s'] / e['upsert_pts_s']:>9.3f}x")
        print(f"{n:>7} {'reopen s':<28} {e['reopen_s']:>13.2f} {lo['reopen_s']:>13.2f} "
              f"{lo['reopen_s'] / max(e['reopen_s'], 1e-6):>9.1f}x")
        for mode in ("dense", "keyword", "hybrid", "filtered"):
            (e50, e95), (l50, l95) = e["queries"][mode], lo["queries"][mode]
            print(f"{n:>7} {mode + ' p50 / p95 ms':<28} {e50:>6.2f}/{e95:>6.2f} {l50:>6.1f}/{l95:>6.1f} "
                  f"{l50 / e50:>9.1f}x")
        print(f"{n:>7} {'edge optimize() s':<28} {e['optimize_s']:>13.1f}")
        for mode in ("dense", "hybrid", "filtered"):
            (h50, h95), (l50, _) = e["queries_hnsw"][mode], lo["queries"][mode]
            print(f"{n:>7} {'edge+HNSW ' + mode + ' p50/p95':<28} {h50:>6.2f}/{h95:>6.2f} {'':>13} {l50 / h50:>9.1f}x")


if __name__ == "__main__":
    main()
