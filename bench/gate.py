"""The gate: a pure function of (current values, baseline values, rules) returning findings.

It never builds or runs a model. Rules carry their direction and tolerance compactly:
``"throughput:-5%"`` (a relative drop of more than 5 % fails; higher is better) or
``"top1:-0.5pt"`` (an absolute drop of more than half a point fails). A ``+`` sign
(``"latency:+5%"``) means lower is better. Missing, errored or NaN values never pass.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
from typing import Iterable

from bench.errors import UsageError


class Verdict(str, enum.Enum):
    PASS = "pass"
    IMPROVEMENT = "improvement"
    REGRESSION = "regression"
    NO_BASELINE = "no baseline"
    ERROR = "error"


FAILING = frozenset({Verdict.REGRESSION, Verdict.NO_BASELINE, Verdict.ERROR})

_RULE = re.compile(r"^(?P<metric>[A-Za-z_][\w.]*):(?P<sign>[-+])(?P<tol>\d+(\.\d+)?)(?P<unit>%|pt)$")


@dataclasses.dataclass(frozen=True)
class Rule:
    """A metric, how far it may move the wrong way, and which way is wrong."""

    metric: str
    tolerance: float
    unit: str  # "%" relative to the baseline, "pt" absolute (percentage points for accuracies)
    higher_is_better: bool = True

    @classmethod
    def parse(cls, text: str) -> "Rule":
        m = _RULE.match(text.strip())
        if not m:
            raise UsageError(f"rule {text!r} is invalid; expected METRIC:-N% or METRIC:-Npt (e.g. 'throughput:-5%', 'top1:-0.5pt')")
        return cls(m["metric"], float(m["tol"]), m["unit"], higher_is_better=m["sign"] == "-")

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


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def judge(
    key: str,
    rule: Rule,
    current: float | None,
    baseline: float | None,
    *,
    error: str | None = None,
    significant: bool | None = None,
    note: str = "",
) -> Finding:
    """One verdict. ``significant`` is the caller's test of whether the difference exceeds the
    noise (None: no test available, the tolerance alone decides). A change beyond the tolerance
    that is not significant passes, and the reason says so."""
    base = dict(key=key, metric=rule.metric, unit=rule.unit)
    if error:
        return Finding(**base, verdict=Verdict.ERROR, current=current if _finite(current) else None,
                       baseline=baseline if _finite(baseline) else None, reason=error)
    if not _finite(current):
        return Finding(**base, verdict=Verdict.ERROR, baseline=baseline if _finite(baseline) else None,
                       reason=f"current {rule.metric} is {current!r}, not a finite number")
    if baseline is None:
        return Finding(**base, verdict=Verdict.NO_BASELINE, current=current, reason="no baseline entry for this key")
    if not _finite(baseline):
        return Finding(**base, verdict=Verdict.ERROR, current=current, reason=f"baseline {rule.metric} is {baseline!r}")
    change = rule.change(current, baseline)
    found = dict(base, current=current, baseline=baseline, change=change)
    suffix = f"; {note}" if note else ""
    if change < -rule.tolerance:
        if significant is False:
            return Finding(**found, verdict=Verdict.PASS, reason=f"drop beyond {rule} but not significant{suffix}")
        return Finding(**found, verdict=Verdict.REGRESSION, reason=f"drop beyond {rule}{suffix}")
    if change > rule.tolerance and significant is not False:
        return Finding(**found, verdict=Verdict.IMPROVEMENT, reason=f"gain beyond {rule}{suffix}")
    return Finding(**found, verdict=Verdict.PASS, reason=f"within {rule}{suffix}")


def exit_code(findings: Iterable[Finding]) -> int:
    """1 if anything failed or there was nothing to judge, else 0."""
    findings = list(findings)
    return 1 if not findings or any(f.failed for f in findings) else 0


def format_table(findings: Iterable[Finding]) -> str:
    """A plain-text table of verdicts, widest key first column."""
    rows = [("key", "metric", "current", "baseline", "change", "verdict", "why")]
    for f in findings:
        rows.append((
            f.key, f.metric, _num(f.current), _num(f.baseline),
            "" if f.change is None else f"{f.change:+.2f}{f.unit}", f.verdict.value.upper(), f.reason,
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1] for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * 3)
    return "\n".join(line.rstrip() for line in lines)


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}" if abs(x) < 1e4 else f"{x:,.0f}"
