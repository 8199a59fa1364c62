"""Calibrate the search page's "no good match" threshold and relevance labels for a model, on held-out sets.

Each collection (SciFact test and XQuAD in several languages, read from ``../shared/data/beir``, never copied) is
ingested into its own index through the indexer's own path (uploads named ``<doc id>.txt``).  Then, through
``indexer.search.run_search`` (what the app calls), for every query:

* real queries: a collection's own questions against its own index;
* off-topic queries: another collection's questions (Cranfield's aerodynamics questions and SciFact's claims
  against XQuAD's Wikipedia paragraphs, XQuAD's English questions against SciFact's abstracts);
* nonsense queries: random letter strings ("qzvt plorb ...") and word salad, random words of the collection's own
  vocabulary strung together (they match words, so keyword search finds them, but mean nothing);

the best dense cosine among the hybrid search's ``--hits`` hits is recorded (what the page compares with the
threshold), with the top hit's relevance judgement for the real queries.

The threshold is the lowest 1st percentile (``--keep``) of the real queries' best cosine over the collections: at
most 1% of any collection's real queries would be told "no good match".  The "strong match" level is the lowest
cosine from which the top hit of the real queries (pooled) is judged relevant at least ``--precision`` of the
time.  The figures go into ``indexer/relevance.py`` (``CALIBRATIONS``) by hand, with this run's output.

    python bench/relevance_threshold.py --quick   # 60 queries per set, 600 SciFact docs (a smoke run)
    python bench/relevance_threshold.py           # 200 queries per set, 1,500 SciFact docs, 7 XQuAD languages
"""

from __future__ import annotations

import argparse
import json
import random
import string
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from indexer.pipeline import Pipeline, Source  # noqa: E402
from indexer.search import run_search  # noqa: E402
from indexer.settings import IndexerSettings  # noqa: E402
from trainer.data import load_beir  # noqa: E402  (the trainer's BEIR reader: one implementation)

DATA = ROOT.parent / "shared" / "data" / "beir"
LANGS = ("en", "de", "es", "zh", "ar", "hi", "ru")


def collection(folder: Path, max_queries: int, max_docs: int | None, rnd: random.Random):
    """(docs {id: text}, queries {qid: text}, relevant {qid: set(doc ids)}): ``max_queries`` judged test queries,
    their judged documents and other documents up to ``max_docs``."""
    corpus, queries, qrels = load_beir(folder, "test")
    qrels = {q: {d for d, s in rels.items() if s > 0} for q, rels in qrels.items() if q in queries}
    qids = sorted(q for q, rels in qrels.items() if rels)
    qids = sorted(rnd.sample(qids, min(max_queries, len(qids))))
    judged = {d for q in qids for d in qrels[q] if d in corpus}
    keep = set(corpus)
    if max_docs is not None and len(corpus) > max_docs:
        keep = judged | set(rnd.sample(sorted(set(corpus) - judged), max(0, max_docs - len(judged))))
    docs = {d: (f"{corpus[d]['title']}\n\n{corpus[d]['text']}" if corpus[d]["title"] else corpus[d]["text"])
            for d in sorted(keep) if corpus[d]["text"].strip()}
    return docs, {q: queries[q] for q in qids}, {q: qrels[q] for q in qids}


def letters(n: int, rnd: random.Random) -> list[str]:
    """``n`` random letter strings of 1-5 "words" ("qzvt plorb")."""
    return [" ".join("".join(rnd.choices(string.ascii_lowercase, k=rnd.randint(3, 9)))
                     for _ in range(rnd.randint(1, 5))) for _ in range(n)]


def word_salad(docs: dict[str, str], n: int, rnd: random.Random) -> list[str]:
    """``n`` strings of 2-6 random words of the documents (real words of the collection, no meaning)."""
    words = sorted({w for text in docs.values() for w in text.split() if w.isalpha() and len(w) > 3})
    return [" ".join(rnd.sample(words, rnd.randint(2, 6))) for _ in range(n)]


