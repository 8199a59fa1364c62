"""Uncertainty of retrieval scores over queries: bootstrap confidence intervals and paired tests.

A score set is one array of per-query scores per evaluation set (a *stratum*); the statistic is the mean over
sets of each set's mean over its queries (one set: the plain mean). Resampling is done within each set, so the
average over sets weights every set equally, as the reported average does.

* `bootstrap_ci`: percentile bootstrap of that statistic (queries drawn with replacement, within each set).
* `paired_test`: two systems on the same queries. The p-value comes from a paired randomization test (each
  query's pair of scores is swapped with probability 1/2: a sign flip of the per-query difference; two-sided,
  ``(1 + #{|stat*| >= |stat|}) / (1 + R)``, Smucker et al. 2007), the interval of the difference from the paired
  bootstrap of the per-query differences.

Each set draws from its own generator seeded with ``(seed, set index)``, so results are deterministic for a seed
and do not change when other sets are added.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RESAMPLES = 1000
SEED = 0
CHUNK = 100  # resamples drawn at a time (bounds memory: CHUNK x queries)


@dataclass(frozen=True)
class Interval:
    mean: float
    lo: float
    hi: float

    def to_json(self) -> list[float]:
        return [self.lo, self.hi]


@dataclass(frozen=True)
class PairedResult:
    mean_a: float
    mean_b: float
    diff: float  # b - a
    lo: float  # 95% bootstrap interval of the difference
    hi: float
    p: float  # two-sided randomization test
    queries: int
    resamples: int

    def to_json(self) -> dict:
        return {"a": self.mean_a, "b": self.mean_b, "diff": self.diff, "ci95": [self.lo, self.hi], "p": self.p,
                "queries": self.queries, "resamples": self.resamples, "test": "paired randomization (sign flip)",
                "ci": "paired percentile bootstrap"}


def _strata(scores) -> list[np.ndarray]:
    if isinstance(scores, np.ndarray) and scores.ndim == 1:
        scores = [scores]
    out = [np.asarray(s, dtype=np.float64) for s in scores]
    if not out or any(s.ndim != 1 or s.size == 0 for s in out):
        raise ValueError("scores must be one or more non-empty 1-d arrays of per-query scores")
    return out


def statistic(scores) -> float:
    """Mean over sets of the per-set mean."""
    return float(np.mean([s.mean() for s in _strata(scores)]))


def _rng(seed: int, k: int) -> np.random.Generator:
    return np.random.default_rng([seed, k])


def _resampled(strata: list[np.ndarray], resamples: int, seed: int, draw) -> np.ndarray:
    """(resamples,) mean over sets of ``draw(rng, r, s)`` -- r resampled means of set s -- drawn CHUNK at a time."""
    total = np.zeros(resamples)
    for k, s in enumerate(strata):
        rng = _rng(seed, k)
        for start in range(0, resamples, CHUNK):
            r = min(CHUNK, resamples - start)
            total[start:start + r] += draw(rng, r, s)
    return total / len(strata)


def _bootstrap_means(strata: list[np.ndarray], resamples: int, seed: int) -> np.ndarray:
    """(resamples,) statistic of each bootstrap resample (queries drawn with replacement within each set)."""
    return _resampled(strata, resamples, seed, lambda rng, r, s: s[rng.integers(0, s.size, size=(r, s.size))]
                      .mean(axis=1))


def _percentiles(values: np.ndarray, alpha: float) -> tuple[float, float]:
    lo, hi = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def bootstrap_ci(scores, resamples: int = RESAMPLES, seed: int = SEED, alpha: float = 0.05) -> Interval:
    """Mean and percentile bootstrap interval (default 95%) of the mean over queries (over sets: of set means)."""
    if resamples < 1 or not 0 < alpha < 1:
        raise ValueError(f"resamples must be >= 1 and alpha in (0, 1), got {resamples}, {alpha}")
    strata = _strata(scores)
    lo, hi = _percentiles(_bootstrap_means(strata, resamples, seed), alpha)
    return Interval(statistic(strata), lo, hi)


def _sign_flip_stats(diffs: list[np.ndarray], resamples: int, seed: int) -> np.ndarray:
    """(resamples,) statistic of the per-query differences with random signs (pairs swapped with probability 1/2)."""
    return _resampled(diffs, resamples, seed, lambda rng, r, d: ((rng.integers(0, 2, size=(r, d.size)) * 2 - 1) * d)
                      .mean(axis=1))


def paired_test(a, b, resamples: int = RESAMPLES, seed: int = SEED, alpha: float = 0.05) -> PairedResult:
    """System b against system a on the same queries (per set, in the same order)."""
    sa, sb = _strata(a), _strata(b)
    if [s.size for s in sa] != [s.size for s in sb]:
        raise ValueError(f"paired scores need the same queries: sizes {[s.size for s in sa]} vs "
                         f"{[s.size for s in sb]}")
    diffs = [y - x for x, y in zip(sa, sb, strict=True)]
    observed = statistic(diffs)
    flipped = _sign_flip_stats(diffs, resamples, seed)
    tol = 1e-12 * max(1.0, abs(observed))
    p = (1 + int(np.sum(np.abs(flipped) >= abs(observed) - tol))) / (1 + resamples)
    lo, hi = _percentiles(_bootstrap_means(diffs, resamples, seed + 1), alpha)
    return PairedResult(statistic(sa), statistic(sb), observed, lo, hi, p, sum(s.size for s in sa), resamples)
