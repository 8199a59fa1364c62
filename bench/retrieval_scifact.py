"""Retrieval quality through the indexer's own path: SciFact (BEIR) test, nDCG@10 and Recall@100 for dense,
keyword (BM25) and hybrid (RRF) search.  Evaluation only: the held-out set is read from ../shared, never copied.

Every corpus document is ingested as an upload named ``<doc id>.txt`` holding ``title + blank line + text``
(so it is chunked, embedded and stored exactly as a user's file would be); a query's document ranking is its
chunk hits de-duplicated by document, in order.  Ratios are against keyword (BM25) search in the same run.

Quantization rows (``--quantization``, on by default): the ingested chunks (their stored float32 vectors, BM25
recomputed from their text) are copied into one collection per mode of ``MOESEARCH_QUANTIZATION`` (none / int8 /
binary), each with its HNSW index and codes built (indexing threshold 1,000 points, so SciFact's few thousand
chunks are really searched on the codes), and dense and hybrid search run through the same search path; the
nDCG@10 cost of a mode is its difference from the float32 HNSW row ("none"), paired on the same queries.  The
search path rescores ``prefetch`` x oversampling candidates with the float32 originals, which hides the codes'
errors on a corpus this size; the "top-10 agreement" column shows they are in play: the share of the exact
(float32 brute force) top 10 chunks that a dense query returns with oversampling 1 (10 candidates rescored).

    python bench/retrieval_scifact.py --quick    # 50 queries, their judged docs + 950 others (a subset: NOT
                                                 # comparable with published figures)
    python bench/retrieval_scifact.py            # full test split: 300 queries, 5,183 docs
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from indexer.pipeline import Pipeline, ProgressEvent, Source  # noqa: E402
from indexer.schema import VISIBLE, collection_spec  # noqa: E402
from indexer.search import run_search  # noqa: E402
from indexer.settings import IndexerSettings  # noqa: E402
from indexer.store.base import DENSE, QUANTIZATIONS, PointRecord, QuerySpec, scroll_all  # noqa: E402
from trainer.data import load_beir  # noqa: E402  (the trainer's BEIR reader and measures: one implementation)
from trainer.measures import measure_run  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "beir" / "scifact"


def load(folder: Path):
    """The test split through the trainer's BEIR reader: judged-relevant documents only, judged queries only."""
    corpus, queries, qrels = load_beir(folder, "test")
    qrels = {q: {d: s for d, s in rels.items() if s > 0} for q, rels in qrels.items()}
    qrels = {q: rels for q, rels in qrels.items() if rels and q in queries}
    return {d: (doc["title"], doc["text"]) for d, doc in corpus.items()}, {q: queries[q] for q in qrels}, qrels


def as_run(ranking: list[str]) -> dict[str, float]:
    """A ranked list of document ids as an ir-measures run (descending scores)."""
    return {did: float(len(ranking) - i) for i, did in enumerate(ranking)}


def evaluate(search, queries, qrels, modes) -> dict:
    """{mode: (measures, ms/query)} for ``search(text, mode) -> hits``, rankings de-duplicated by document."""
    results = {}
    for mode in modes:
        run: dict[str, dict[str, float]] = {}
        t0 = time.perf_counter()
        for qid, text in queries.items():
            ranking: list[str] = []
            for hit in search(text, mode):
                did = hit.source.removesuffix(".txt")
                if did not in ranking:
                    ranking.append(did)
            if ranking:
                run[qid] = as_run(ranking)
        ms = (time.perf_counter() - t0) / len(queries) * 1000
        results[mode] = (measure_run(qrels, run), ms)
    return results


