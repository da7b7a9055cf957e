"""Statistics (bench.stats) and the pure timing loop (bench.timing)."""

import math

import numpy as np
import pytest

from bench import stats, timing


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
    assert stats.rank_test(same, base, alternative="less") > stats.ALPHA
    assert stats.rank_test(slower, base, alternative="greater") > 0.99


def test_too_few_rounds_means_no_test():
    assert stats.rank_test([1.0, 2.0], [3.0, 4.0, 5.0], alternative="less") is None
    assert stats.bootstrap_ratio_ci([1.0], [1.0, 2.0, 3.0]) is None
    assert stats.significance([1.0, 1.0], [2.0, 2.0, 2.0])["significant"] is None
    with pytest.raises(ValueError):
        stats.rank_test([1, 2, 3], [1, 2, 3], alternative="two-sided")


def test_bootstrap_interval_covers_the_true_ratio():
    rng = np.random.default_rng(1)
    lo, hi = stats.bootstrap_ratio_ci(rng.normal(900, 9, 15), rng.normal(1000, 10, 15))
    assert lo < 0.9 < hi and hi < 1.0
    assert stats.bootstrap_ratio_ci([1, 2, 3], [1, 2, 3], seed=3) == stats.bootstrap_ratio_ci([1, 2, 3], [1, 2, 3], seed=3)


def test_significance_follows_the_direction_of_the_median():
    rng = np.random.default_rng(2)
    base = rng.normal(1000, 10, 12)
    down = stats.significance(rng.normal(900, 10, 12), base)
    up = stats.significance(rng.normal(1100, 10, 12), base)
    assert down["direction"] == "less" and down["significant"] is True
    assert up["direction"] == "greater" and up["significant"] is True
    assert stats.significance(rng.normal(1000, 10, 12), base)["significant"] is False


# --- timing -------------------------------------------------------------------------------------


class FakeClock:
    """A timer that advances only when a step 'runs', by a scripted amount per round."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_round_runs_steps_then_reads_back_once():
    calls = []
    run = timing.make_round(lambda: calls.append("step") or len(calls), 3, lambda out: calls.append(("sync", out)))
    run()
    assert calls == ["step", "step", "step", ("sync", 3)]
    with pytest.raises(ValueError):
        timing.make_round(lambda: None, 0, lambda out: out)


def test_steps_for_sizes_rounds_and_clamps():
    assert timing.steps_for(0.1, 1.0) == 10
    assert timing.steps_for(5.0, 1.0) == 1
    assert timing.steps_for(1e-6, 1.0, hi=50) == 50
    assert timing.steps_for(0.0, 1.0, hi=7) == 7


def test_extend_until_steady_adds_rounds_only_while_noisy():
    clock = FakeClock()
    durations = iter([1.0] * 100)

    def run_round():
        clock.now += next(durations)

    recorded = []
    steady = [1.0, 1.0, 1.0]
    assert timing.extend_until_steady(run_round, steady, max_rounds=10, max_cv=0.05, timer=clock, record=recorded.append) is False
    assert steady == [1.0, 1.0, 1.0] and recorded == []

    noisy = [1.0, 2.0, 1.0]  # CV 0.43: more identical rounds bring it under 5 % only after many
    still_noisy = timing.extend_until_steady(run_round, noisy, max_rounds=6, max_cv=0.05, timer=clock, record=recorded.append)
    assert still_noisy is True and len(noisy) == 6 and recorded == [1.0, 1.0, 1.0]

    settles = [1.0, 1.1, 1.0]
    assert timing.extend_until_steady(run_round, settles, max_rounds=40, max_cv=0.05, timer=clock) is False
    assert 3 < len(settles) < 40 and timing.cv(settles) <= 0.05


def test_time_rounds_skips_warmup():
    clock = FakeClock()
    durations = iter([9.0, 1.0, 2.0])

    def run_round():
        clock.now += next(durations)

    assert timing.time_rounds(run_round, rounds=2, warmup_rounds=1, timer=clock) == [1.0, 2.0]
    assert math.isinf(timing.cv([1.0]))


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
