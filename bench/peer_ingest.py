"""moesearch against the pipeline a user would assemble from common parts, side by side on the same PDFs.

(a) moesearch: ``Pipeline.ingest`` (sandboxed pypdf extraction, token chunking, the int8 MoE embedder, BM25, the
    embedded qdrant-edge store), queries through ``Pipeline.search`` (embed + hybrid search).
(b) the peer: pypdf page text, a fixed-size character splitter with overlap (1,000 characters, 200 overlap, the
    usual tutorial setting), sentence-transformers all-MiniLM-L6-v2 (torch, fp32, its default 256-token max
    length), qdrant-client local mode on disk; queries: encode with the same model + ``query_points`` (dense).

The corpus is generated text PDFs (bench/ingest_pdfs.py's generator).  Ingest rounds alternate which side goes
first, each into a fresh store; pages/s is the median over rounds.  Query latency is then measured on both stores
(same corpus, same queries, interleaved).  Dependencies of (b) are in the ``dev`` extra only.

    python bench/peer_ingest.py --quick [--json OUT]   # 10 PDFs x 5 pages, 1 round
    python bench/peer_ingest.py [--json OUT]           # 100 PDFs x 5 pages, 3 rounds
                                                       # targets: pages/s ratio >= 3, query p50 ratio >= 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ingest_pdfs import QUERIES, make_corpus  # noqa: E402

from indexer.pipeline import Pipeline  # noqa: E402
from indexer.settings import IndexerSettings  # noqa: E402

CHUNK_CHARS, OVERLAP_CHARS, BATCH = 1000, 200, 32


def split_chars(text: str, size: int = CHUNK_CHARS, overlap: int = OVERLAP_CHARS) -> list[str]:
    """Fixed-size character windows with overlap (what a character text splitter does, minus separators)."""
    step = size - overlap
    return [text[i:i + size] for i in range(0, max(1, len(text) - overlap), step) if text[i:i + size].strip()]


class Peer:
    def __init__(self):
        import torch
        from sentence_transformers import SentenceTransformer

        from embedder.upcycle import default_dense_dir

        torch.set_num_threads(os.cpu_count() or 1)
        self.model = SentenceTransformer(str(default_dense_dir()), device="cpu")  # all-MiniLM-L6-v2, pip-packaged
        self.client = None

    def ingest(self, folder: Path, store: Path) -> int:
        from pypdf import PdfReader
        from qdrant_client import QdrantClient
        from qdrant_client import models as m

        if self.client is not None:
            self.client.close()
        self.client = QdrantClient(path=str(store))
        self.client.create_collection("peer", vectors_config=m.VectorParams(size=384, distance=m.Distance.COSINE))
        pages = 0
        for pdf in sorted(folder.glob("*.pdf")):
            chunks = []
            for page_no, page in enumerate(PdfReader(pdf).pages, start=1):
                pages += 1
                chunks += [(page_no, c) for c in split_chars(page.extract_text() or "")]
            vectors = self.model.encode([c for _, c in chunks], batch_size=BATCH, normalize_embeddings=True)
            self.client.upsert("peer", [m.PointStruct(id=str(uuid.uuid4()), vector=v.tolist(),
                                                      payload={"source": pdf.name, "page": p, "text": c})
                                        for (p, c), v in zip(chunks, vectors, strict=True)])
        return pages

    def search(self, query: str, k: int = 10):
        vec = self.model.encode(query, normalize_embeddings=True)
        return self.client.query_points("peer", query=vec.tolist(), limit=k, with_payload=True).points


def moesearch_ingest(folder: Path, data: Path) -> tuple[Pipeline, int]:
    """A fresh store under ``data`` with every PDF of ``folder`` in it; the pipeline (open) and the pages read."""
    settings = IndexerSettings.from_env(data_dir=data, backend="edge", qdrant_url=None, keep_files="none")
    p = Pipeline(settings)
    report = p.ingest([folder])
    if report.failed or report.store_error or not report.ok:
        p.close()
        raise SystemExit(f"moesearch ingest failed: {report.store_error or report.files[:3]}")
    return p, report.pages


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--pdfs", type=int, default=None)
    ap.add_argument("--pages", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--query-reps", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    n_pdfs, rounds = args.pdfs or (10 if args.quick else 100), args.rounds or (1 if args.quick else 3)
    peer = Peer()
    with tempfile.TemporaryDirectory(prefix="moesearch-peer-") as tmp:
        tmp = Path(tmp)
        corpus = tmp / "corpus"
        corpus.mkdir()
        pages = make_corpus(corpus, n_pdfs, args.pages)
        rates: dict[str, list[float]] = {"moesearch": [], "peer": []}
        pipeline = None
        for r in range(rounds):
            order = ("moesearch", "peer") if r % 2 == 0 else ("peer", "moesearch")
            for side in order:
                t0 = time.perf_counter()
                if side == "moesearch":
                    if pipeline is not None:
                        pipeline.close()
                    pipeline, read = moesearch_ingest(corpus, tmp / f"moesearch-{r}")
                    assert read == pages, (read, pages)
                else:
                    assert peer.ingest(corpus, tmp / f"peer-{r}") == pages
                rates[side].append(pages / (time.perf_counter() - t0))
                print(f"  round {r + 1}: {side} {rates[side][-1]:.2f} pages/s", flush=True)
        chunks = {"moesearch": pipeline.stats().chunks, "peer": peer.client.count("peer").count}
        for q in QUERIES[:3]:  # warm up both
            pipeline.search(q)
            peer.search(q)
        lat: dict[str, list[float]] = {"moesearch": [], "peer": []}
        for rep in range(args.query_reps):
            for i, q in enumerate(QUERIES):
                text = f"{q} {rep}" if rep else q  # distinct texts: no side answers from a cache
                sides = (("moesearch", lambda t: pipeline.search(t)), ("peer", peer.search))
                for side, run in sides if i % 2 == 0 else sides[::-1]:
                    t0 = time.perf_counter()
                    run(text)
                    lat[side].append(time.perf_counter() - t0)
        pipeline.close()
        peer.client.close()
    pps = {k: statistics.median(v) for k, v in rates.items()}
    p50 = {k: float(np.percentile(np.asarray(v) * 1000, 50)) for k, v in lat.items()}
    p95 = {k: float(np.percentile(np.asarray(v) * 1000, 95)) for k, v in lat.items()}
    result = {"pdfs": n_pdfs, "pages": pages, "rounds": rounds, "chunks": chunks, "pages_per_s": pps,
              "query_p50_ms": p50, "query_p95_ms": p95, "pages_per_s_ratio": pps["moesearch"] / pps["peer"],
              "query_p50_ratio": p50["peer"] / p50["moesearch"], "load_avg": round(os.getloadavg()[0], 1)}
    print(f"\n{n_pdfs} PDFs x {args.pages} pages ({pages} pages), {rounds} round(s), {os.cpu_count()} cores, "
          f"load {result['load_avg']}; chunks: moesearch {chunks['moesearch']}, peer {chunks['peer']}")
    print(f"{'':<12} {'pages/s':>9} {'query p50 ms':>13} {'query p95 ms':>13}")
    for side in ("moesearch", "peer"):
        print(f"{side:<12} {pps[side]:>9.2f} {p50[side]:>13.1f} {p95[side]:>13.1f}")
    print(f"pages/s ratio moesearch/peer {result['pages_per_s_ratio']:.2f} (target >= 3); query p50 ratio "
          f"peer/moesearch {result['query_p50_ratio']:.2f} (target >= 5)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
