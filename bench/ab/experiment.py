"""One A/B run from start to verdict: sides prepared, pairs run, a second set of pairs for any case
flagged slower, and the result document (what ``python -m bench ab`` writes and ``bisect`` reads).

With ``Settings.max_pairs`` above a set's size, the set grows (``grow``): two pairs at a time (an
ABBA block) for the cases still undecided (``verdict.undecided``), until each is flagged slower or
has a slowdown of ``Settings.detect`` ruled out, or the set reaches ``max_pairs``."""

from __future__ import annotations

import dataclasses
import datetime
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.ab import runner, verdict
from bench.ab.sides import Side, parse
from bench.environment import REPO_ROOT, machine_line

SCHEMA = 1


@dataclasses.dataclass(frozen=True)
class Settings:
    """How an A/B run measures and judges: the throughput options each process gets, the pairs, the rule.

    The defaults (``ab``'s and ``bisect``'s) are the design measured in the README's A/A and power trials:
    sets of 3 pairs growing to 8 until a slowdown of ``detect`` is flagged or ruled out, a 3 % rule."""

    throughput_args: tuple[str, ...] = ()
    pairs: int = 3
    confirm_pairs: int = 3
    rule: str = "throughput:-3%"  # the rule's tolerance (``tolerance``) is the least slowdown a verdict calls slower
    seed: int = 0
    repo: Path = REPO_ROOT
    interleave: str = "rounds"  # runner.INTERLEAVE: how a pair's two processes share the machine
    process_timeout: float = 3600.0  # seconds a process (or, interleaved, a pair) may run before it is killed
    max_pairs: int | None = 8  # a set grows to this many pairs while a case is undecided (None: fixed sets)
    detect: float = 5.0  # percent: a growing set stops for a case once a slowdown this large is ruled out

    @property
    def tolerance(self) -> float:
        """The rule's tolerance in percent (``throughput:-3%`` -> 3.0): one fact, stated by ``rule``."""
        from bench.regression import rules

        return rules.Rule.parse_for(self.rule, metric="throughput", unit="%").tolerance


def run(
    base: Side | str,
    head: Side | str,
    settings: Settings,
    *,
    calibration: Callable[[str | None], tuple[float | None, str | None]] = lambda device_class: (None, None),
    workdir: Path | None = None,
    log=print,
) -> dict:
    """A/B of ``head`` against ``base``: the result document (``cases``, ``pairs``, ``sides``, ...).
    ``calibration(device_class)`` is the A/A threshold recorded for the machine and this design (a
    fraction), or None and why.
    A pair's processes take turns (``runner.measure_interleaved``) when ``settings.interleave`` is
    "rounds" and both trees know how; else they run one after the other (``runner.measure``)."""
    base = parse(base) if isinstance(base, str) else base
    head = parse(head) if isinstance(head, str) else head
    t0 = time.perf_counter()
    rng = np.random.default_rng(settings.seed)
    drop_backend = base.backend != head.backend
    with (
        tempfile.TemporaryDirectory(prefix="cnn-bench-ab-") as tmp,
        runner.prepared_sides(base, head, settings.repo, log=log) as sides,
    ):
        logs = Path(workdir or tmp)
        logs.mkdir(parents=True, exist_ok=True)
        interleave = settings.interleave
        if interleave == "rounds" and not all(runner.has(s, "turns") for s in sides):
            interleave = "processes"
            log("cnn-bench ab: a side's tree predates turn-taking: its pairs run one process after the other")

        def one(cases):
            cases = None if drop_backend else cases  # -k by id; ids differ between backends

            def pair(order, indices):
                args = list(settings.throughput_args)
                outs = [logs / f"{i:03d}-{p.label}.json" for p, i in zip(order, indices, strict=True)]
                kw = {"cases": cases, "drop_backend": drop_backend, "timeout": settings.process_timeout}
                if interleave == "rounds":
                    return runner.measure_interleaved(order, args, outs, **kw)
                return [runner.measure(p, args, o, **kw) for p, o in zip(order, outs, strict=True)]

            return pair

        def take(count, cases, start):
            asked = None if drop_backend else cases
            return runner.run_pairs(sides, count, one(cases), rng=rng, start=start, asked=asked, log=log)

        pairs, second, cases, threshold = decide(take, settings, calibration, log=log)
        device_class = _device_class(pairs)
        environments = {s.label: {**s.environment, "versions": _versions(pairs, s.label)} for s in sides}
    machine = next((p[x].get("machine_info") for p in pairs for x in runner.LABELS if p[x].get("machine_info")), {})
    doc = {
        "kind": "ab",
        "schema": SCHEMA,
        "datetime": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "device_class": device_class,
        "produced_by": machine_line(machine or {}),
        "settings": {**dataclasses.asdict(settings), "tolerance": settings.tolerance, "repo": str(settings.repo)},
        "interleave": interleave,
        "threshold": threshold,
        "sides": environments,
        "cases": cases,
        "pairs": pairs,
        "confirmation_pairs": second,
        "wall_s": time.perf_counter() - t0,
    }
    doc["regressions"] = verdict.regressed(cases)
    doc["summary"] = summary(doc)
    return doc


