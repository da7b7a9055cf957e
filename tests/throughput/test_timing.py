"""The pure timing loop (bench.throughput.timing): no TensorFlow."""

import math

import pytest

from bench.throughput import timing


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
    assert (
        timing.extend_until_steady(run_round, steady, max_rounds=10, max_cv=0.05, timer=clock, record=recorded.append)
        is False
    )
    assert steady == [1.0, 1.0, 1.0] and recorded == []

    noisy = [1.0, 2.0, 1.0]  # CV 0.43: more identical rounds bring it under 5 % only after many
    still_noisy = timing.extend_until_steady(
        run_round, noisy, max_rounds=6, max_cv=0.05, timer=clock, record=recorded.append
    )
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


def test_before_runs_untimed_ahead_of_every_round():
    """The turn-taking hook (``bench.throughput.turns``): called before each round, warm-up
    included, and never timed."""
    clock = FakeClock()
    calls = []

    def before():
        calls.append("before")
        clock.now += 100.0  # waiting for the turn: not part of any round

    def run_round():
        calls.append("round")
        clock.now += 1.0

    assert timing.time_rounds(run_round, rounds=2, warmup_rounds=1, timer=clock, before=before) == [1.0, 1.0]
    assert calls == ["before", "round"] * 3
    calls.clear()
    samples = [1.0, 2.0]
    timing.extend_until_steady(run_round, samples, max_rounds=4, max_cv=0.01, timer=clock, before=before)
    assert samples == [1.0, 2.0, 1.0, 1.0] and calls == ["before", "round"] * 2
