"""The A/B verdict from pairs: per case, the ratio HEAD/BASE within each pair of processes.

Each pair gives one ratio HEAD/BASE (below 1 is slower): when its processes took turns round by
round, the median over rounds of the ratio of their i-th rounds, which ran a second apart (a burst
of load that slowed one side's round is then judged against the other side's neighbouring round,
not against its whole run); else the ratio of the two processes' medians. The estimate is
their geometric mean and the interval a Student-t interval on the log ratios over pairs (pairs,
not rounds, are the independent draws: rounds of one process share its luck). A case is flagged
**slower** when the interval lies below 1 and the estimate is below ``1 - threshold``, where the
threshold is the larger of the rule's tolerance and this machine's A/A calibration (the furthest an
A/A run's interval reached from 1: the smallest change these pairs can tell from none); **faster**
likewise above; **no change** when the whole interval lies within the threshold of 1; else
**inconclusive** (the pairs are too noisy to tell: more pairs, or a quieter machine). A flagged
slower case is confirmed only when a second, independent set of pairs flags it again.

A set can grow (``undecided``): while a case is neither flagged slower nor has a slowdown of the
size to detect ruled out (its interval's lower end still below ``1 - detect``), more pairs are run
for it, up to a cap; the confirming set grows the same way for the cases it confirms.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

CONFIDENCE = 0.95
MIN_PAIRS = 2
SLOWER, FASTER, SAME, INCONCLUSIVE, ERROR = "slower", "faster", "no change", "inconclusive", "error"


def ratios(pairs: Sequence[dict], key: str) -> tuple[list[float], str | None]:
    """HEAD/BASE ratios of ``key``, one per pair (``pair_ratio``), and the first error that spoiled one (if any)."""
    out = []
    for p in pairs:
        if p.get("asked") is not None and key not in p["asked"]:
            continue  # a pair run for other cases only (a growing set's)
        b, h = ((p[label].get("cases") or {}).get(key) or {} for label in ("BASE", "HEAD"))
        for label, r in (("BASE", b), ("HEAD", h)):
            if not r or r.get("error") or not r.get("median"):
                why = (r or {}).get("error") or p[label].get("error") or "no result"
                return out, f"{label} pair {p['pair'] + 1}: {why}"
        out.append(pair_ratio(b, h, interleaved=all(p[label].get("interleaved") for label in ("BASE", "HEAD"))))
    return out, None


def pair_ratio(base: dict, head: dict, *, interleaved: bool) -> float:
    """One pair's HEAD/BASE images/s: round by round when its processes took turns (``interleaved``:
    their i-th rounds ran a second apart), the median of those ratios; else, or when the rounds do not
    match up, the ratio of the two processes' medians."""
    b, h = (np.asarray(r.get("samples") or [], dtype=float) for r in (base, head))
    if interleaved and b.size == h.size > 0 and (b > 0).all() and (h > 0).all():
        return float(np.exp(np.median(np.log(h / b))))
    return head["median"] / base["median"]


