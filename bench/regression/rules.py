"""The regression rule, in one place: rules, their defaults, how tolerances are set, and the verdict.

The verdict is a pure function of (current value, baseline value, rule) returning a finding; it
never builds or runs a model. Rules carry their direction and tolerance compactly:
``"throughput:-5%"`` (a relative drop of more than 5 % fails; higher is better) or
``"top1:-0.5pt"`` (an absolute drop of more than half a point fails). A ``+`` sign
(``"latency:+5%"``) means lower is better. Missing, errored or NaN values never pass.

Where each gate's numbers come from:

- throughput (``bench.regression.throughput``): a drop beyond ``THROUGHPUT_RULE`` (or the entry's
  rule) that a one-sided rank test over the rounds also finds significant at ``ALPHA``;
- accuracy (``bench.regression.accuracy``): a drop beyond the entry's band in either direction (two-sided:
  an unexplained gain fails too, unless the entry or ``--allow-improvement`` allows it), which a
  measured baseline sets from its seeds by ``prediction_rule`` (a prediction interval at
  ``FALSE_ALARM``), and a reported one takes from its recipe; the same for the test loss where the
  entry has one; and before any of it, a fingerprint that differs from the baseline's (``changed``).
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
from collections.abc import Iterable

from bench.errors import UsageError
from bench.stats import finite


class Verdict(str, enum.Enum):
    PASS = "pass"
    IMPROVEMENT = "improvement"  # better beyond the tolerance, where better is welcome (throughput)
    UNEXPECTED = "unexpected improvement"  # better beyond a two-sided band: something changed (accuracy)
    REGRESSION = "regression"
    CHANGED = "changed"  # what produced the result is not what produced the baseline (bench.fingerprint)
    NO_BASELINE = "no baseline"
    ERROR = "error"


FAILING = frozenset({Verdict.REGRESSION, Verdict.UNEXPECTED, Verdict.CHANGED, Verdict.NO_BASELINE, Verdict.ERROR})

THROUGHPUT_RULE = "throughput:-5%"  # images/s: a drop of more than 5 % ...
ALPHA = 0.01  # ... that the one-sided rank test over rounds finds significant (p < ALPHA)
# the levels ``compare --alpha`` takes: one-sided, 0.5 or more calls a coin toss significant; below one
# in a million no run of this harness holds the evidence (30 rounds a side reach p = 1.5e-11, but the
# t quantile of 3 runs' interval is then ±707 std and shrinks to nothing in float arithmetic near 1e-16)
ALPHA_RANGE = (1e-6, 0.5)
ACCURACY_METRIC = "top1"
# A measured accuracy baseline's tolerance: the two-sided prediction interval for one new,
# unchanged run, at this false-alarm rate for one neutral change (bench.stats.prediction_halfwidth).
FALSE_ALARM = 0.001

# the widest tolerance a rule may have: wider ones could never fail (a schema error, not a rule)
MAX_TOLERANCE = {"pt": 20.0, "%": 50.0}
_RULE = re.compile(r"^(?P<metric>[A-Za-z_][\w.]*):(?P<sign>[-+])(?P<tol>[0-9]+(\.[0-9]+)?)(?P<unit>%|pt)$")


@dataclasses.dataclass(frozen=True)
class Rule:
    """A metric, how far it may move the wrong way, and which way is wrong."""

    metric: str
    tolerance: float
    unit: str  # "%" relative to the baseline, "pt" absolute (percentage points for accuracies)
    higher_is_better: bool = True

    @classmethod
    def parse(cls, text: str) -> Rule:
        m = _RULE.match(text.strip()) if isinstance(text, str) else None  # a baselines file may hold any JSON
        if not m:
            raise UsageError(
                f"rule {text!r} is invalid; expected METRIC:-N% or METRIC:-Npt (e.g. 'throughput:-5%', 'top1:-0.5pt')"
            )
        if float(m["tol"]) > MAX_TOLERANCE[m["unit"]]:
            raise UsageError(
                f"rule {text!r} is invalid; a tolerance is at most {MAX_TOLERANCE[m['unit']]:g}{m['unit']} "
                "(a wider one could never fail)"
            )
        return cls(m["metric"], float(m["tol"]), m["unit"], higher_is_better=m["sign"] == "-")

    @classmethod
    def parse_for(cls, text: str, *, metric: str, unit: str, higher_is_better: bool = True) -> Rule:
        """``parse``, and check that the rule is ``METRIC:-N<unit>`` (``+`` when lower is better)."""
        rule = cls.parse(text)
        sign = "-" if higher_is_better else "+"
        if rule.metric != metric or rule.unit != unit or rule.higher_is_better != higher_is_better:
            raise UsageError(
                f"rule {text!r} is invalid here; expected '{metric}:{sign}N{unit}' "
                f"({'higher' if higher_is_better else 'lower'} is better)"
            )
        return rule

    def __str__(self) -> str:
        return f"{self.metric}:{'-' if self.higher_is_better else '+'}{self.tolerance:g}{self.unit}"

    def change(self, current: float, baseline: float) -> float:
        """Signed change in the rule's unit, positive meaning better."""
        delta = current - baseline if self.higher_is_better else baseline - current
        if self.unit == "%":
            return 100.0 * delta / abs(baseline) if baseline else math.copysign(math.inf, delta) if delta else 0.0
        return delta


