"""Bootstrap intervals and paired tests: naive loop references, determinism, the behaviour at the extremes."""

import numpy as np
import pytest

from trainer.stats import bootstrap_ci, paired_test, statistic


def naive_bootstrap(strata, resamples, seed):
    """One resample at a time, one set at a time: the definition, written as a loop."""
    rngs = [np.random.default_rng([seed, k]) for k in range(len(strata))]
    draws = [[] for _ in strata]
    for k, s in enumerate(strata):
        for _ in range(resamples):
            idx = rngs[k].integers(0, len(s), size=len(s))
            draws[k].append(sum(s[i] for i in idx) / len(s))
    stats = [sum(draws[k][r] for k in range(len(strata))) / len(strata) for r in range(resamples)]
    return np.quantile(stats, [0.025, 0.975])


def test_bootstrap_matches_naive_loop_and_contains_the_mean():
    rng = np.random.default_rng(3)
    strata = [rng.random(37), rng.random(11) * 0.5]
    iv = bootstrap_ci(strata, resamples=250, seed=5)
    lo, hi = naive_bootstrap(strata, 250, 5)
    assert (iv.lo, iv.hi) == pytest.approx((lo, hi), abs=1e-12)
    assert iv.mean == pytest.approx((strata[0].mean() + strata[1].mean()) / 2)
    assert iv.lo <= iv.mean <= iv.hi


def test_bootstrap_is_deterministic_with_a_seed_and_narrows_with_more_queries():
    rng = np.random.default_rng(0)
    few, many = rng.random(30), rng.random(3000)
    assert bootstrap_ci(few, seed=1) == bootstrap_ci(few, seed=1)
    assert bootstrap_ci(few, seed=1) != bootstrap_ci(few, seed=2)
    w_few = bootstrap_ci(few).hi - bootstrap_ci(few).lo
    w_many = bootstrap_ci(many).hi - bootstrap_ci(many).lo
    assert w_many < w_few / 5  # ~ 1/sqrt(n): sqrt(100) = 10
    # the 95% interval of a mean of uniform(0,1) scores: +-1.96 * sqrt(1/12 / n)
    assert w_many == pytest.approx(2 * 1.96 * np.sqrt(1 / 12 / 3000), rel=0.15)


def test_constant_scores_have_a_zero_width_interval():
    iv = bootstrap_ci(np.full(20, 0.25))
    assert iv.lo == iv.hi == iv.mean == pytest.approx(0.25)


def test_paired_identical_runs_give_p_one_and_zero_diff():
    a = np.random.default_rng(1).random(200)
    res = paired_test(a, a.copy())
    assert res.p == 1.0 and res.diff == 0.0 and res.lo == res.hi == 0.0


def test_paired_clearly_better_run_gives_small_p_and_positive_interval():
    rng = np.random.default_rng(2)
    a = rng.random(300)
    b = np.clip(a + 0.05 + rng.normal(0, 0.05, 300), 0, 1)
    res = paired_test(a, b, resamples=1000)
    assert res.p == pytest.approx(1 / 1001)  # no sign flip comes near the observed difference
    assert 0 < res.lo <= res.diff <= res.hi
    assert res.diff == pytest.approx(b.mean() - a.mean())
    worse = paired_test(b, a, resamples=1000)
    assert worse.diff == pytest.approx(-res.diff) and worse.p == res.p


def test_paired_noise_is_not_significant_and_matches_naive_sign_flips():
    rng = np.random.default_rng(4)
    a = rng.random(80)
    b = a + rng.normal(0, 0.1, 80)
    res = paired_test(a, b, resamples=400, seed=9)
    d = b - a
    flips = np.random.default_rng([9, 0])
    count = 0
    for _ in range(400):
        signs = flips.integers(0, 2, size=80) * 2 - 1
        count += abs(float(np.mean(signs * d))) >= abs(d.mean()) - 1e-12
    assert res.p == pytest.approx((1 + count) / 401)
    assert res.p > 0.05


def test_paired_over_sets_weights_each_set_equally():
    rng = np.random.default_rng(5)
    a = [rng.random(500), rng.random(20)]
    b = [a[0] + 0.0, a[1] + 0.2]  # only the small set improves
    res = paired_test(a, b)
    assert res.diff == pytest.approx(0.1) and res.queries == 520
    assert statistic(b) - statistic(a) == pytest.approx(0.1)


def test_paired_needs_the_same_queries():
    with pytest.raises(ValueError, match="same queries"):
        paired_test(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_ci([])