def interval(values: Sequence[float], *, confidence: float = CONFIDENCE) -> dict:
    """Geometric mean of positive ``values`` and its Student-t interval on the log scale."""
    from scipy import stats as st

    logs = np.log(np.asarray(values, dtype=float))
    n = int(logs.size)
    if n < MIN_PAIRS:
        raise ValueError(f"an interval needs at least {MIN_PAIRS} pairs, not {n}")
    mean, sd = float(logs.mean()), float(logs.std(ddof=1))
    half = float(st.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return {
        "ratio": math.exp(mean),
        "lo": math.exp(mean - half),
        "hi": math.exp(mean + half),
        "sd_log": sd,
        "n": n,
        "confidence": confidence,
    }


def judge(values: Sequence[float], threshold: float) -> dict:
    """``interval(values)`` plus its verdict against ``threshold`` (a fraction, e.g. 0.05)."""
    ci = interval(values)
    if ci["hi"] < 1.0 and ci["ratio"] < 1.0 - threshold:
        verdict = SLOWER
    elif ci["lo"] > 1.0 and ci["ratio"] > 1.0 + threshold:
        verdict = FASTER
    elif 1.0 - threshold <= ci["lo"] and ci["hi"] <= 1.0 + threshold:
        verdict = SAME
    else:
        verdict = INCONCLUSIVE
    return {**ci, "verdict": verdict, "threshold": threshold}


def case_keys(pairs: Sequence[dict]) -> list[str]:
    """Every case either side reported, in first-seen order."""
    keys: dict[str, None] = {}
    for p in pairs:
        for label in ("BASE", "HEAD"):
            keys.update(dict.fromkeys(p[label].get("cases") or {}))
    return list(keys)


def medians(pairs: Sequence[dict], key: str, label: str) -> float | None:
    """The median over pairs of one side's per-process median images/s."""
    values = [((p[label].get("cases") or {}).get(key) or {}).get("median") for p in pairs]
    values = [v for v in values if v]
    return float(np.median(values)) if values else None


def evaluate(pairs: Sequence[dict], threshold: float, keys: Sequence[str] = ()) -> dict[str, dict]:
    """Per case (those the pairs reported, and ``keys``, which no pair may have reported: an error
    then, saying why): BASE and HEAD medians, the pair ratios, and ``judge``'s verdict (or an error)."""
    out = {}
    for key in dict.fromkeys([*case_keys(pairs), *keys]):
        values, error = ratios(pairs, key)
        row = {"base": medians(pairs, key, "BASE"), "head": medians(pairs, key, "HEAD"), "ratios": values}
        if error or len(values) < MIN_PAIRS:
            out[key] = {**row, "verdict": ERROR, "error": error or f"fewer than {MIN_PAIRS} pairs"}
        else:
            out[key] = {**row, **judge(values, threshold)}
    return out


def undecided(rows: dict[str, dict], detect: float, among: Sequence[str] | None = None) -> list[str]:
    """Cases (of ``among``; None: all) that more pairs could still decide: not flagged slower, not
    errored, and a slowdown of ``detect`` (a fraction) not yet ruled out by their interval."""
    return [
        k
        for k, r in rows.items()
        if (among is None or k in among) and r["verdict"] not in (SLOWER, ERROR) and r["lo"] < 1.0 - detect
    ]


def confirm(first: dict[str, dict], second: dict[str, dict]) -> dict[str, dict]:
    """``first`` with each slower case's confirmation from the independent ``second`` set:
    ``confirmed`` True (slower again), False (not), None (not flagged, nothing to confirm, or the
    confirming set has no result for it: ``confirmation_error`` then says why, and the case fails
    as one with no result does)."""
    out = {}
    for key, row in first.items():
        if row["verdict"] != SLOWER:
            out[key] = {**row, "confirmed": None}
            continue
        again = second.get(key) or {"verdict": ERROR, "error": "no confirming pair measured it"}
        if again["verdict"] == ERROR:
            out[key] = {**row, "confirmed": None, "confirmation": again, "confirmation_error": again["error"]}
            continue
        out[key] = {**row, "confirmed": again["verdict"] == SLOWER, "confirmation": again}
    return out


def errored(row: dict) -> bool:
    """Whether a case has no verdict: its pairs, or the confirming set of a case flagged slower, failed."""
    return row["verdict"] == ERROR or bool(row.get("confirmation_error"))


def regressed(rows: dict[str, dict]) -> list[str]:
    """Cases that fail: a confirmed slowdown, or an error (missing or errored results fail, the
    confirming set's too)."""
    return [k for k, r in rows.items() if r.get("confirmed") or errored(r)]


def calibration(rows: dict[str, dict]) -> float:
    """From an A/A run's rows: the furthest any case's interval reached from 1 (a fraction)."""
    reach = [max(1.0 - r["lo"], r["hi"] - 1.0) for r in rows.values() if r["verdict"] != ERROR]
    if not reach:
        raise ValueError("no case of the A/A run has an interval")
    return max(reach)
