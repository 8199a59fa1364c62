"""Consistency filtering (Nomic Embed, after Wang et al. 2022): keep a pair only if a teacher agrees with it.

Per source, the teacher (the dense base) embeds every query and positive. Each query is scored against a pool:
its own positive plus ``pool_size - 1`` positives sampled from the same source (one seeded sample per source).
A pair is kept when its positive ranks in the top ``top_k`` of that pool (ties count in the pair's favour).
The report gives the kept fraction per source.
"""

from __future__ import annotations

import logging
from collections import defaultdict

import numpy as np
import torch

from .batching import prefixes, side_experts
from .config import FilterConfig
from .data import Pair
from .encode import TextEncoder

log = logging.getLogger(__name__)


def ranks_in_pool(q: torch.Tensor, pos: torch.Tensor, pool: torch.Tensor, same: torch.Tensor,
                  chunk: int = 2048) -> torch.Tensor:
    """Rank (0 = best) of each query's positive among pool docs, ignoring pool entries equal to it.

    q (N, D), pos (N, D), pool (M, D) normalised; same (N, M) bool: pool doc j is query i's own positive.
    """
    s_pos = (q * pos).sum(-1)  # (N,)
    out = []
    for s in range(0, q.shape[0], chunk):
        sim = q[s: s + chunk] @ pool.T  # (c, M)
        beats = (sim > s_pos[s: s + chunk, None]) & ~same[s: s + chunk]  # (c, M)
        out.append(beats.sum(-1))
    return torch.cat(out)  # (N,)


def filter_source(records: list[Pair], teacher: TextEncoder, cfg: FilterConfig, seed: int,
                  progress: bool = True) -> tuple[list[Pair], dict]:
    name = records[0].source if records else "?"
    docs = sorted({r.pos for r in records})
    doc_id = {t: i for i, t in enumerate(docs)}
    rng = np.random.default_rng([seed, len(docs)])
    m = min(cfg.pool_size - 1, len(docs))
    pool_ids = torch.as_tensor(np.sort(rng.choice(len(docs), size=m, replace=False)))  # (M,)
    qp, dp = prefixes(teacher.settings, records[0].task, True)
    qt, dt = side_experts(teacher.tasks, records[0].task)  # a task-expert teacher: the experts it was trained with
    q = teacher.embed([r.query for r in records], max_length=cfg.max_length, batch_size=cfg.batch_size,
                      prefix=qp, desc=f"filter {name} queries", progress=progress, task=qt)  # (N, D)
    d = teacher.embed(docs, max_length=cfg.max_length, batch_size=cfg.batch_size, prefix=dp,
                      desc=f"filter {name} docs", progress=progress, task=dt)  # (U, D)
    own = torch.tensor([doc_id[r.pos] for r in records])  # (N,)
    same = own[:, None] == pool_ids[None, :]  # (N, M)
    ranks = ranks_in_pool(q, d[own], d[pool_ids], same)  # (N,)
    keep = (ranks < cfg.top_k).tolist()
    kept = [r for r, k in zip(records, keep, strict=True) if k]
    stats = {"pairs": len(records), "kept": len(kept), "kept_fraction": round(len(kept) / max(1, len(records)), 4),
             "pool": m + 1, "top_k": cfg.top_k}
    log.info("filter %s: kept %d of %d (%.1f%%)", name, len(kept), len(records), 100 * stats["kept_fraction"])
    return kept, stats


def consistency_filter(records: list[Pair], teacher: TextEncoder, cfg: FilterConfig, seed: int = 0,
                       progress: bool = True) -> tuple[list[Pair], dict[str, dict]]:
    """Filter every source on its own; return the kept records (input order) and the per-source report."""
    by_source: dict[str, list[Pair]] = defaultdict(list)
    for r in records:
        by_source[r.source].append(r)
    kept_set, report = set(), {}
    for source, recs in sorted(by_source.items()):
        kept, report[source] = filter_source(recs, teacher, cfg, seed, progress)
        kept_set.update(id(r) for r in kept)
    return [r for r in records if id(r) in kept_set], report
