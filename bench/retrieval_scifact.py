"""Retrieval quality through the indexer's own path: SciFact (BEIR) test, nDCG@10 and Recall@100 for dense,
keyword (BM25) and hybrid (RRF) search.  Evaluation only: the held-out set is read from ../shared, never copied.

Every corpus document is ingested as an upload named ``<doc id>.txt`` holding ``title + blank line + text``
(so it is chunked, embedded and stored exactly as a user's file would be); a query's document ranking is its
chunk hits de-duplicated by document, in order.  Ratios are against keyword (BM25) search in the same run.

    python bench/retrieval_scifact.py --quick    # 50 queries, their judged docs + 950 others (a subset: NOT
                                                 # comparable with published figures)
    python bench/retrieval_scifact.py            # full test split: 300 queries, 5,183 docs
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from indexer.pipeline import Pipeline, ProgressEvent, Source  # noqa: E402
from indexer.settings import IndexerSettings  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "beir" / "scifact"


def load(folder: Path):
    corpus = {}
    with open(folder / "corpus.jsonl") as fh:
        for line in fh:
            d = json.loads(line)
            corpus[d["_id"]] = (d.get("title") or "", d.get("text") or "")
    queries = {}
    with open(folder / "queries.jsonl") as fh:
        for line in fh:
            q = json.loads(line)
            queries[q["_id"]] = q["text"]
    qrels: dict[str, dict[str, int]] = {}
    with open(folder / "qrels" / "test.tsv") as fh:
        next(fh)
        for line in fh:
            qid, did, score = line.rstrip("\n").split("\t")
            if int(score) > 0:
                qrels.setdefault(qid, {})[did] = int(score)
    return corpus, {q: queries[q] for q in qrels}, qrels


def ndcg_at(ranking: list[str], rels: dict[str, int], k: int = 10) -> float:
    dcg = sum(rels.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranking[:k]))
    ideal = sorted(rels.values(), reverse=True)[:k]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranking: list[str], rels: dict[str, int], k: int = 100) -> float:
    return len(set(ranking[:k]) & set(rels)) / len(rels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--hits", type=int, default=100, help="chunks retrieved per query")
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
            results = {}
            for mode in ("keyword", "dense", "hybrid"):
                ndcg, recall = [], []
                t0 = time.perf_counter()
                for qid, text in queries.items():
                    ranking: list[str] = []
                    for hit in p.search(text, k=args.hits, mode=mode):
                        did = hit.source.removesuffix(".txt")
                        if did not in ranking:
                            ranking.append(did)
                    ndcg.append(ndcg_at(ranking, qrels[qid]))
                    recall.append(recall_at(ranking, qrels[qid]))
                ms = (time.perf_counter() - t0) / len(queries) * 1000
                results[mode] = (sum(ndcg) / len(ndcg), sum(recall) / len(recall), ms)
    base = results["keyword"][0]
    print(f"\nSciFact test through the indexer, {label}")
    print(f"{'mode':<8} {'nDCG@10':>8} {'Recall@100':>11} {'ms/query':>9} {'nDCG vs keyword':>16}")
    for mode, (ndcg, recall, ms) in results.items():
        print(f"{mode:<8} {ndcg:>8.4f} {recall:>11.4f} {ms:>9.1f} {ndcg / base:>15.2f}x")


if __name__ == "__main__":
    main()
