"""Statistics over per-round samples: robust summaries and the significance of a change.

Throughput is summarised by the median and inter-quartile range of per-round images/s (robust to
the odd round a neighbour's job slowed down) and the coefficient of variation. Whether a change
against a baseline is real is judged on the raw per-round samples of both runs: a one-sided
Mann-Whitney U (rank) test, with a bootstrap interval for the ratio of medians reported beside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

MIN_SAMPLES = 3  # fewer rounds than this on either side: no test, the tolerance alone decides


def finite(value) -> float | None:
    """``value`` as a float when it is a finite real number (Python, NumPy or a 0-d tensor), else
    None: NaN, Inf, None, booleans, strings and anything else that is not a number."""
    if value is None or isinstance(value, (bool, str, bytes)):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def rates(round_seconds: Sequence[float], items_per_round: float) -> list[float]:
    """Items (images) per second of each round."""
    return [items_per_round / t for t in round_seconds if t > 0]


def summary(samples: Sequence[float]) -> dict:
    """median, q1, q3, iqr, mean, std, min, max, cv and n of ``samples`` (empty: n=0 only)."""
    a = np.asarray(list(samples), dtype=float)
    if a.size == 0:
        return {"n": 0}
    q1, med, q3 = (float(v) for v in np.percentile(a, [25, 50, 75]))
    std = float(a.std(ddof=1)) if a.size > 1 else 0.0
    mean = float(a.mean())
    return {
        "median": med,
        "q1": q1,
        "q3": q3,
        "iqr": q3 - q1,
        "mean": mean,
        "std": std,
        "min": float(a.min()),
        "max": float(a.max()),
        "cv": std / mean if a.size > 1 and mean else None,
        "n": int(a.size),
    }


def rank_test(current: Sequence[float], baseline: Sequence[float], *, alternative: str) -> float | None:
    """One-sided Mann-Whitney U p-value that ``current`` is 'less' or 'greater' than ``baseline``;
    None when either side has fewer than ``MIN_SAMPLES`` samples."""
    from scipy.stats import mannwhitneyu

    if alternative not in ("less", "greater"):
        raise ValueError(f"alternative must be 'less' or 'greater', not {alternative!r}")
    if len(current) < MIN_SAMPLES or len(baseline) < MIN_SAMPLES:
        return None
    return float(mannwhitneyu(current, baseline, alternative=alternative).pvalue)


def smallest_p(n: int, m: int) -> float | None:
    """The smallest p-value ``rank_test`` can return for ``n`` and ``m`` samples (both sides wholly
    apart); None below ``MIN_SAMPLES``. At a level at or below it the test can never find a change:
    1/C(n+m, n) for the exact test of small samples, e.g. 0.05 for 3 against 3."""
    from scipy.stats import mannwhitneyu

    if n < MIN_SAMPLES or m < MIN_SAMPLES:
        return None
    return float(mannwhitneyu(range(n), range(n, n + m), alternative="less").pvalue)


def bootstrap_ratio_ci(
    current: Sequence[float],
    baseline: Sequence[float],
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Percentile bootstrap interval for median(current) / median(baseline); None below ``MIN_SAMPLES``."""
    c = np.asarray(current, dtype=float)
    b = np.asarray(baseline, dtype=float)
    if c.size < MIN_SAMPLES or b.size < MIN_SAMPLES:
        return None
    rng = np.random.default_rng(seed)
    with np.errstate(all="ignore"):  # rates near the float limit overflow: the bounds are then not finite
        cm = np.median(rng.choice(c, size=(resamples, c.size), replace=True), axis=1)
        bm = np.median(rng.choice(b, size=(resamples, b.size), replace=True), axis=1)
        ratio = cm / bm
        tail = (1.0 - confidence) / 2.0
        lo, hi = np.quantile(ratio, [tail, 1.0 - tail])
    return float(lo), float(hi)


def significance(current: Sequence[float], baseline: Sequence[float], *, alpha: float) -> dict:
    """Is the move of ``current`` away from ``baseline`` (in the direction its median moved) beyond the
    noise? Returns ``{"significant": bool | None, "p": float | None, "direction": ..., "ci": (lo, hi) | None,
    "smallest_p": float | None}``; ``significant`` is None when there are too few samples to test, and
    the test could not have found any change when ``smallest_p`` (``smallest_p``) is ``alpha`` or more.
    The ``ci`` bounds may be Inf or NaN for rates near the float limit: the caller says so."""
    with np.errstate(all="ignore"):
        cmed = float(np.median(current)) if len(current) else math.nan
        bmed = float(np.median(baseline)) if len(baseline) else math.nan
    direction = "less" if cmed < bmed else "greater"
    p = rank_test(current, baseline, alternative=direction)
    ci = bootstrap_ratio_ci(current, baseline)
    return {
        "significant": None if p is None else p < alpha,
        "p": p,
        "direction": direction,
        "ci": ci,
        "smallest_p": smallest_p(len(current), len(baseline)),
    }


def prediction_halfwidth(values: Sequence[float], false_alarm: float) -> dict:
    """How far one new draw may fall from the mean of ``values`` before it is called a change.

    The two-sided Student-t prediction interval for a single new observation from the same normal
    distribution: ``t(1 - false_alarm/2, n-1) * s * sqrt(1 + 1/n)``. Unlike a bare k-sigma band it
    widens when ``n`` is small, so that an unchanged run falls outside it with probability
    ``false_alarm`` (if the spread is normal: ``shapiro_p`` is the Shapiro-Wilk test of that,
    None below 3 values). Needs at least 3 finite values, and a ``false_alarm`` whose quantile and
    half-width are finite (one too small for a float, e.g. 1e-17, gives t = Inf): else ValueError,
    never an Inf or NaN half-width."""
    from scipy import stats as st

    a = np.asarray(list(values), dtype=float)
    n = int(a.size)
    if n < 3:
        raise ValueError(f"a prediction interval needs at least 3 values, not {n}")
    if not 0 < false_alarm < 1:
        raise ValueError(f"false_alarm must be in (0, 1), not {false_alarm}")
    if not np.isfinite(a).all():
        raise ValueError(f"a prediction interval needs finite values, not {a.tolist()}")
    with np.errstate(all="ignore"):
        std = float(a.std(ddof=1))
    t = float(st.t.ppf(1.0 - false_alarm / 2.0, n - 1))
    halfwidth = t * std * math.sqrt(1.0 + 1.0 / n)
    if not math.isfinite(halfwidth):
        raise ValueError(
            f"the prediction interval at false_alarm {false_alarm:g} over {n} values is not finite "
            f"(t = {t:g}, std = {std:g})"
        )
    shapiro = float(st.shapiro(a).pvalue) if std > 0 else None
    return {
        "halfwidth": halfwidth,
        "t": t,
        "std": std,
        "n": n,
        "false_alarm": false_alarm,
        "shapiro_p": shapiro,
    }