@dataclasses.dataclass(frozen=True)
class Finding:
    key: str
    metric: str
    verdict: Verdict
    current: float | None = None
    baseline: float | None = None
    change: float | None = None
    unit: str = ""
    reason: str = ""

    @property
    def failed(self) -> bool:
        return self.verdict in FAILING

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["verdict"] = self.verdict.value
        return d


def judge(
    key: str,
    rule: Rule,
    current: float | None,
    baseline: float | None,
    *,
    error: str | None = None,
    significant: bool | None = None,
    two_sided: bool = False,
    note: str = "",
    untestable: str | None = None,
) -> Finding:
    """One verdict. ``significant`` is the caller's test of whether the difference exceeds the
    noise (None: no test available, the tolerance alone decides). A change beyond the tolerance
    that is not significant passes, and the reason says so, unless ``untestable`` says why the test
    could not have found it significant whatever it was (too few samples for the level): then it
    is an ERROR, never a PASS. A change that is not a finite number is an ERROR too. ``two_sided``:
    a change beyond the tolerance in the good direction fails too, as an unexpected improvement (a
    band, not a floor)."""
    base = dict(key=key, metric=rule.metric, unit=rule.unit)
    if error:
        return Finding(
            **base,
            verdict=Verdict.ERROR,
            current=current if (finite(current) is not None) else None,
            baseline=baseline if (finite(baseline) is not None) else None,
            reason=error,
        )
    if not (finite(current) is not None):
        return Finding(
            **base,
            verdict=Verdict.ERROR,
            baseline=baseline if (finite(baseline) is not None) else None,
            reason=f"current {rule.metric} is {current!r}, not a finite number",
        )
    if baseline is None:
        return Finding(**base, verdict=Verdict.NO_BASELINE, current=current, reason="no baseline entry for this key")
    if not (finite(baseline) is not None):
        return Finding(**base, verdict=Verdict.ERROR, current=current, reason=f"baseline {rule.metric} is {baseline!r}")
    change = rule.change(current, baseline)
    if finite(change) is None:
        return Finding(
            **base,
            verdict=Verdict.ERROR,
            current=current,
            baseline=baseline,
            reason=f"the change from {baseline!r} to {current!r} is {change!r}, not a finite number",
        )
    found = dict(base, current=current, baseline=baseline, change=change)
    moved = f"{rule.metric} {_moved(rule, current, baseline)}"
    limit = f"the {'±' if two_sided else ''}{rule.tolerance:g} {rule.unit} {'band' if two_sided else 'tolerance'}"
    suffix = f"; {note}" if note else ""
    if untestable and significant is False and abs(change) > rule.tolerance:
        return Finding(
            **found, verdict=Verdict.ERROR, reason=f"{moved}, beyond {limit}; cannot judge: {untestable}{suffix}"
        )
    if change < -rule.tolerance:
        if significant is False:
            return Finding(**found, verdict=Verdict.PASS, reason=f"{moved}, beyond {limit} but not significant{suffix}")
        return Finding(**found, verdict=Verdict.REGRESSION, reason=f"{moved}, beyond {limit}{suffix}")
    if change > rule.tolerance:
        if significant is False:
            return Finding(**found, verdict=Verdict.PASS, reason=f"{moved}, beyond {limit} but not significant{suffix}")
        if two_sided:
            return Finding(
                **found,
                verdict=Verdict.UNEXPECTED,
                reason=f"{moved}, beyond {limit}: unexpected improvement; update the baseline if intended{suffix}",
            )
        return Finding(**found, verdict=Verdict.IMPROVEMENT, reason=f"{moved}, beyond {limit}{suffix}")
    return Finding(**found, verdict=Verdict.PASS, reason=f"{moved}, within {limit}{suffix}")


