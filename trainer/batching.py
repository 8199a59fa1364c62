"""Batches of training records, a pure function of (seed, step): a resumed run draws the same batches.

With ``source_batches`` every batch comes from one source, chosen with probability proportional to its size
(Nomic: mixing sources in a batch lets the model separate sources instead of texts); a source smaller than
the batch is topped up from the others. A batch never holds the same query or positive twice (an in-batch
duplicate positive would be a false negative). Prefixes are applied per task.

With ``task_weights`` every batch holds one record task (``retrieval`` or ``symmetric``), chosen with probability
proportional to weight x its number of records; sources are then drawn (and topped up) within that task only.
A task model trains its query and document experts on retrieval batches and its symmetric expert on
symmetric ones (`SIDE_TASKS`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from embedder.settings import SEARCH_DOCUMENT, SEARCH_QUERY, SYMMETRIC, EmbeddingSettings

from .data import TASKS, Pair

# record task -> (query-side task, document-side task): the task expert each side of a pair trains
SIDE_TASKS = {"retrieval": (SEARCH_QUERY, SEARCH_DOCUMENT), "symmetric": (SYMMETRIC, SYMMETRIC)}
MIXED = "mixed"


@dataclass(frozen=True)
class Batch:
    queries: list[str]  # (B,) prefixed
    docs: list[str]  # (B,) prefixed positives
    negs: list[str]  # (B * k,) prefixed, query-major
    sources: list[str]
    task: str = MIXED  # the record task of every pair ("retrieval" / "symmetric"), or "mixed"

    def slice(self, rank: int, world: int, num_negs: int) -> Batch:
        """This rank's contiguous share (rank-major order == the single-process order)."""
        b = len(self.queries) // world
        lo, hi = rank * b, (rank + 1) * b
        return Batch(self.queries[lo:hi], self.docs[lo:hi], self.negs[lo * num_negs: hi * num_negs],
                     self.sources[lo:hi], self.task)


def side_experts(model_tasks: tuple[str, ...], task: str) -> tuple[str | None, str | None]:
    """The task experts that embed the query and the document side of a record of task ``task`` (a model with
    task experts), or (None, None) for a model without them."""
    return SIDE_TASKS[task] if model_tasks else (None, None)


def prefixes(settings: EmbeddingSettings, task: str, enabled: bool) -> tuple[str, str]:
    if not enabled:
        return "", ""
    if task == "symmetric":  # both sides are documents
        return settings.document_prefix, settings.document_prefix
    return settings.query_prefix, settings.document_prefix


class _Pool:
    """Records drawn from together (all records, or one task's), with their sources' sampling weights."""

    def __init__(self, records: list[Pair], members: np.ndarray, weights: dict[str, float]):
        self.members = members  # (n,) indices into the sampler's records
        by_source = defaultdict(list)
        for i in members:
            by_source[records[int(i)].source].append(int(i))
        self.sources = sorted(by_source)
        self.by_source = {s: np.array(by_source[s]) for s in self.sources}
        sizes = np.array([len(self.by_source[s]) * weights.get(s, 1.0) for s in self.sources], dtype=np.float64)
        if sizes.sum() <= 0:
            raise ValueError("source_weights leave no source to sample")
        self.source_p = sizes / sizes.sum()
        index = {s: i for i, s in enumerate(self.sources)}
        self.source_of = np.array([index[records[int(i)].source] for i in members])  # (n,)
        self.counts = np.array([len(self.by_source[s]) for s in self.sources], dtype=np.float64)