def best(p: Pipeline, text: str, hits: int) -> tuple[float, str, list[tuple[float, str]]]:
    """(best dense cosine among the hybrid search's hits, that hit's document id, and (cosine, document id) of
    each other document's best hit: the cards below the best one)."""
    active, s = p._active, p.settings
    found = run_search(active.collection, active.encoders, text, hits, None, "hybrid", s.prefetch, s.rrf_k,
                       s.hnsw_ef)
    top = max(found, key=lambda h: h.similarity)
    others: dict[str, float] = {}
    for h in found:
        doc = h.source.removesuffix(".txt")
        others[doc] = max(others.get(doc, -1.0), h.similarity)
    top_doc = top.source.removesuffix(".txt")
    return top.similarity, top_doc, [(sim, doc) for doc, sim in others.items() if doc != top_doc]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--queries", type=int, default=200, help="real queries per collection")
    ap.add_argument("--scifact-docs", type=int, default=1500, help="SciFact documents: judged ones + random others")
    ap.add_argument("--langs", default=",".join(LANGS), help="XQuAD languages")
    ap.add_argument("--hits", type=int, default=40, help="chunks per search (the page asks for 4 x its results)")
    ap.add_argument("--keep", type=float, default=0.99, help="share of every set's real queries kept above it")
    ap.add_argument("--precision", type=float, default=0.9, help="top-hit precision of a strong match")
    ap.add_argument("--json", type=Path, help="write the per-query figures here")
    args = ap.parse_args()
    if args.quick:
        args.queries, args.scifact_docs = 60, 600
    rnd = random.Random(0)
    sets = {"scifact": collection(args.data / "scifact", args.queries, args.scifact_docs, rnd)}
    for lang in args.langs.split(","):
        sets[f"xquad-{lang}"] = collection(args.data / f"xquad-{lang}", args.queries, None, rnd)
    _, cran_queries, _ = collection(args.data / "cranfield", args.queries, 0, rnd)
    off_topic = {"scifact": ("xquad-en questions", sets["xquad-en"][1] if "xquad-en" in sets else {})}
    for name in sets:
        if name.startswith("xquad"):
            off_topic[name] = ("Cranfield + SciFact questions",
                               {**{f"c{k}": v for k, v in list(cran_queries.items())[:args.queries // 2]},
                                **{f"s{k}": v for k, v in list(sets["scifact"][1].items())[:args.queries // 2]}})
    rows: dict[str, dict] = {}
    model = ""
    with tempfile.TemporaryDirectory(prefix="moesearch-bench-relevance-") as tmp:
        for name, (docs, queries, relevant) in sets.items():
            settings = IndexerSettings.from_env(data_dir=Path(tmp) / name, backend="edge", qdrant_url=None,
                                                keep_files="none")
            with Pipeline(settings) as p:
                t0 = time.perf_counter()
                report = p.ingest([Source.upload(f"{d}.txt", text.encode()) for d, text in docs.items()])
                model = f"{p.embedder.model_id} ({p.embedder.model_file.name})"
                print(f"{name}: ingested {report.ok} docs ({report.chunks} chunks) in "
                      f"{time.perf_counter() - t0:.0f} s", flush=True)
                real = [(*best(p, text, args.hits), qid) for qid, text in queries.items()]
                label, other = off_topic[name]
                rows[name] = {
                    "real": [s for s, _, _, _ in real],
                    "top_relevant": [did in relevant[qid] for _, did, _, qid in real],
                    # the other documents' best cosines, and whether each document is judged relevant
                    "others": [[(sim, did in relevant[qid]) for sim, did in rest] for _, _, rest, qid in real],
                    "off_topic": [best(p, text, args.hits)[0] for text in other.values()], "off_topic_label": label,
                    "letters": [best(p, text, args.hits)[0] for text in letters(args.queries // 2, rnd)],
                    "word_salad": [best(p, text, args.hits)[0] for text in word_salad(docs, args.queries // 2, rnd)],
                }
    report_figures(rows, args, model)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


def report_figures(rows: dict, args, model: str) -> None:
    floor = {name: float(np.quantile(r["real"], 1 - args.keep)) for name, r in rows.items()}
    threshold = round(min(floor.values()), 3)
    sims = np.array([s for r in rows.values() for s in r["real"]])
    rel = np.array([x for r in rows.values() for x in r["top_relevant"]])
    strong = None
    for t in np.round(np.arange(0.5, 1.0, 0.005), 3):
        above = sims >= t
        if above.sum() >= 20 and rel[above].mean() >= args.precision:
            strong = float(t)
            break
    print(f"\nmodel {model}; best dense cosine among {args.hits} hybrid hits per query")
    print("medians (p50) and shares below the threshold (< thr); top ok = the real queries' top hit is judged "
          "relevant")
    print(f"{'set':<10} {'real p1':>8} {'p50':>6} {'top ok':>7} {'< thr':>6} | {'off-topic p50':>13} {'< thr':>6} | "
          f"{'letters p50':>11} {'< thr':>6} | {'word salad p50':>14} {'< thr':>6}")
    for name, r in rows.items():
        real = np.array(r["real"])
        cells = []
        for key, width in (("off_topic", 13), ("letters", 11), ("word_salad", 14)):
            values = np.array(r[key])
            cells.append(f"{np.median(values):>{width}.3f} {(values < threshold).mean():>6.1%}" if len(values)
                         else f"{'-':>{width}} {'-':>6}")
        print(f"{name:<10} {floor[name]:>8.3f} {np.median(real):>6.3f} {np.mean(r['top_relevant']):>7.2f} "
              f"{(real < threshold).mean():>6.1%} | " + " | ".join(cells))
    for key in ("off_topic", "letters", "word_salad"):
        values = np.array([s for r in rows.values() for s in r[key]])
        print(f"all sets, {key}: {(values < threshold).mean():.1%} of {len(values)} below the threshold")
    print(f"\nthreshold (no good match below): {threshold:.3f} (keeps >= {args.keep:.0%} of every set's real queries)")
    if strong is None:
        print(f"strong match: none (the top hit is never judged relevant >= {args.precision:.0%} of the time)")
    else:
        above = sims >= strong
        print(f"strong match from {strong:.3f}: top hit judged relevant {rel[above].mean():.1%} of the "
              f"{above.sum()} real queries at or above it ({rel.mean():.1%} overall)")
        rest = [ok for r in rows.values() for query in r["others"] for sim, ok in query if sim >= strong]
        if rest:  # why only the best hit is labelled strong (indexer.relevance.relevance_label)
            print(f"the other documents' best hits at or above {strong:.3f}: judged relevant {np.mean(rest):.1%} "
                  f"of {len(rest)}")


if __name__ == "__main__":
    main()
