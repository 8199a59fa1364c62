"""Query latency: embed + search for one short query, profiled by stage, before/after the query-path changes in
the same run.

A store of N chunk-like points (the embedding-like synthetic vectors of bench/scale.py, default quantization,
HNSW built) is searched through the pipeline's own path (``indexer.search.run_search``) with the shipped model's
real encoders.  The workload is what the app does: each distinct query is searched (hybrid, k=10), then searched
again as Streamlit reruns the page when the user changes something: the same search, dense mode, and k=20.

* before: the query vector is computed on every search (the old ``Encoders.embed_query``);
* after: ``Encoders`` keeps the vectors of recent queries (``QUERY_CACHE``), so a rerun skips the model.

The two run interleaved query by query (order alternating).  The stage profile times, for a first search:
tokenizer, the ONNX session (one sequence), pooling, the BM25 query, the store query (hybrid RRF with payloads),
and building the hits (highlighted terms).

    python bench/query_latency.py --quick      # 20k points, 40 queries
    python bench/query_latency.py              # 100k points, 100 queries (target: p50 <= 12 ms, p95 <= 30 ms)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scale import BATCH, points, seed_texts, seed_vectors, shipped_model, vocabulary  # noqa: E402

from indexer.encoders import Encoders  # noqa: E402
from indexer.schema import VISIBLE, collection_spec  # noqa: E402
from indexer.search import run_search, to_hit  # noqa: E402
from indexer.settings import IndexerSettings  # noqa: E402
from indexer.sparse import Bm25Encoder  # noqa: E402
from indexer.store.base import QuerySpec  # noqa: E402

RERUNS = (("hybrid", 10), ("hybrid", 10), ("dense", 10), ("hybrid", 20))  # first search, then the app's reruns


class Uncached(Encoders):
    """The query path before: the model embeds the query on every search."""

    def embed_query(self, text: str) -> np.ndarray:
        return self.embedder.embed_query(text)


def pct(samples) -> tuple[float, float]:
    a = np.asarray(samples) * 1000
    return round(float(np.percentile(a, 50)), 2), round(float(np.percentile(a, 95)), 2)


def query_texts(n: int) -> list[str]:
    texts, rng = seed_texts(), np.random.default_rng(3)
    out = []
    for i in range(n):
        words = [w.strip(".,;:()`*#") for w in texts[i % len(texts)].split()]
        words = [w for w in words if w.isalpha()]
        start = int(rng.integers(0, max(1, len(words) - 6)))
        out.append(" ".join(words[start:start + int(rng.integers(2, 6))]) or "search")
    return list(dict.fromkeys(out))


def build_store(folder: Path, n: int, settings: IndexerSettings, spec):
    from indexer.store.edge import EdgeRoot

    seeds, words, bm25 = seed_vectors(), vocabulary(), Bm25Encoder()
    root = EdgeRoot(folder)
    col = root.create("moesearch-latency", collection_spec(spec, settings))
    t0 = time.perf_counter()
    for start in range(0, n, BATCH):
        col.upsert(points(seeds, start, min(BATCH, n - start), words, bm25))
    t1 = time.perf_counter()
    col.optimize()
    print(f"store: {n} points upserted in {t1 - t0:.0f} s, index built in {time.perf_counter() - t1:.0f} s "
          f"({settings.quantization})", flush=True)
    return root, col


def stages(col, enc: Encoders, text: str, s: IndexerSettings) -> dict[str, float]:
    """Seconds per stage of one first-time hybrid search."""
    from embedder.runtime import _pad, l2_normalize, mean_pool

    emb = enc.embedder
    out = {}
    t0 = time.perf_counter()
    e = emb.tokenizer.encode(emb.settings.prefix_for("search_query") + text)
    ids, mask = _pad([e.ids])
    t1 = time.perf_counter()
    hidden = emb.session.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask})[0]
    t2 = time.perf_counter()
    vec = l2_normalize(mean_pool(hidden.astype(np.float32), mask))[0]
    t3 = time.perf_counter()
    sparse = enc.sparse_query(text)
    t4 = time.perf_counter()
    records = col.query(QuerySpec(limit=10, dense=vec, sparse=sparse if len(sparse) else None, where=VISIBLE,
                                  prefetch=s.prefetch, rrf_k=s.rrf_k, hnsw_ef=s.hnsw_ef))
    t5 = time.perf_counter()
    [to_hit(r, enc, sparse) for r in records]
    t6 = time.perf_counter()
    out.update(tokenize=t1 - t0, onnx_session=t2 - t1, pooling=t3 - t2, bm25_query=t4 - t3, store_query=t5 - t4,
               hits=t6 - t5)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--points", type=int, default=None)
    ap.add_argument("--queries", type=int, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    n = args.points or (20_000 if args.quick else 100_000)
    texts = query_texts(args.queries or (40 if args.quick else 100))
    from embedder.runtime import Embedder

    settings = IndexerSettings.from_env(keep_files="none")
    embedder = Embedder(settings.model_dir or shipped_model(), device="cpu")
    spec = Encoders.spec_for(embedder, settings)
    before, after = Uncached(embedder, spec), Encoders(embedder, spec)
    s = settings
    with tempfile.TemporaryDirectory(prefix="moesearch-latency-") as tmp:
        root, col = build_store(Path(tmp), n, settings, spec)
        for text in texts[:5]:  # warm up (session, page cache, BM25 term cache)
            run_search(col, before, "warm " + text, 10, None, "hybrid", s.prefetch, s.rrf_k, s.hnsw_ef)
        lat = {"before": {"all": [], "first": [], "rerun": []}, "after": {"all": [], "first": [], "rerun": []}}
        prof: dict[str, list[float]] = {}
        for i, text in enumerate(texts):
            order = (("before", before), ("after", after)) if i % 2 == 0 else (("after", after), ("before", before))
            for name, enc in order:
                for j, (mode, k) in enumerate(RERUNS):
                    t0 = time.perf_counter()
                    run_search(col, enc, text, k, None, mode, s.prefetch, s.rrf_k, s.hnsw_ef)
                    dt = time.perf_counter() - t0
                    lat[name]["all"].append(dt)
                    lat[name]["first" if j == 0 else "rerun"].append(dt)
            for stage, dt in stages(col, before, text, s).items():
                prof.setdefault(stage, []).append(dt)
        root.close()
    print(f"\nquery latency, {n} points, {len(texts)} queries x {len(RERUNS)} searches (first + app reruns), "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print(f"{'searches':<10} {'before p50/p95 ms':>20} {'after p50/p95 ms':>20} {'p50 ratio':>10}")
    result = {"points": n, "queries": len(texts), "load_avg": round(os.getloadavg()[0], 1)}
    for part in ("all", "first", "rerun"):
        b, a = pct(lat["before"][part]), pct(lat["after"][part])
        result[part] = {"before_p50_ms": b[0], "before_p95_ms": b[1], "after_p50_ms": a[0], "after_p95_ms": a[1]}
        print(f"{part:<10} {b[0]:>9.2f}/{b[1]:<10.2f} {a[0]:>9.2f}/{a[1]:<10.2f} {b[0] / a[0]:>9.2f}x")
    total = sum(float(np.median(v)) for v in prof.values())
    print("\nstages of a first hybrid search (median ms, share of the sum of medians):")
    result["stages_ms"] = {}
    for stage, v in prof.items():
        med = float(np.median(v)) * 1000
        result["stages_ms"][stage] = round(med, 3)
        print(f"  {stage:<14} {med:8.3f} ms  {100 * med / (total * 1000):5.1f}%")
    a = result["all"]
    print(f"\ntarget (all searches, embed + hybrid search at 100k): p50 <= 12 ms, p95 <= 30 ms -> "
          f"{'met' if a['after_p50_ms'] <= 12 and a['after_p95_ms'] <= 30 else 'not met'} "
          f"({a['after_p50_ms']} / {a['after_p95_ms']} ms; first searches {result['first']['after_p50_ms']} / "
          f"{result['first']['after_p95_ms']} ms)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