def decide(take: Callable[[int, list[str] | None, int], list[dict]], settings: Settings, calibration, *, log=print):
    """The pairs an A/B runs and its verdict, given ``take(count, cases, start)``, which runs
    ``count`` new pairs for ``cases`` (None: all) numbered from ``start``: the first set (grown while
    a case is undecided), then a confirming set for the cases it flags slower (grown likewise).
    Returns (pairs, confirmation pairs, per-case rows, the threshold: its value, the rule, the
    calibration and, where there is none, why)."""
    pairs = take(settings.pairs, None, 0)
    cal, why = calibration(_device_class(pairs))
    threshold = max(settings.tolerance / 100.0, cal or 0.0)
    limit = settings.max_pairs or 0
    detect = settings.detect / 100.0
    pairs = grow(pairs, take, limit=limit, threshold=threshold, detect=detect, log=log)
    cases = verdict.evaluate(pairs, threshold)
    flagged = [k for k, r in cases.items() if r["verdict"] == verdict.SLOWER]
    second = []
    if flagged and settings.confirm_pairs:
        log(
            f"cnn-bench ab: {len(flagged)} case(s) flagged slower; confirming with {settings.confirm_pairs} new pair(s)"
        )
        offset = len(pairs)

        def take_more(count, cases, start):
            return take(count, cases, offset + start)

        second = take_more(settings.confirm_pairs, flagged, 0)
        second = grow(second, take_more, limit=limit, threshold=threshold, detect=detect, among=flagged, log=log)
    cases = verdict.confirm(cases, verdict.evaluate(second, threshold, flagged) if second else {})
    judged = {"value": threshold, "rule": settings.rule, "calibration": cal}
    return pairs, second, cases, judged | ({"calibration_note": why} if why else {})


def _device_class(pairs: list[dict]) -> str | None:
    return next((p[x].get("device_class") for p in pairs for x in runner.LABELS if p[x].get("device_class")), None)


def grow(
    pairs: list[dict],
    take: Callable[[int, list[str], int], list[dict]],
    *,
    limit: int,
    threshold: float,
    detect: float,
    among: list[str] | None = None,
    log=print,
) -> list[dict]:
    """``pairs`` (one set) grown two pairs at a time while a case (of ``among``) is undecided
    (``verdict.undecided``), up to ``limit`` pairs. ``take(count, cases, start)`` runs ``count`` new
    pairs for ``cases``, numbered from ``start`` within the set."""
    pairs = list(pairs)
    while len(pairs) < limit:
        open_cases = verdict.undecided(verdict.evaluate(pairs, threshold), detect, among)
        if not open_cases:
            break
        count = min(2, limit - len(pairs))
        log(f"cnn-bench ab: {len(open_cases)} case(s) undecided after {len(pairs)} pair(s); {count} more")
        pairs += take(count, open_cases, len(pairs))
    return pairs


def _versions(pairs: list[dict], label: str) -> dict | None:
    """Keras, its backend and the backend's versions as the side's first process reported them."""
    info = next((p[label]["machine_info"] for p in pairs if p[label].get("machine_info")), None)
    if not info:
        return None
    keys = ("python_version", "keras", "backend", "tensorflow", "jax", "jaxlib", "torch")
    return {k: info[k] for k in keys if info.get(k) is not None}


def summary(doc: dict) -> str:
    """One sentence: the verdict and why."""
    cases = doc["cases"]
    failed = doc["regressions"]
    errors = [k for k in failed if cases[k]["verdict"] == verdict.ERROR]
    unconfirmable = [k for k in failed if cases[k].get("confirmation_error")]
    confirmed = [k for k in failed if k not in errors and k not in unconfirmable]
    unconfirmed = [k for k, r in cases.items() if r.get("confirmed") is False]
    parts = []
    if confirmed:
        parts.append(f"confirmed regression in {', '.join(confirmed)}")
    if errors:
        parts.append(f"no result for {', '.join(errors)}")
    if unconfirmable:
        parts.append(
            "flagged slower, but the confirming set failed ("
            + "; ".join(f"{k}: {cases[k]['confirmation_error']}" for k in unconfirmable)
            + ")"
        )
    if unconfirmed:
        parts.append(f"slower but not confirmed by a second set of pairs: {', '.join(unconfirmed)}")
    unsure = [k for k, r in cases.items() if r["verdict"] == verdict.INCONCLUSIVE]
    detect = doc["settings"].get("detect")
    still_open = verdict.undecided(cases, detect / 100.0) if detect is not None else unsure
    cleared = [k for k in unsure if k not in still_open]  # a --detect slowdown ruled out, as a growing set stops
    if cleared:
        parts.append(
            f"cleared of a {detect:g} % slowdown (interval above {1 - detect / 100:.2f}, "
            f"though not inside the threshold): {', '.join(cleared)}"
        )
    unsure = [k for k in unsure if k not in cleared]
    if unsure:
        parts.append(
            f"inconclusive (interval wider than the threshold: more --pairs or a quieter machine): {', '.join(unsure)}"
        )
    if doc["threshold"]["calibration"] is None:
        parts.append(doc["threshold"].get("calibration_note") or f"no A/A calibration for {doc['device_class']}")
    verdict_word = "FAIL" if failed else "OK"
    return f"{verdict_word}: " + ("; ".join(parts) if parts else "no confirmed regression")
