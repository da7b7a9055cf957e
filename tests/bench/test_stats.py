"""Statistics (bench.stats) and the pure timing loop (bench.throughput.timing)."""

import math

import numpy as np
import pytest

from bench import stats


def test_summary_is_median_iqr_and_cv():
    s = stats.summary([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s["median"] == 3.0 and s["q1"] == 2.0 and s["q3"] == 4.0 and s["iqr"] == 2.0
    assert s["n"] == 5 and s["min"] == 1.0 and s["max"] == 100.0
    assert s["cv"] == pytest.approx(np.std([1, 2, 3, 4, 100], ddof=1) / 22.0)
    assert stats.summary([]) == {"n": 0}
    assert stats.summary([5.0])["cv"] is None


def test_rates_are_items_over_seconds():
    assert stats.rates([0.5, 0.25], 128) == [256.0, 512.0]


def test_rank_test_sees_a_shift_and_not_noise():
    rng = np.random.default_rng(0)
    base = rng.normal(1000, 10, 12)
    slower = rng.normal(900, 10, 12)
    same = rng.normal(1000, 10, 12)
    assert stats.rank_test(slower, base, alternative="less") < 1e-4
    assert stats.rank_test(same, base, alternative="less") > 0.01
    assert stats.rank_test(slower, base, alternative="greater") > 0.99


def test_too_few_rounds_means_no_test():
    assert stats.rank_test([1.0, 2.0], [3.0, 4.0, 5.0], alternative="less") is None
    assert stats.bootstrap_ratio_ci([1.0], [1.0, 2.0, 3.0]) is None
    assert stats.significance([1.0, 1.0], [2.0, 2.0, 2.0], alpha=0.01)["significant"] is None
    with pytest.raises(ValueError):
        stats.rank_test([1, 2, 3], [1, 2, 3], alternative="two-sided")


def test_bootstrap_interval_covers_the_true_ratio():
    rng = np.random.default_rng(1)
    lo, hi = stats.bootstrap_ratio_ci(rng.normal(900, 9, 15), rng.normal(1000, 10, 15))
    assert lo < 0.9 < hi and hi < 1.0
    assert stats.bootstrap_ratio_ci([1, 2, 3], [1, 2, 3], seed=3) == stats.bootstrap_ratio_ci(
        [1, 2, 3], [1, 2, 3], seed=3
    )


def test_significance_follows_the_direction_of_the_median():
    rng = np.random.default_rng(2)
    base = rng.normal(1000, 10, 12)
    down = stats.significance(rng.normal(900, 10, 12), base, alpha=0.01)
    up = stats.significance(rng.normal(1100, 10, 12), base, alpha=0.01)
    assert down["direction"] == "less" and down["significant"] is True
    assert up["direction"] == "greater" and up["significant"] is True
    assert stats.significance(rng.normal(1000, 10, 12), base, alpha=0.01)["significant"] is False


# --- timing -------------------------------------------------------------------------------------


def test_prediction_interval_matches_tables_and_its_false_alarm_rate():
    import numpy as np

    # t(0.975, 9) = 2.262 from tables: std 1, n 10 -> 2.262 * sqrt(1.1)
    r = stats.prediction_halfwidth([0, 0, 0, 0, 0, 1, 1, 1, 1, 1], 0.05)
    assert r["t"] == pytest.approx(2.262, abs=1e-3)
    assert r["halfwidth"] == pytest.approx(2.262 * np.std([0] * 5 + [1] * 5, ddof=1) * np.sqrt(1.1), abs=1e-3)
    # A new draw from the same normal falls outside the interval at the stated rate, whatever n.
    rng = np.random.default_rng(0)
    for n in (4, 12):
        outside = 0
        trials = 4000
        for _ in range(trials):
            draws = rng.normal(75.0, 0.6, n + 1)
            outside += abs(draws[-1] - draws[:-1].mean()) > stats.prediction_halfwidth(draws[:-1], 0.05)["halfwidth"]
        assert 0.04 < outside / trials < 0.06


def test_prediction_interval_needs_three_values():
    with pytest.raises(ValueError, match="at least 3"):
        stats.prediction_halfwidth([1.0, 2.0], 0.05)


@pytest.mark.parametrize(
    "value, expected",
    [
        (1, 1.0),
        (np.float32(1.5), 1.5),
        (np.float64(2.0), 2.0),
        (np.array(3.0), 3.0),
        (math.nan, None),
        (math.inf, None),
        (-math.inf, None),
        (None, None),
        ("2.5", None),
        ("x", None),
        (True, None),
        ([1.0], None),
    ],
)
def test_finite_accepts_real_numbers_only(value, expected):
    assert stats.finite(value) == expected


@pytest.mark.parametrize(
    "values, false_alarm, words",
    [
        ([100.0, 110.0, 120.0], 2e-17, "is not finite"),  # 1 - 1e-17 is 1.0 in a float: t = Inf
        ([1e308, 1e308, 1.7e308], 0.01, "is not finite"),  # the spread overflows
        ([100.0, math.nan, 120.0], 0.01, "needs finite values"),
    ],
)
def test_prediction_interval_is_never_infinite_or_nan(values, false_alarm, words):
    with pytest.raises(ValueError, match=words):
        stats.prediction_halfwidth(values, false_alarm)


def test_smallest_p_is_what_the_rank_test_gives_samples_wholly_apart():
    assert stats.smallest_p(3, 3) == pytest.approx(0.05)  # 1 / C(6, 3)
    assert stats.smallest_p(2, 10) is None
    low, high = [1.0, 2.0, 3.0, 4.0, 5.0], [10.0, 11.0, 12.0, 13.0, 14.0]
    assert stats.rank_test(low, high, alternative="less") == pytest.approx(stats.smallest_p(5, 5))
    assert stats.significance(low, high, alpha=0.01)["smallest_p"] == pytest.approx(1 / 252)


def test_rates_near_the_float_limit_leak_no_warning():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sig = stats.significance([1e308] * 4, [300.0, 310.0, 320.0, 330.0], alpha=0.01)
    assert not np.isfinite(sig["ci"]).all()  # the caller says so (bench.regression.throughput)
