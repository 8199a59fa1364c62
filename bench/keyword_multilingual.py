"""Keyword search in many languages through the indexer's own path: XQuAD (BEIR layout, 240 paragraphs and 1,190
questions a language), nDCG@10 of keyword (BM25) search with the old ``english`` mode and the new ``multilingual``
mode, and of dense and hybrid (RRF) search with the new mode.  Evaluation only: the data is read from ../shared.

Per language a temporary index (embedded qdrant-edge store) is built by ``Pipeline.ingest`` with
``MOESEARCH_BM25_LANGUAGE=multilingual``: every paragraph an upload ``<id>.txt`` holding ``title + blank line +
text``, chunked, embedded by the model and stored as a user's file would be.  Keyword, dense and hybrid rows are
``Pipeline.search``.  The ``english`` keyword row searches a copy of the same chunks (same ids, payloads and dense
vectors) whose BM25 vectors were recomputed in the ``english`` mode, through the same ``run_search`` with an
``Encoders`` for that spec, so the two keyword rows differ in the BM25 analysis only.  A query's ranking is its
chunk hits de-duplicated by paragraph, in order (100 chunks a query).  Each question runs in every row in
turn, dense before hybrid, so hybrid's ms/query in the JSON leaves out embedding the query (cached by then).

    python bench/keyword_multilingual.py                       # en de es zh ar hi ru, every question
    python bench/keyword_multilingual.py --langs zh --queries 200   # a seeded subsample (its size is printed)
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from indexer.encoders import Encoders  # noqa: E402
from indexer.pipeline import Pipeline, Source  # noqa: E402
from indexer.schema import VISIBLE, collection_spec  # noqa: E402
from indexer.search import run_search  # noqa: E402
from indexer.settings import IndexerSettings  # noqa: E402
from indexer.sparse import Bm25Params  # noqa: E402
from indexer.store.base import DENSE, PointRecord, scroll_all  # noqa: E402
from trainer.data import load_beir  # noqa: E402  (the trainer's BEIR reader and measures: one implementation)
from trainer.measures import measure_run  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "beir"
LANGS = ("en", "de", "es", "zh", "ar", "hi", "ru")
MODEL = ROOT / "models" / "multilingual-e5-moe"
ROWS = ("keyword/english", "keyword/multilingual", "dense", "hybrid/multilingual")
HITS = 100


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load(folder: Path, n_queries: int | None, seed: int):
    corpus, queries, qrels = load_beir(folder, "test")
    qrels = {q: {d: s for d, s in rels.items() if s > 0} for q, rels in qrels.items()}
    qrels = {q: rels for q, rels in qrels.items() if rels and q in queries}
    qids = sorted(qrels)
    if n_queries and n_queries < len(qids):
        qids = sorted(random.Random(seed).sample(qids, n_queries))
    return corpus, {q: queries[q] for q in qids}, {q: qrels[q] for q in qids}


def ranking(hits) -> dict[str, float]:
    """Chunk hits -> paragraphs in order, as an ir-measures run (descending scores)."""
    order: list[str] = []
    for hit in hits:
        did = hit.source.removesuffix(".txt")
        if did not in order:
            order.append(did)
    return {did: float(len(order) - i) for i, did in enumerate(order)}


def english_copy(p: Pipeline):
    """The active collection's chunks in a new collection with ``english`` BM25 vectors, and its ``Encoders``."""
    active, s = p._active, p.settings
    spec = replace(active.spec, bm25=Bm25Params("english", s.bm25_k, s.bm25_b, s.bm25_avg_len).as_dict())
    encoders = Encoders(p.embedder, spec)
    records = scroll_all(active.collection, VISIBLE)
    col = p.root.create(f"{s.collection}-bench-english", collection_spec(spec, s))
    for start in range(0, len(records), 256):
        batch = records[start:start + 256]
        dense = {r.id: r.vectors[DENSE] for r in active.collection.retrieve([r.id for r in batch], vectors=(DENSE,))}
        col.upsert([PointRecord(r.id, r.payload, dense[r.id], encoders.sparse_document(r.payload["text"]))
                    for r in batch])
    return col, encoders


