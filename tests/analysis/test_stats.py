"""Oracle tests for dqnkit.analysis.stats: hand-computed values, no SciPy needed."""
from __future__ import annotations

import numpy as np
import pytest

from dqnkit.analysis.stats import aggregate_curves, bootstrap_ci, iqm, moving_average


# --------------------------------------------------------------------------- moving_average


def test_moving_average_trailing_with_partial_start():
    out = moving_average([1.0, 2.0, 3.0, 4.0, 5.0], window=2)
    np.testing.assert_allclose(out, [1.0, 1.5, 2.5, 3.5, 4.5])


def test_moving_average_window_longer_than_data_is_cumulative_mean():
    x = np.array([4.0, 0.0, 2.0])
    np.testing.assert_allclose(moving_average(x, window=100), [4.0, 2.0, 2.0])


def test_moving_average_matches_naive_loop():
    x = np.random.default_rng(1).normal(size=357)
    naive = [x[max(0, i - 99) : i + 1].mean() for i in range(x.size)]
    np.testing.assert_allclose(moving_average(x), naive, rtol=1e-10, atol=1e-12)


def test_moving_average_edge_cases():
    assert moving_average([], window=5).size == 0
    np.testing.assert_allclose(moving_average([3.0, 5.0], window=1), [3.0, 5.0])
    with pytest.raises(ValueError):
        moving_average([1.0], window=0)


# --------------------------------------------------------------------------- bootstrap_ci


def test_bootstrap_ci_hand_cases():
    assert bootstrap_ci([2.5] * 7) == (2.5, 2.5)  # every resample has mean 2.5
    assert bootstrap_ci([3.0]) == (3.0, 3.0)
    low, high = bootstrap_ci([])
    assert np.isnan(low) and np.isnan(high)
    # Two values {0, 1}: resampled means are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4,
    # so the 2.5% and 97.5% quantiles are 0 and 1.
    assert bootstrap_ci([0.0, 1.0], n_boot=4000) == (0.0, 1.0)


def test_bootstrap_ci_contains_mean_and_narrows_with_n():
    rng = np.random.default_rng(0)
    small = rng.normal(10.0, 2.0, size=10)
    large = rng.normal(10.0, 2.0, size=1000)
    lo_s, hi_s = bootstrap_ci(small)
    lo_l, hi_l = bootstrap_ci(large)
    assert lo_s <= small.mean() <= hi_s
    assert lo_l <= large.mean() <= hi_l
    assert (hi_l - lo_l) < (hi_s - lo_s) / 5  # width ~ 1/sqrt(n): 100x the samples, ~1/10 the width
    # the normal-theory interval of the mean has about the same width
    assert (hi_l - lo_l) == pytest.approx(2 * 1.96 * large.std(ddof=1) / np.sqrt(large.size), rel=0.1)


def test_bootstrap_ci_deterministic_and_private_rng():
    values = np.random.default_rng(3).exponential(size=25)
    state = np.random.get_state()[1].copy()
    a = bootstrap_ci(values, seed=7)
    b = bootstrap_ci(values, seed=7)
    c = bootstrap_ci(values, seed=8)
    assert a == b
    assert a != c
    assert np.array_equal(np.random.get_state()[1], state)  # global NumPy RNG untouched


def test_bootstrap_ci_confidence_levels_nest():
    values = np.random.default_rng(5).normal(size=40)
    lo90, hi90 = bootstrap_ci(values, confidence=0.90)
    lo99, hi99 = bootstrap_ci(values, confidence=0.99)
    assert lo99 <= lo90 < hi90 <= hi99
    with pytest.raises(ValueError):
        bootstrap_ci(values, confidence=1.5)


# --------------------------------------------------------------------------- iqm


def test_iqm_hand_values():
    assert iqm(np.arange(1, 9)) == 4.5  # cut 2 each end: mean(3, 4, 5, 6)
    assert iqm([8, 1, 7, 2, 6, 3, 5, 4]) == 4.5  # order does not matter
    # n = 5: floor(1.25) = 1 cut from each end -> mean(2, 3, 4), the outlier is gone
    assert iqm([1, 2, 3, 4, 100]) == 3.0
    # n = 6: floor(1.5) = 1 cut -> mean(2, 3, 4, 5)
    assert iqm([100, 1, 2, 3, 4, 5]) == 3.5
    # n = 3: floor(0.75) = 0 cut -> plain mean
    assert iqm([1.0, 2.0, 6.0]) == 3.0
    assert iqm([7.0]) == 7.0
    assert np.isnan(iqm([]))


def test_iqm_matches_scipy_trim_mean():
    from scipy import stats  # the oracle: rliable's IQM is scipy.stats.trim_mean(x, 0.25)
    rng = np.random.default_rng(11)
    for n in range(1, 40):
        x = rng.standard_cauchy(size=n)
        assert iqm(x) == pytest.approx(stats.trim_mean(x, 0.25), rel=1e-12, abs=1e-12)


# --------------------------------------------------------------------------- aggregate_curves


def test_aggregate_curves_mean_of_two_offset_lines_on_different_grids():
    x1 = np.linspace(0, 1000, 11)
    x2 = np.linspace(0, 1000, 37)
    agg = aggregate_curves([(x1, x1 * 0.01), (x2, x2 * 0.01 + 2.0)], n_points=50)
    assert agg.x.shape == (50,) and agg.x[0] == 0 and agg.x[-1] == 1000
    np.testing.assert_allclose(agg.mean, agg.x * 0.01 + 1.0, atol=1e-9)
    # bootstrap means of two values lie between them; the band holds the mean
    assert np.all(agg.ci_low >= agg.x * 0.01 - 1e-9)
    assert np.all(agg.ci_high <= agg.x * 0.01 + 2.0 + 1e-9)
    assert np.all((agg.ci_low <= agg.mean) & (agg.mean <= agg.ci_high))


def test_aggregate_curves_identical_seeds_collapse_and_short_seed_drops_out():
    x = np.arange(0, 101, 10.0)
    same = aggregate_curves([(x, np.sin(x)), (x, np.sin(x))], n_points=11)
    np.testing.assert_allclose(same.mean, np.sin(x), atol=1e-12)
    np.testing.assert_allclose(same.ci_low, same.ci_high, atol=1e-12)

    short = aggregate_curves([(x, np.zeros_like(x)), (x[:6], np.ones(6))], n_points=11)
    np.testing.assert_allclose(short.mean[:6], 0.5)
    np.testing.assert_allclose(short.mean[6:], 0.0)  # only the long seed is there
    np.testing.assert_allclose(short.ci_low[6:], short.ci_high[6:])


def test_aggregate_curves_ignores_nan_and_unsorted_input():
    x = np.array([30.0, 10.0, 20.0, 40.0])
    y = np.array([3.0, 1.0, np.nan, 4.0])
    agg = aggregate_curves([(x, y)], n_points=4)
    np.testing.assert_allclose(agg.x, [10, 20, 30, 40])
    np.testing.assert_allclose(agg.mean, [1, 2, 3, 4])
    empty = aggregate_curves([([], [])])
    assert empty.x.size == 0 and empty.mean.size == 0
