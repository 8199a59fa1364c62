"""End-to-end benchmark: ingest a generated corpus of multi-page PDFs through ``Pipeline.ingest`` (the real
path: pypdf extraction, chunking, the ONNX embedder, BM25, qdrant-edge writes), then query latency of
``Pipeline.search`` (embed + search) at the ingested size and with the collection padded to ~100k chunks.

Baselines measured in the same run: the embedder alone on the same chunk texts (ingest overhead ratio) and
``embed_query`` alone (search overhead).  Targets from issue 3: >= 20 pages/s; query p50 <= 25 ms, p95 <= 60 ms.

    python bench/ingest_pdfs.py --quick        # 20 PDFs x 5 pages, padded to 20k chunks
    python bench/ingest_pdfs.py                # 200 PDFs x 5 pages, padded to 100k chunks
    python bench/ingest_pdfs.py --quick --models minilm-moe-upcycled multilingual-e5-moe   # pages/s ratio
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from indexer.pipeline import Pipeline  # noqa: E402
from indexer.schema import VISIBLE  # noqa: E402
from indexer.settings import IndexerSettings  # noqa: E402
from indexer.store.base import PointRecord, scroll_all  # noqa: E402

WORDS_PER_PAGE = 350
QUERIES = ["protein structure prediction", "effects of climate change on glaciers", "battery energy density",
           "how do vaccines train the immune system", "compiler optimisation passes", "market trade history",
           "neural network gradient descent", "river flooding and soil erosion", "memory and synaptic plasticity",
           "solar wind magnetic storms"]


def vocabulary() -> list[str]:
    vocab = ROOT / "models" / "minilm-moe-upcycled" / "vocab.txt"
    text = vocab.read_text() if vocab.is_file() else ""
    words = [w for w in text.split() if w.isascii() and w.isalpha() and len(w) > 2]  # fpdf2 core fonts: latin-1
    return words or "the of protein cell river climate energy market history network memory".split()


def page_text(rng, words: list[str]) -> str:
    out, n = [], 0
    while n < WORDS_PER_PAGE:
        k = int(rng.integers(8, 22))
        ranks = np.minimum(rng.zipf(1.3, size=k) - 1, len(words) - 1)
        out.append(" ".join(words[i] for i in ranks).capitalize() + ".")
        n += k
        if rng.random() < 0.15:
            out.append("\n\n")
    return " ".join(out)


def make_corpus(folder: Path, n_pdfs: int, pages: int, seed: int = 0) -> int:
    from fpdf import FPDF

    rng = np.random.default_rng(seed)
    words = vocabulary()
    for i in range(n_pdfs):
        pdf = FPDF()
        pdf.set_font("helvetica", size=10)
        for _ in range(pages):
            pdf.add_page()
            pdf.multi_cell(0, 4.5, page_text(rng, words))
        pdf.output(str(folder / f"doc{i:04d}.pdf"))
    return n_pdfs * pages


def pad(pipeline: Pipeline, target: int, seed: int = 1) -> int:
    """Add synthetic visible chunks (random unit vectors, BM25 of synthetic text) up to ``target`` chunks."""
    col = pipeline._active.collection
    have = pipeline.stats().chunks
    rng = np.random.default_rng(seed)
    words = vocabulary()
    encoders = pipeline._active.encoders
    dim = pipeline._active.spec.dim
    added = 0
    while have + added < target:
        n = min(1024, target - have - added)
        dense = rng.normal(size=(n, dim)).astype(np.float32)
        dense /= np.linalg.norm(dense, axis=1, keepdims=True)
        points = []
        for j in range(n):
            text = page_text(rng, words)[:1200]
            doc = f"{(added + j) // 40:064x}"
            payload = {"kind": "chunk", "state": "complete", "doc_id": doc, "source": f"pad{(added + j) // 40}.pdf",
                       "path": "", "doc_type": "pdf", "page": 1, "chunk_index": (added + j) % 40, "char_start": 0,
                       "char_end": len(text), "text": text, "content_sha256": "", "model_id": "pad",
                       "ingested_at": "2026-01-01T00:00:00.000000Z"}
            points.append(PointRecord(str(uuid.uuid4()), payload, dense[j], encoders.sparse_document(text)))
        col.upsert(points)
        added += n
    return added


def latency(pipeline: Pipeline, rounds: int) -> dict[str, tuple[float, float]]:
    out = {}
    embedder = pipeline.embedder
    samples = []
    for _ in range(rounds):
        for q in QUERIES:
            t0 = time.perf_counter()
            embedder.embed_query(q)
            samples.append(time.perf_counter() - t0)
    out["embed_query only"] = samples
    for mode in ("hybrid", "dense", "keyword"):
        samples = []
        for _ in range(rounds):
            for q in QUERIES:
                t0 = time.perf_counter()
                pipeline.search(q, k=10, mode=mode)
                samples.append(time.perf_counter() - t0)
        out[mode] = samples
    return {k: (float(np.percentile(v, 50) * 1000), float(np.percentile(v, 95) * 1000)) for k, v in out.items()}


def ingest_once(docs: Path, data: Path, model: str | None, pages: int) -> tuple[float, str, str]:
    """Ingest ``docs`` into a fresh index under ``data`` with ``model``: (pages/s, model id, ONNX file)."""
    settings = IndexerSettings.from_env(data_dir=data, backend="edge", qdrant_url=None,
                                        **({"model_dir": model} if model else {}))
    with Pipeline(settings) as p:
        t0 = time.perf_counter()
        report = p.ingest([docs])
        seconds = time.perf_counter() - t0
        assert report.all_ok and report.pages == pages, report.to_dict()
        return pages / seconds, p.embedder.model_id, p.embedder.model_file.name


def compare_models(models: list[str], n_pdfs: int, pages_per_pdf: int, repeats: int) -> None:
    """Issue 23's default rule: pages/s of each model on the same corpus, alternated ``repeats`` times (median),
    and each model's ratio to the first; the multilingual default needs >= 0.4x the English model."""
    with tempfile.TemporaryDirectory(prefix="moesearch-bench-models-") as tmp:
        docs = Path(tmp) / "docs"
        docs.mkdir()
        pages = make_corpus(docs, n_pdfs, pages_per_pdf)
        rates: dict[str, list[float]] = {m: [] for m in models}
        names: dict[str, str] = {}
        for r in range(repeats):
            for i, model in enumerate(models):
                rate, model_id, file = ingest_once(docs, Path(tmp) / f"data-{r}-{i}", model, pages)
                rates[model].append(rate)
                names[model] = f"{model_id} ({file})"
                print(f"round {r + 1}: {names[model]}: {rate:.2f} pages/s", flush=True)
        base = float(np.median(rates[models[0]]))
        print(f"\n{n_pdfs} PDFs x {pages_per_pdf} pages, median of {repeats} alternated runs")
        for model in models:
            med = float(np.median(rates[model]))
            print(f"{names[model]:<52} {med:7.2f} pages/s  {med / base:5.2f}x the first"
                  + ("" if model == models[0] else f"  (rule >= 0.4x: {'met' if med / base >= 0.4 else 'NOT met'})"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", help="only ingest throughput, of each model in turn on one corpus "
                    "(MOESEARCH_MODEL specs; the first is the baseline), e.g. minilm-moe-upcycled multilingual-e5-moe")
    ap.add_argument("--repeats", type=int, default=2, help="with --models: alternated runs per model")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--pdfs", type=int)
    ap.add_argument("--pages", type=int, default=5)
    ap.add_argument("--pad-to", type=int)
    ap.add_argument("--rounds", type=int, default=5, help="passes over the 10 queries")
    args = ap.parse_args()
    n_pdfs = args.pdfs or (20 if args.quick else 200)
    if args.models:
        compare_models(args.models, n_pdfs, args.pages, args.repeats)
        return
    pad_to = args.pad_to or (20_000 if args.quick else 100_000)
    with tempfile.TemporaryDirectory(prefix="moesearch-bench-ingest-") as tmp:
        docs = Path(tmp) / "docs"
        docs.mkdir()
        t0 = time.perf_counter()
        pages = make_corpus(docs, n_pdfs, args.pages)
        print(f"generated {n_pdfs} PDFs x {args.pages} pages in {time.perf_counter() - t0:.1f} s", flush=True)
        settings = IndexerSettings.from_env(data_dir=Path(tmp) / "data", backend="edge", qdrant_url=None)
        with Pipeline(settings) as p:
            print(f"model {p.embedder.model_id} ({p.embedder.model_file.name} on {p.embedder.provider}), chunks of "
                  f"{p._active.encoders.max_tokens} tokens, overlap {p._active.encoders.overlap}", flush=True)
            t0 = time.perf_counter()
            report = p.ingest([docs])
            ingest_s = time.perf_counter() - t0
            assert report.all_ok and report.pages == pages, report.to_dict()
            texts = [r.payload["text"] for r in scroll_all(p._active.collection, VISIBLE)]
            t0 = time.perf_counter()
            p.embedder.embed_documents(texts, batch_size=settings.batch_size)
            embed_s = time.perf_counter() - t0
            print(f"\ningest: {report.ok} PDFs, {pages} pages, {report.chunks} chunks in {ingest_s:.1f} s = "
                  f"{pages / ingest_s:.1f} pages/s ({report.chunks / ingest_s:.1f} chunks/s); target >= 20 pages/s")
            print(f"baseline, embedder alone on the same {len(texts)} chunks: {embed_s:.1f} s = "
                  f"{len(texts) / embed_s:.1f} chunks/s; pipeline time / embed time = {ingest_s / embed_s:.2f}x")
            rows = {f"{report.chunks} chunks": latency(p, args.rounds)}
            t0 = time.perf_counter()
            added = pad(p, pad_to)
            pad_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            p.optimize()
            opt_s = time.perf_counter() - t0
            print(f"padded with {added} synthetic chunks in {pad_s:.1f} s; HNSW optimize() {opt_s:.1f} s", flush=True)
            rows[f"{p.stats().chunks} chunks"] = latency(p, args.rounds)
        print(f"\nquery latency, {len(QUERIES) * args.rounds} queries each, k=10 (target p50 <= 25 ms, p95 <= 60 ms)")
        print(f"{'collection':<16} {'path':<18} {'p50 ms':>8} {'p95 ms':>8} {'p50 / embed-only':>17}")
        for size, row in rows.items():
            base = row["embed_query only"][0]
            for name, (p50, p95) in row.items():
                print(f"{size:<16} {name:<18} {p50:>8.2f} {p95:>8.2f} {p50 / base:>16.2f}x")


if __name__ == "__main__":
    main()