def quantization_rows(p: Pipeline, queries, qrels, hits: int) -> dict:
    """{quantization: {mode: (measures, ms)}}: the ingested chunks copied into one HNSW-built collection a mode."""
    active, s = p._active, p.settings
    records = scroll_all(active.collection, VISIBLE)
    vectors: dict[str, object] = {}
    for start in range(0, len(records), 256):
        for r in active.collection.retrieve([x.id for x in records[start:start + 256]], vectors=(DENSE,)):
            vectors[r.id] = r.vectors[DENSE]
    points = [PointRecord(r.id, r.payload, vectors[r.id], active.encoders.sparse_document(r.payload["text"]))
              for r in records]
    out = {}
    for q in QUANTIZATIONS:
        spec = replace(collection_spec(active.spec, s), quantization=q, indexing_threshold=1000)
        col = p.root.create(f"{s.collection}-bench-{q}", spec)
        for start in range(0, len(points), 256):
            col.upsert(points[start:start + 256])
        t0 = time.perf_counter()
        col.optimize()
        build_s = time.perf_counter() - t0

        def search(text, mode, col=col):
            return run_search(col, active.encoders, text, hits, None, mode, s.prefetch, s.rrf_k, s.hnsw_ef)

        out[q] = evaluate(search, queries, qrels, ("dense", "hybrid"))
        agree = []
        for text in queries.values():
            vec = active.encoders.embed_query(text)
            exact = {r.id for r in col.query(QuerySpec(limit=10, dense=vec, where=VISIBLE, exact=True))}
            got = col.query(QuerySpec(limit=10, dense=vec, where=VISIBLE, hnsw_ef=s.hnsw_ef, oversampling=1.0))
            agree.append(len(exact & {r.id for r in got}) / 10)
        out[q]["agreement"] = sum(agree) / len(agree)
        print(f"  {q}: {len(points)} chunks, index built in {build_s:.0f} s, dense nDCG@10 "
              f"{out[q]['dense'][0]['nDCG@10']:.4f}, top-10 agreement at oversampling 1: {out[q]['agreement']:.3f}",
              flush=True)
        p.root.drop(col.name)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--hits", type=int, default=100, help="chunks retrieved per query")
    ap.add_argument("--no-quantization", dest="quantization", action="store_false",
                    help="skip the per-quantization-mode rows")
    args = ap.parse_args()
    corpus, queries, qrels = load(args.data)
    label = "full test split"
    if args.quick:
        rnd = random.Random(0)
        qids = sorted(queries)[:50]
        queries = {q: queries[q] for q in qids}
        qrels = {q: qrels[q] for q in qids}
        judged = {d for q in qids for d in qrels[q]}
        others = rnd.sample(sorted(set(corpus) - judged), 1000 - len(judged))
        corpus = {d: corpus[d] for d in sorted(judged | set(others))}
        label = f"QUICK SUBSET ({len(queries)} queries, {len(corpus)} docs; not comparable)"
    uploads = [Source.upload(f"{did}.txt", (f"{title}\n\n{text}" if title else text).encode())
               for did, (title, text) in corpus.items()]
    with tempfile.TemporaryDirectory(prefix="moesearch-bench-scifact-") as tmp:
        settings = IndexerSettings.from_env(data_dir=Path(tmp), backend="edge", qdrant_url=None, keep_files="none")
        with Pipeline(settings) as p:
            last = [0.0]

            def progress(event: ProgressEvent) -> None:
                if event.stage == "done" and time.time() - last[0] > 30:
                    last[0] = time.time()
                    print(f"  ingested {event.files_done}/{event.files_total}", flush=True)

            t0 = time.perf_counter()
            report = p.ingest(uploads, progress=progress)
            ingest_s = time.perf_counter() - t0
            problems = [f for f in report.files if f.status != "ok"]
            print(f"ingested {report.ok} docs ({report.chunks} chunks) in {ingest_s:.0f} s; {len(problems)} not "
                  f"indexed: {[(f.name, f.status, f.reason[:60]) for f in problems[:5]]}")
            print(f"model {p.embedder.model_id} ({p.embedder.model_file.name}), chunks of "
                  f"{p._active.encoders.max_tokens} tokens, overlap {p._active.encoders.overlap}")
            results = evaluate(lambda text, mode: p.search(text, k=args.hits, mode=mode), queries, qrels,
                               ("keyword", "dense", "hybrid"))
            quantized = quantization_rows(p, queries, qrels, args.hits) if args.quantization else {}
    base = results["keyword"][0]["nDCG@10"]
    print(f"\nSciFact test through the indexer, {label} (95% bootstrap intervals over queries)")
    print(f"{'mode':<8} {'nDCG@10':>8} {'95% CI':>15} {'Recall@100':>11} {'ms/query':>9} {'nDCG vs keyword':>16}")
    for mode, (m, ms) in results.items():
        lo, hi = m["ci95"]["nDCG@10"]
        print(f"{mode:<8} {m['nDCG@10']:>8.4f} {lo:>7.4f}-{hi:<7.4f} {m['R@100']:>11.4f} {ms:>9.1f} "
              f"{m['nDCG@10'] / base:>15.2f}x")
    if quantized:
        print("\nquantization (MOESEARCH_QUANTIZATION), each collection HNSW-built; cost = nDCG@10 - none's, same "
              "queries (target: int8 within 0.002)")
        print(f"{'quant':<7} {'mode':<7} {'nDCG@10':>8} {'Recall@100':>11} {'ms/query':>9} {'cost':>8} "
              f"{'top-10 agreement':>17}")
        for q, rows in quantized.items():
            for mode in ("dense", "hybrid"):
                m, ms = rows[mode]
                cost = m["nDCG@10"] - quantized["none"][mode][0]["nDCG@10"]
                print(f"{q:<7} {mode:<7} {m['nDCG@10']:>8.4f} {m['R@100']:>11.4f} {ms:>9.1f} {cost:>+8.4f} "
                      f"{format(rows['agreement'], '.3f') if mode == 'dense' else '':>17}")


if __name__ == "__main__":
    main()
