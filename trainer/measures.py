"""Retrieval measures of a run against judgements, per query and averaged (torch-free: the bench uses it too).

nDCG@10 and Recall@100 from ir-measures (pytrec_eval), as BEIR/MTEB report them; a judged query the run has no
result for scores 0; intervals come from `trainer.stats`.
"""

from __future__ import annotations

import ir_measures
import numpy as np
from ir_measures import R, nDCG

from .stats import RESAMPLES, SEED, bootstrap_ci

MEASURES = (nDCG @ 10, R @ 100)


def per_query(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """{measure: {qid: score}} for every judged query (0 for a query the run has no result for)."""
    out = {str(m): dict.fromkeys(qrels, 0.0) for m in MEASURES}
    for row in ir_measures.iter_calc(list(MEASURES), qrels, run):
        out[str(row.measure)][row.query_id] = float(row.value)
    return out


def run_measures(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> dict[str, float]:
    """Mean of each measure over the judged queries."""
    return {m: float(np.mean(list(s.values()))) for m, s in per_query(qrels, run).items()}


def measure_run(qrels, run, resamples: int = RESAMPLES, seed: int = SEED) -> dict:
    """Means, 95% bootstrap intervals over queries, and per-query scores of one run."""
    pq = per_query(qrels, run)
    out: dict = {}
    ci: dict = {}
    for m, scores in pq.items():
        iv = bootstrap_ci(np.fromiter(scores.values(), dtype=np.float64), resamples, seed)
        out[m], ci[m] = iv.mean, iv.to_json()
    return {**out, "ci95": ci, "bootstrap": {"resamples": resamples, "seed": seed, "over": "queries"},
            "per_query": pq}
