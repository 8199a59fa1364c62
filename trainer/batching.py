"""Batches of training records, a pure function of (seed, step): a resumed run draws the same batches.

With ``source_batches`` every batch comes from one source, chosen with probability proportional to its size
(Nomic: mixing sources in a batch lets the model separate sources instead of texts); a source smaller than
the batch is topped up from the others. A batch never holds the same query or positive twice (an in-batch
duplicate positive would be a false negative). Prefixes are applied per task.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from embedder.settings import EmbeddingSettings

from .data import Pair


@dataclass(frozen=True)
class Batch:
    queries: list[str]  # (B,) prefixed
    docs: list[str]  # (B,) prefixed positives
    negs: list[str]  # (B * k,) prefixed, query-major
    sources: list[str]

    def slice(self, rank: int, world: int, num_negs: int) -> Batch:
        """This rank's contiguous share (rank-major order == the single-process order)."""
        b = len(self.queries) // world
        lo, hi = rank * b, (rank + 1) * b
        return Batch(self.queries[lo:hi], self.docs[lo:hi], self.negs[lo * num_negs: hi * num_negs],
                     self.sources[lo:hi])


def prefixes(settings: EmbeddingSettings, task: str, enabled: bool) -> tuple[str, str]:
    if not enabled:
        return "", ""
    if task == "symmetric":  # both sides are documents
        return settings.document_prefix, settings.document_prefix
    return settings.query_prefix, settings.document_prefix


class BatchSampler:
    def __init__(self, records: list[Pair], batch_size: int, *, seed: int, num_negs: int, source_batches: bool,
                 settings: EmbeddingSettings, use_prefixes: bool = True, source_weights: tuple[str, ...] = ()):
        if num_negs:
            records = [r for r in records if r.negs]
        if len(records) < batch_size:
            raise ValueError(f"{len(records)} usable records, fewer than batch_size={batch_size}"
                             + (" (records without negatives are skipped when num_negs > 0)" if num_negs else ""))
        self.records = records
        self.batch_size, self.seed, self.num_negs = batch_size, seed, num_negs
        self.source_batches = source_batches
        self.settings, self.use_prefixes = settings, use_prefixes
        by_source = defaultdict(list)
        for i, r in enumerate(records):
            by_source[r.source].append(i)
        self.sources = sorted(by_source)
        self.by_source = {s: np.array(by_source[s]) for s in self.sources}
        weights = {k: float(v) for k, _, v in (w.partition("=") for w in source_weights)}
        unknown = sorted(set(weights) - set(self.sources))
        if unknown:
            raise ValueError(f"source_weights name sources not in the training data: {unknown}; have {self.sources}")
        sizes = np.array([len(self.by_source[s]) * weights.get(s, 1.0) for s in self.sources], dtype=np.float64)
        if sizes.sum() <= 0:
            raise ValueError("source_weights leave no source to sample")
        self.source_p = sizes / sizes.sum()
        index = {s: i for i, s in enumerate(self.sources)}
        self.source_of = np.array([index[r.source] for r in records])  # (N,)
        self.counts = np.array([len(self.by_source[s]) for s in self.sources], dtype=np.float64)

    def _weighted_order(self, rng: np.random.Generator) -> np.ndarray:
        """All records of non-zero weight, in a random order weighted by their source's probability."""
        p = self.source_p[self.source_of] / self.counts[self.source_of]  # (N,) per-record probability
        with np.errstate(divide="ignore"):  # Efraimidis-Spirakis: sort exponential keys scaled by 1/p
            order = np.argsort(rng.exponential(size=len(p)) / p, kind="stable")
        return order[p[order] > 0]

    def _candidates(self, rng: np.random.Generator) -> np.ndarray:
        if not self.source_batches:
            return self._weighted_order(rng)
        s = self.sources[rng.choice(len(self.sources), p=self.source_p)]
        first = rng.permutation(self.by_source[s])
        if len(first) >= self.batch_size * 2:
            return first
        rest = self._weighted_order(rng)  # a small source is topped up from the others
        return np.concatenate([first, rest[~np.isin(rest, first)]])

    def indices(self, step: int) -> list[int]:
        rng = np.random.default_rng([self.seed, step])
        chosen, seen_q, seen_d = [], set(), set()
        for i in self._candidates(rng):
            r = self.records[int(i)]
            if r.query in seen_q or r.pos in seen_d or r.query in seen_d or r.pos in seen_q:
                continue
            seen_q.add(r.query)
            seen_d.add(r.pos)
            chosen.append(int(i))
            if len(chosen) == self.batch_size:
                return chosen
        # a source with many duplicates: fall back to the whole (weighted) pool
        for i in self._weighted_order(rng):
            r = self.records[int(i)]
            if int(i) not in chosen and r.query not in seen_q and r.pos not in seen_d:
                seen_q.add(r.query)
                seen_d.add(r.pos)
                chosen.append(int(i))
                if len(chosen) == self.batch_size:
                    return chosen
        raise ValueError(f"cannot draw {self.batch_size} records with distinct queries and positives")

    def batch(self, step: int) -> Batch:
        rng = np.random.default_rng([self.seed, step, 1])
        queries, docs, negs, sources = [], [], [], []
        for i in self.indices(step):
            r = self.records[i]
            qp, dp = prefixes(self.settings, r.task, self.use_prefixes)
            queries.append(qp + r.query)
            docs.append(dp + r.pos)
            sources.append(r.source)
            if self.num_negs:
                pick = rng.permutation(len(r.negs))
                picked = [r.negs[pick[j % len(pick)]] for j in range(self.num_negs)]  # cycle when fewer
                negs.extend(dp + n for n in picked)
        return Batch(queries, docs, negs, sources)
