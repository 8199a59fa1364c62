"""``python -m trainer eval``: nDCG@10 and Recall@100 of a model folder on a BEIR folder.

Documents are embedded as ``title + " " + text`` with the folder's document prefix, queries with its query
prefix (the dense base has none), exact inner-product search over the whole corpus, and the measures come
from ir-measures (which runs pytrec_eval), so the numbers are the ones BEIR/MTEB report.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import ir_measures
import torch
from ir_measures import R, nDCG

from .data import doc_text, load_beir, split_spec
from .encode import TextEncoder

log = logging.getLogger(__name__)

MEASURES = (nDCG @ 10, R @ 100)
TOP_K = 1000


def search(q: torch.Tensor, d: torch.Tensor, k: int, chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k (scores, indices) of q (Q, D) against d (N, D) by inner product."""
    k = min(k, d.shape[0])
    scores, idx = [], []
    for s in range(0, q.shape[0], chunk):
        sim = q[s: s + chunk] @ d.T  # (c, N)
        top = sim.topk(k, dim=1)
        scores.append(top.values)
        idx.append(top.indices)
    return torch.cat(scores), torch.cat(idx)  # (Q, k), (Q, k)


def run_measures(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> dict[str, float]:
    agg = ir_measures.calc_aggregate(list(MEASURES), qrels, run)
    return {str(m): float(agg[m]) for m in MEASURES}


def evaluate(encoder: TextEncoder, folder: str | Path, split: str = "test", *, max_length: int = 512,
             batch_size: int = 32, dim: int | None = None, progress: bool = True) -> dict:
    """Measures of ``encoder`` on one BEIR split (queries without judgements are skipped, as in BEIR)."""
    t0 = time.time()
    corpus, queries, qrels = load_beir(folder, split)
    qids = [q for q in qrels if q in queries]
    if not qids:
        raise ValueError(f"{folder}: no judged queries in split {split!r}")
    dids = list(corpus)
    s = encoder.settings
    d_emb = encoder.embed([doc_text(corpus[i]) for i in dids], max_length=max_length, batch_size=batch_size,
                          prefix=s.document_prefix, dim=dim, desc=f"{Path(folder).name} docs", progress=progress)
    q_emb = encoder.embed([queries[i] for i in qids], max_length=max_length, batch_size=batch_size,
                          prefix=s.query_prefix, dim=dim, desc=f"{Path(folder).name} queries", progress=progress)
    scores, idx = search(q_emb, d_emb, TOP_K)
    run = {qid: {dids[j]: float(v) for v, j in zip(scores[n].tolist(), idx[n].tolist(), strict=True)}
           for n, qid in enumerate(qids)}
    judged = {q: qrels[q] for q in qids}
    result = {"dataset": Path(folder).name, "split": split, "model": str(encoder.folder),
              "model_id": s.model_id, "queries": len(qids), "docs": len(dids), "max_length": max_length,
              "dim": dim or encoder.hidden_size, "query_prefix": s.query_prefix, "document_prefix": s.document_prefix,
              **run_measures(judged, run), "seconds": round(time.time() - t0, 1)}
    log.info("%s", json.dumps(result))
    return result


def evaluate_many(model: str | Path, specs: list[str], **kw) -> list[dict]:
    """One model on several ``path[:split]`` BEIR specs (default split test)."""
    encoder = TextEncoder.load(model)
    out = []
    for spec in specs:
        path, split = split_spec(spec, "test")
        out.append(evaluate(encoder, path, split, **kw))
    return out
