"""Budgets and learning-rate schedules written in fractions of the budget.

A recipe's schedule is ``{"base": 0.1, "knots": [[0, 1], [0.5, 0.1], [0.75, 0.01]], "interpolation":
"step"}``: at fraction ``f`` of the budget the rate is ``base`` times the knot value in force
(``"step"``) or interpolated between knots (``"linear"``). Because knots are fractions, the same
schedule stretches or shrinks to any budget: ``epochs=N``, ``steps=N`` or ``minutes=M`` (where the
fraction is wall-clock time spent over the deadline, as article 003's time-based controller does,
and training stops at the deadline).
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import re
import time
from collections.abc import Callable, Sequence

from bench.errors import UsageError

KINDS = ("epochs", "steps", "minutes")
MAX_VALUE = 10**12  # larger budgets are typos, and floats stop telling neighbouring whole numbers apart
UNTIL_DEADLINE = 10**9  # the epoch bound a minutes budget gives fit: its deadline stops training first
_BUDGET = re.compile(r"^(?P<kind>epochs|steps|minutes)=(?P<value>[0-9]+(\.[0-9]+)?)$")


@dataclasses.dataclass(frozen=True)
class Budget:
    """How much training: ``epochs=N``, ``steps=N`` or ``minutes=M``."""

    kind: str
    value: float

    @classmethod
    def parse(cls, text: str, *, full: Budget | None = None) -> Budget:
        """``"epochs=3"``, ``"steps=500"``, ``"minutes=7.5"``, or ``"full"`` (the recipe's ``full`` budget)."""
        text = str(text).strip()
        if text == "full":
            if full is None:
                raise UsageError("--budget full needs a recipe with a full budget")
            return full
        m = _BUDGET.match(text)
        if not m:
            raise UsageError(f"--budget {text!r} is invalid; expected epochs=N, steps=N, minutes=M or full")
        kind, value = m["kind"], float(m["value"])
        if kind != "minutes" and not value.is_integer():
            raise UsageError(f"--budget {text!r} is invalid; {kind} must be a whole number")
        if not 0 < value <= MAX_VALUE:
            raise UsageError(f"--budget {text!r} is invalid; expected a positive number up to {MAX_VALUE:.0e}")
        return cls(kind, value)

    @property
    def number(self) -> str:
        """The value as written, every digit kept (``1000001``, ``7.5``): run ids and keys use it."""
        return str(int(self.value)) if float(self.value).is_integer() else repr(float(self.value))

    def __str__(self) -> str:
        return f"{self.kind}={self.number}"


@dataclasses.dataclass(frozen=True)
class BudgetPlan:
    """A budget resolved against a dataset: how many epochs and steps ``fit`` runs.

    ``total_steps`` is what the schedule's fraction is measured against (None for a time budget);
    ``deadline_s`` is the training time a minutes budget allows (None otherwise). ``epochs`` is an
    upper bound for a time budget (``UNTIL_DEADLINE`` as ``bench train`` plans it): the deadline
    stops training first, so the schedule stretches over the whole time.
    """

    budget: Budget
    steps_per_epoch: int
    epochs: int
    total_steps: int | None
    deadline_s: float | None


def plan(budget: Budget, steps_per_epoch: int, *, max_epochs: int) -> BudgetPlan:
    """Resolve ``budget`` for ``steps_per_epoch`` optimizer steps an epoch."""
    if steps_per_epoch < 1:
        raise UsageError(f"an epoch has {steps_per_epoch} steps; the batch is larger than the training split")
    if budget.kind == "epochs":
        n = int(budget.value)
        return BudgetPlan(budget, steps_per_epoch, n, n * steps_per_epoch, None)
    if budget.kind == "steps":
        n = int(budget.value)
        return BudgetPlan(budget, steps_per_epoch, math.ceil(n / steps_per_epoch), n, None)
    return BudgetPlan(budget, steps_per_epoch, max(int(max_epochs), 1), None, budget.value * 60.0)


SCHEDULE_FIELDS = ("base", "knots", "interpolation")  # what ``lr_at`` reads of a schedule


def validate_schedule(schedule: dict) -> dict:
    """Check a schedule dict's shape; returns it. Knots must start at fraction 0 and increase, and a
    field ``lr_at`` does not read (``--set schedule.warmup=5``) is refused, not silently ignored."""
    if unknown := sorted(set(schedule) - set(SCHEDULE_FIELDS)):
        raise UsageError(f"schedule field(s) {unknown} are unknown; valid: {', '.join(SCHEDULE_FIELDS)}")
    try:
        base = float(schedule["base"])
        knots = [(float(f), float(v)) for f, v in schedule["knots"]]
        interpolation = schedule.get("interpolation", "step")
    except (KeyError, TypeError, ValueError) as e:
        raise UsageError(
            f"schedule {schedule!r} is invalid ({e}); expected base, knots [[fraction, multiplier], ...]"
        ) from None
    if not knots or knots[0][0] != 0.0 or any(b[0] <= a[0] for a, b in zip(knots, knots[1:])):
        raise UsageError(f"schedule knots {schedule['knots']!r} must start at fraction 0 and strictly increase")
    if interpolation not in ("step", "linear"):
        raise UsageError(f"schedule interpolation {interpolation!r} is invalid; valid: step, linear")
    if not math.isfinite(base) or base <= 0 or any(not math.isfinite(v) or v < 0 for _, v in knots):
        raise UsageError(f"schedule {schedule!r} has a non-positive base or a negative multiplier")
    return schedule


def lr_at(schedule: dict, fraction: float) -> float:
    """The learning rate at ``fraction`` (0..1) of the budget."""
    base = float(schedule["base"])
    knots = [(float(f), float(v)) for f, v in schedule["knots"]]
    fractions = [f for f, _ in knots]
    fraction = max(0.0, fraction)
    i = bisect.bisect_right(fractions, fraction) - 1  # the knot in force
    if schedule.get("interpolation", "step") == "step" or i == len(knots) - 1:
        return base * knots[i][1]
    (f0, v0), (f1, v1) = knots[i], knots[i + 1]
    return base * (v0 + (v1 - v0) * (fraction - f0) / (f1 - f0))


def lr_curve(schedule: dict, total_steps: int, points: Sequence[int] | None = None) -> list[float]:
    """The rate at each step (or at ``points``) of a ``total_steps`` budget (for tests and plots)."""
    steps = range(total_steps) if points is None else points
    return [lr_at(schedule, s / total_steps) for s in steps]


class Progress:
    """Where training stands against its plan: the schedule's fraction, and whether time is up.

    ``clock`` is injectable (a fake clock in tests). Time already spent before a resume is passed
    as ``elapsed_before`` so that a minutes budget counts the whole run, not just the last process.
    """

    def __init__(self, plan: BudgetPlan, *, clock: Callable[[], float] = time.monotonic, elapsed_before: float = 0.0):
        self.plan = plan
        self.clock = clock
        self.elapsed_before = float(elapsed_before)
        self._start: float | None = None

    def start(self) -> None:
        self._start = self.clock()

    def elapsed(self) -> float:
        return self.elapsed_before + (0.0 if self._start is None else self.clock() - self._start)

    def fraction(self, step: int) -> float:
        """Fraction of the budget spent at global step ``step`` (wall-clock for a minutes budget)."""
        if self.plan.deadline_s is not None:
            return min(self.elapsed() / self.plan.deadline_s, 1.0)
        return min(step / self.plan.total_steps, 1.0)

    def done(self, step: int) -> bool:
        """True once the budget is spent: the deadline passed, or ``step`` steps reached the total."""
        if self.plan.deadline_s is not None:
            return self.elapsed() >= self.plan.deadline_s
        return step >= self.plan.total_steps