def run_language(lang: str, args, embedder) -> dict:
    corpus, queries, qrels = load(args.data / f"xquad-{lang}", args.queries, args.seed)
    uploads = [Source.upload(f"{did}.txt", (f"{d['title']}\n\n{d['text']}" if d["title"] else d["text"]).encode())
               for did, d in corpus.items()]
    out: dict = {"paragraphs": len(corpus), "queries": len(queries)}
    with tempfile.TemporaryDirectory(prefix=f"moesearch-bench-kw-{lang}-") as tmp:
        settings = IndexerSettings(data_dir=Path(tmp), model_dir=args.model, device="cpu", backend="edge",
                                   keep_files="none", bm25_language="multilingual")
        with Pipeline(settings, embedder=embedder) as p:
            t0 = time.perf_counter()
            report = p.ingest(uploads)
            out.update(ingest_s=round(time.perf_counter() - t0, 1), chunks=report.chunks, indexed=report.ok,
                       bm25=p._active.spec.bm25)
            col_en, enc_en = english_copy(p)
            s = p.settings
            searches = {
                "keyword/english": lambda q: run_search(col_en, enc_en, q, HITS, None, "keyword", s.prefetch,
                                                        s.rrf_k, s.hnsw_ef),
                "keyword/multilingual": lambda q: p.search(q, k=HITS, mode="keyword"),
                "dense": lambda q: p.search(q, k=HITS, mode="dense"),
                "hybrid/multilingual": lambda q: p.search(q, k=HITS, mode="hybrid"),
            }
            runs: dict[str, dict] = {row: {} for row in ROWS}
            seconds = dict.fromkeys(ROWS, 0.0)
            for qid, text in queries.items():  # dense before hybrid: hybrid reuses the query's cached vector
                for row in ROWS:
                    t0 = time.perf_counter()
                    got = ranking(searches[row](text))
                    seconds[row] += time.perf_counter() - t0
                    if got:
                        runs[row][qid] = got
            for row in ROWS:
                m = measure_run(qrels, runs[row])
                out[row] = {"nDCG@10": m["nDCG@10"], "R@100": m["R@100"], "ci95": m["ci95"],
                            "ms_per_query": round(seconds[row] / len(queries) * 1000, 2)}
    return out


def table(results: dict) -> str:
    lines = [f"{'lang':<5} {'paras':>5} {'queries':>7} {'chunks':>6} | {'keyword english':>15} "
             f"{'keyword multi':>13} {'delta':>7} | {'dense':>6} {'hybrid multi':>12}"]
    for lang, r in results.items():
        en, ml = r["keyword/english"]["nDCG@10"], r["keyword/multilingual"]["nDCG@10"]
        lines.append(f"{lang:<5} {r['paragraphs']:>5} {r['queries']:>7} {r['chunks']:>6} | {en:>15.4f} {ml:>13.4f} "
                     f"{ml - en:>+7.4f} | {r['dense']['nDCG@10']:>6.4f} {r['hybrid/multilingual']['nDCG@10']:>12.4f}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--langs", nargs="+", default=list(LANGS))
    ap.add_argument("--data", type=Path, default=DATA, help="folder holding xquad-<lang>/ (BEIR layout)")
    ap.add_argument("--model", type=Path, default=MODEL)
    ap.add_argument("--queries", type=int, default=None, help="a seeded subsample of this many questions a language")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "keyword_multilingual.json")
    args = ap.parse_args()
    from embedder.runtime import Embedder

    embedder = Embedder(args.model, device="cpu")
    command = " ".join(["python", "bench/keyword_multilingual.py", *sys.argv[1:]])
    info = {"command": command, "cpu": cpu_model(), "model": str(args.model), "onnx": embedder.model_file.name,
            "hits_per_query": HITS, "measure": "nDCG@10 over paragraphs (chunk hits de-duplicated), ir_measures"}
    print(f"{command}\nCPU: {info['cpu']}; model {embedder.model_id} ({info['onnx']})", flush=True)
    results: dict = {}
    for lang in args.langs:
        t0 = time.perf_counter()
        results[lang] = run_language(lang, args, embedder)
        r = results[lang]
        print(f"{lang}: {r['indexed']}/{r['paragraphs']} paragraphs ({r['chunks']} chunks) in {r['ingest_s']:.0f} s, "
              f"{r['queries']} queries; keyword english {r['keyword/english']['nDCG@10']:.4f}, multilingual "
              f"{r['keyword/multilingual']['nDCG@10']:.4f}, hybrid {r['hybrid/multilingual']['nDCG@10']:.4f} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"\nXQuAD nDCG@10 through the indexer ({'every question' if not args.queries else 'a subsample'})\n"
          f"{table(results)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({**info, "results": results}, indent=1, ensure_ascii=False))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