class BatchSampler:
    def __init__(self, records: list[Pair], batch_size: int, *, seed: int, num_negs: int, source_batches: bool,
                 settings: EmbeddingSettings, use_prefixes: bool = True, source_weights: tuple[str, ...] = (),
                 task_weights: dict[str, float] | None = None):
        if num_negs:
            records = [r for r in records if r.negs]
        if task_weights is not None:
            unknown = sorted(set(task_weights) - set(TASKS))
            if unknown:
                raise ValueError(f"task_weights name unknown tasks {unknown}; allowed: {TASKS}")
            records = [r for r in records if task_weights.get(r.task, 0.0) > 0]
        if len(records) < batch_size:
            raise ValueError(f"{len(records)} usable records, fewer than batch_size={batch_size}"
                             + (" (records without negatives are skipped when num_negs > 0)" if num_negs else "")
                             + (" (records of tasks with weight 0 are left out)" if task_weights is not None else ""))
        self.records = records
        self.batch_size, self.seed, self.num_negs = batch_size, seed, num_negs
        self.source_batches = source_batches
        self.settings, self.use_prefixes = settings, use_prefixes
        weights = {k: float(v) for k, _, v in (w.partition("=") for w in source_weights)}
        unknown = sorted(set(weights) - {r.source for r in records})
        if unknown:
            raise ValueError(f"source_weights name sources not in the training data: {unknown}; "
                             f"have {sorted({r.source for r in records})}")
        self.tasks: list[str] = []  # task batches: the tasks drawn from, with their probabilities
        if task_weights is None:
            self.pools = {MIXED: _Pool(records, np.arange(len(records)), weights)}
            return
        task_of = np.array([r.task for r in records])
        self.tasks = [t for t in TASKS if (task_of == t).sum() >= batch_size]
        small = sorted({r.task for r in records} - set(self.tasks))
        if small:
            raise ValueError(f"tasks {small} have fewer than batch_size={batch_size} records: a batch holds one "
                             "task; give them weight 0 or more data")
        self.pools = {t: _Pool(records, np.flatnonzero(task_of == t), weights) for t in self.tasks}
        mass = np.array([task_weights[t] * len(self.pools[t].members) for t in self.tasks], dtype=np.float64)
        self.task_p = mass / mass.sum()

    def _weighted_order(self, rng: np.random.Generator, pool: _Pool) -> np.ndarray:
        """All records of the pool with non-zero weight, in a random order weighted by their source's probability."""
        p = pool.source_p[pool.source_of] / pool.counts[pool.source_of]  # (n,) per-record probability
        with np.errstate(divide="ignore"):  # Efraimidis-Spirakis: sort exponential keys scaled by 1/p
            order = np.argsort(rng.exponential(size=len(p)) / p, kind="stable")
        return pool.members[order[p[order] > 0]]

    def _candidates(self, rng: np.random.Generator, pool: _Pool) -> np.ndarray:
        if not self.source_batches:
            return self._weighted_order(rng, pool)
        s = pool.sources[rng.choice(len(pool.sources), p=pool.source_p)]
        first = rng.permutation(pool.by_source[s])
        if len(first) >= self.batch_size * 2:
            return first
        rest = self._weighted_order(rng, pool)  # a small source is topped up from the others (same task)
        return np.concatenate([first, rest[~np.isin(rest, first)]])

    def task(self, step: int) -> str:
        """The record task of step ``step``'s batch ("mixed" without task batches)."""
        if not self.tasks:
            return MIXED
        return self.tasks[np.random.default_rng([self.seed, step, 2]).choice(len(self.tasks), p=self.task_p)]

    def indices(self, step: int) -> list[int]:
        rng = np.random.default_rng([self.seed, step])
        pool = self.pools[self.task(step)]
        chosen, seen_q, seen_d = [], set(), set()
        for i in self._candidates(rng, pool):
            r = self.records[int(i)]
            if r.query in seen_q or r.pos in seen_d or r.query in seen_d or r.pos in seen_q:
                continue
            seen_q.add(r.query)
            seen_d.add(r.pos)
            chosen.append(int(i))
            if len(chosen) == self.batch_size:
                return chosen
        # a source with many duplicates: fall back to the whole (weighted) pool
        for i in self._weighted_order(rng, pool):
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
        return Batch(queries, docs, negs, sources, self.task(step))
