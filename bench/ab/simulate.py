"""What an A/B design would conclude on this machine, replayed from pairs it really measured.

``python -m bench.ab.figures simulate A_A.json ... [--trials N] [--slowdowns 0,0.02,0.05,0.1] -- [ab options]``

The design's ``--rounds K`` (default: ``ab``'s) is replayed from the first K rounds each recorded process
timed, in the order it timed them: what a process timing K rounds would have seen. Runs that recorded
fewer rounds cannot replay it, and say so.

The pairs of recorded A/A trials (``figures aa --out``, which keeps every round of every pair) give,
per case, what a pair's log ratio HEAD/BASE does when nothing changed: a spread between pairs of one
run (their deviations from the run's mean, resampled) and a spread between runs (the variance of the
run means beyond what the pairs explain, drawn as a normal shift shared by both sets of one run, so a
bias a run carries is not confirmed away). A slowdown ``s`` moves every log ratio by ``log(1 - s)``.
Each simulated run goes through ``experiment.decide``, the very code ``python -m bench ab`` decides
with (first set, growth, confirmation), with synthetic pairs in place of processes. It answers which
design to measure for real, fast; it is not a measurement of the design (the real trials are).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from bench.ab import experiment, verdict
from bench.errors import UsageError
from bench.io import read_json


def _runs(path: Path):
    """(interleaved, pairs as ``{case: (BASE samples, HEAD samples)}``) per run recorded in ``path``: an
    ``ab.json``, a figures report (``trials``, as under ``reports/cpu/ab/``), or a directory of either."""
    if path.is_dir():
        for child in sorted(path.glob("*.json")):
            yield from _runs(child)
        return
    doc = read_json(path, what="recorded A/A run")
    if not isinstance(doc, dict):
        raise UsageError(f"recorded A/A run {str(path)!r} is not an ab.json or a figures report")
    for run in [doc] if doc.get("kind") == "ab" else doc.get("trials") or []:
        try:
            pairs = [*(run.get("pairs") or []), *(run.get("confirmation_pairs") or [])]
            if run.get("kind") == "ab":  # a whole ab document (ab.json; a report of kept runs)
                pairs = [
                    {
                        k: (v.get("samples"), (p["HEAD"].get("cases") or {}).get(k, {}).get("samples"))
                        for k, v in (p["BASE"].get("cases") or {}).items()
                    }
                    for p in pairs
                ]
            else:  # a figures trial row: per case, both sides' rounds
                pairs = [{k: (v["BASE"], v["HEAD"]) for k, v in p["cases"].items()} for p in pairs]
        except (KeyError, TypeError, AttributeError) as e:
            raise UsageError(f"recorded A/A run {str(path)!r} is not an ab.json or a figures report ({e!r})") from None
        yield run.get("interleave") == "rounds", pairs


def _first(samples: list[float], rounds: int, path: str) -> list[float]:
    if len(samples) < rounds:
        raise UsageError(
            f"--rounds {rounds}: {path} has a process with {len(samples)} rounds; replay at most that many,"
            " or give runs recorded with more"
        )
    return samples[:rounds]


def slowdowns(text: str) -> list[float]:
    """``--slowdowns`` as fractions in [0, 1): "0,0.02,0.05"."""
    try:
        values = [float(x) for x in text.split(",")]
    except ValueError:
        values = []
    if not values or not all(0.0 <= v < 1.0 for v in values):
        raise UsageError(f"--slowdowns {text!r} is invalid; expected fractions in [0, 1), comma-separated (0,0.05)")
    return values


def pools(paths: list[str], rounds: int | None = None) -> dict[str, dict]:
    """Per case, from the runs' pairs (each process's first ``rounds`` rounds; None: all): ``residuals``
    (log ratios minus their run's mean, scaled to undo the shrinkage of that mean), ``between`` (the sd of the run means beyond that), ``bias``
    (the mean log ratio over every pair, what an unchanged tree shows) and the count of runs and pairs."""
    runs: dict[str, list[list[float]]] = {}
    for path in paths:
        for interleaved, pairs in _runs(Path(path)):
            logs: dict[str, list[float]] = {}
            for p in pairs:
                for key, (b, h) in p.items():
                    if b and h:
                        if rounds is not None:
                            b, h = _first(b, rounds, path), _first(h, rounds, path)
                        base, head = ({"samples": x, "median": float(np.median(x))} for x in (b, h))
                        logs.setdefault(key, []).append(
                            math.log(verdict.pair_ratio(base, head, interleaved=interleaved))
                        )
            for key, values in logs.items():
                runs.setdefault(key, []).append(values)
    if not runs:
        raise UsageError(f"no recorded pairs in {', '.join(paths) or 'no file'}: give ab.json files or figures reports")
    out = {}
    for key, groups in runs.items():
        groups = [np.asarray(g) for g in groups if len(g) > 1]
        if len(groups) < 2:
            raise ValueError(f"{key}: pairs of at least two runs of two pairs are needed, not {len(groups)}")
        residuals = np.concatenate([(g - g.mean()) * math.sqrt(len(g) / (len(g) - 1)) for g in groups])
        within = float(np.mean([g.var(ddof=1) / len(g) for g in groups]))
        between = max(0.0, float(np.var([g.mean() for g in groups], ddof=1)) - within)
        out[key] = {
            "residuals": residuals,
            "between": math.sqrt(between),
            "bias": float(np.concatenate(groups).mean()),
            "runs": len(groups),
            "pairs": int(residuals.size),
        }
    return out


def one_run(case_pools: dict[str, dict], slowdown: float, settings: experiment.Settings, rng) -> dict:
    """One simulated A/B: its failing cases and how many pairs each set took."""
    shift = {
        key: math.log(1.0 - slowdown) + pool["bias"] + float(rng.normal(0.0, pool["between"]))
        for key, pool in case_pools.items()
    }

    def take(count, cases, start):
        new = []
        for i in range(count):
            asked = list(case_pools) if cases is None else list(cases)
            draws = {k: math.exp(shift[k] + float(rng.choice(case_pools[k]["residuals"]))) for k in asked}
            new.append(
                {
                    "pair": start + i,
                    "asked": None if cases is None else asked,
                    "BASE": {"cases": {k: {"median": 1.0} for k in asked}},
                    "HEAD": {"cases": {k: {"median": v} for k, v in draws.items()}},
                }
            )
        return new

    pairs, second, cases, _ = experiment.decide(take, settings, lambda _dc: (None, None), log=lambda *a: None)
    return {"failed": verdict.regressed(cases), "pairs": len(pairs), "confirmation_pairs": len(second)}


def table(case_pools: dict[str, dict], settings: experiment.Settings, slowdowns, trials: int, seed: int = 0) -> list:
    """Per slowdown: the share of simulated runs that fail (false alarms at 0, power above) and the
    pairs they took (mean, and the 95th percentile of both sets together)."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in slowdowns:
        runs = [one_run(case_pools, s, settings, rng) for _ in range(trials)]
        total = [r["pairs"] + r["confirmation_pairs"] for r in runs]
        rows.append(
            {
                "slowdown": s,
                "failed": sum(bool(r["failed"]) for r in runs) / trials,
                "pairs_mean": float(np.mean(total)),
                "pairs_p95": float(np.percentile(total, 95)),
                "trials": trials,
            }
        )
    return rows


def design(settings: experiment.Settings, rounds: int | None = None) -> str:
    grow = f", growing to {settings.max_pairs} until {settings.detect:g} % is ruled out" if settings.max_pairs else ""
    timed = f", {rounds} rounds a process" if rounds is not None else ""
    return f"{settings.pairs}+{settings.confirm_pairs} pairs{grow}, rule {settings.rule}{timed}"


def markdown(
    case_pools: dict[str, dict], settings: experiment.Settings, rows: list[dict], rounds: int | None = None
) -> str:
    spread = "; ".join(
        f"{k.split('-bs')[0]}: sd within a run {np.std(p['residuals'], ddof=1):.3f}, between runs {p['between']:.3f},"
        f" bias {math.exp(p['bias']):.3f} ({p['runs']} runs, {p['pairs']} pairs)"
        for k, p in case_pools.items()
    )
    lines = [
        f"{design(settings, rounds)}. Log-ratio spread of the recorded pairs: {spread}.",
        "",
        "| slowdown | runs failing | pairs a run took (mean) | pairs (95th percentile) |",
        "|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['slowdown']:.0%} | {r['failed']:.1%} of {r['trials']} | {r['pairs_mean']:.1f} | {r['pairs_p95']:.0f} |"
        for r in rows
    ]
    return "\n".join(lines)