def _moved(rule: Rule, current: float, baseline: float) -> str:
    """``rose 1.2 pt`` / ``fell 4.5 %``: the raw direction and the size in the rule's unit."""
    size = abs(rule.change(current, baseline))
    if round(size, 2) == 0:
        return "unchanged"
    return f"{'rose' if current > baseline else 'fell'} {size:.2f} {rule.unit}"


def changed(key: str, metric: str, differences: dict[str, list[str]], *, note: str = "") -> Finding:
    """The verdict for a result produced by something other than what produced its baseline
    (``bench.fingerprint.differences``: part -> readable lines), before any statistics."""
    parts = "; ".join(f"{part} changed: {', '.join(lines)}" for part, lines in differences.items())
    suffix = f"; {note}" if note else ""
    return Finding(
        key=key,
        metric=metric,
        verdict=Verdict.CHANGED,
        reason=f"{parts}; re-measure the baseline if intended{suffix}",
    )


def prediction_rule(
    values, *, metric: str = "top1", unit: str = "pt", higher_is_better: bool = True
) -> tuple[str, dict]:
    """The tolerance rule of a measured baseline from its per-seed values (>= 3), and how it was
    set: the two-sided prediction interval for one new seed at ``FALSE_ALARM``, rounded up;
    ``unit`` "%" states it relative to the mean (for metrics without points, like a loss)."""
    from bench.stats import prediction_halfwidth

    interval = prediction_halfwidth(values, FALSE_ALARM)
    n = interval["n"]
    method = (
        f"two-sided {100 * (1 - FALSE_ALARM):g}% prediction interval for one new seed: "
        f"t({1 - FALSE_ALARM / 2:g}, {n - 1}) = {interval['t']:.2f} x std x sqrt(1 + 1/{n})"
    )
    halfwidth = interval["halfwidth"]
    if unit == "%":
        halfwidth = 100.0 * halfwidth / abs(sum(values) / len(values))
    rule = f"{metric}:{'-' if higher_is_better else '+'}{math.ceil(halfwidth * 100) / 100:g}{unit}"
    return rule, {
        "tolerance_method": method,
        "shapiro_p": None if interval["shapiro_p"] is None else round(interval["shapiro_p"], 4),
    }


def exit_code(findings: Iterable[Finding]) -> int:
    """1 if anything failed or there was nothing to judge, else 0."""
    findings = list(findings)
    return 1 if not findings or any(f.failed for f in findings) else 0


def format_table(findings: Iterable[Finding]) -> str:
    """A plain-text table of verdicts, widest key first column."""
    rows = [("key", "metric", "current", "baseline", "change", "verdict", "why")]
    for f in findings:
        rows.append(
            (
                f.key,
                f.metric,
                _num(f.current),
                _num(f.baseline),
                "" if f.change is None else f"{f.change:+.2f}{f.unit}",
                f.verdict.value.upper(),
                f.reason,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1] for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * 3)
    return "\n".join(line.rstrip() for line in lines)


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}" if abs(x) < 1e4 else f"{x:,.0f}" if abs(x) < 1e12 else f"{x:.4g}"
