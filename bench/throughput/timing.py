"""The timing loop, free of TensorFlow: rounds of several steps, each ending with a host read-back.

A *step* is one call of a compiled function (a train or an inference step). A *round* runs
``steps`` of them and then calls ``sync`` on the last output, which copies a value to the host:
an accelerator runs asynchronously, and a round that stopped the clock before the device had
finished would flatter the rate. The first call (tracing and compilation) is timed apart and
never enters a rate; warm-up rounds run untimed before the timed ones.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

Timer = Callable[[], float]


def make_round(step: Callable[[], Any], steps: int, sync: Callable[[Any], Any]) -> Callable[[], Any]:
    """A callable running ``steps`` steps and reading the last output back to the host."""
    if steps < 1:
        raise ValueError(f"steps per round must be >= 1, not {steps}")

    def run_round():
        out = None
        for _ in range(steps):
            out = step()
        return sync(out)

    return run_round


def time_call(fn: Callable[[], Any], timer: Timer = time.perf_counter) -> float:
    """Seconds one call of ``fn`` takes."""
    t0 = timer()
    fn()
    return timer() - t0


def steps_for(step_seconds: float, target_round_s: float, *, lo: int = 1, hi: int = 100) -> int:
    """How many steps make a round last about ``target_round_s`` (clamped to [lo, hi])."""
    if not math.isfinite(step_seconds) or step_seconds <= 0:
        return hi
    return int(min(hi, max(lo, math.ceil(target_round_s / step_seconds))))


def cv(samples) -> float:
    """Coefficient of variation (sample std / mean); inf with fewer than two samples."""
    a = np.asarray(samples, dtype=float)
    if a.size < 2 or a.mean() == 0:
        return math.inf
    return float(a.std(ddof=1) / a.mean())


def extend_until_steady(
    run_round: Callable[[], Any],
    samples: list[float],
    *,
    max_rounds: int,
    max_cv: float,
    timer: Timer = time.perf_counter,
    record: Callable[[float], None] | None = None,
    before: Callable[[], None] | None = None,
) -> bool:
    """While the round times in ``samples`` vary by more than ``max_cv``, time more rounds (appending
    to ``samples``, and passing each to ``record``) up to ``max_rounds`` in all. Returns whether the
    spread is still above ``max_cv`` at the end: the result is then *noisy*. ``before`` is called,
    untimed, before each round (``bench.throughput.turns``)."""
    while cv(samples) > max_cv and len(samples) < max_rounds:
        if before is not None:
            before()
        t = time_call(run_round, timer)
        samples.append(t)
        if record is not None:
            record(t)
    return cv(samples) > max_cv


def time_rounds(
    run_round: Callable[[], Any],
    *,
    rounds: int,
    warmup_rounds: int = 1,
    timer: Timer = time.perf_counter,
    before: Callable[[], None] | None = None,
) -> list[float]:
    """The hand-written loop: ``warmup_rounds`` untimed rounds, then ``rounds`` timed ones, each
    after an untimed call of ``before`` (when given). The suite times with pytest-benchmark instead; this is what
    it is checked against."""
    samples = []
    for i in range(warmup_rounds + rounds):
        if before is not None:
            before()
        t = time_call(run_round, timer)
        if i >= warmup_rounds:
            samples.append(t)
    return samples
