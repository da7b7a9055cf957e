"""How much signal each evaluation variant gives per CPU-minute: the table behind the smoke recipe's design.

``python -m bench.regression.noise RESULTS... [--markdown FILE]``

Reads training results (files or directories) of one recipe, dataset and budget over several seeds
(each file and seed once; anything else is refused; runs that did not finish are named on stderr
and left out), each carrying ``evaluations`` (``bench.training.evaluation``: moving_bn, precise_bn, ema), and prints per variant
the seeds' mean and spread of top-1 and test loss, and what a single new run can detect:

- ``band``: the gate's two-sided band for one new run (``rules.prediction_rule``: the 99.9 %
  prediction interval at this n), in points of top-1 and in percent of the loss;
- ``3 sd``: the minimum detectable change at 3 standard deviations (the issue's measure);
- ``loss as top-1``: the loss band converted to top-1 points by the slope of top-1 on loss across
  the seeds (both move together when a seed is lucky, so gating both buys little against seed
  noise; the loss earns its place on changes that move calibration more than ranking).

- ``held out``: each seed judged as a new run by the band of the others (leave-one-out, top-1
  and loss both): how many fall outside, and the furthest one as a share of its band (1.0 is on
  the edge). An empirical check of the false-alarm rate that costs no training.
- ``per-image floor`` (runs that record which test images they got right, ``correct``): the top-1
  sd the seeds would show if each image flipped between right and wrong on its own, at its own
  rate over the runs (the unbiased sum of the images' variances), its share of the observed
  variance (the rest is runs that are better or worse as a whole), and how many images flip at
  all. The variance of top-1 over runs is exactly the sum of the images' variances and their
  covariances, so a share near 1 says the spread is which borderline images a run gets right:
  no evaluation trick removes it, only more test images or more runs.

Minutes are the median wall time of the runs, as measured (a loaded machine inflates them).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

from bench.errors import UsageError
from bench.io import atomic_path, read_json, writable_file
from bench.regression.rules import FALSE_ALARM
from bench.results import decode_correct
from bench.stats import finite, prediction_halfwidth


def load(paths: list[str], *, left_out: list[str] | None = None) -> list[dict]:
    """The successful training results in ``paths`` (files, or directories of them), each run once.

    One file given twice (itself, or in a directory also given) or one seed recorded twice would count
    a run twice and narrow the band; runs of different recipes, datasets or budgets have different
    spreads that one table must not pool. Either is a one-line ``UsageError``. A run that did not
    finish (status other than ok) is left out, and described in ``left_out`` (for the caller to say so)."""
    docs: list[dict] = []
    seen: dict[str, str] = {}
    seeds: dict[object, str] = {}
    for p in paths:
        files = sorted(Path(p).glob("*.json")) if Path(p).is_dir() else [Path(p)]
        for f in files:
            real = os.path.realpath(f)
            if real in seen:
                raise UsageError(f"result file {str(f)!r} is given twice (also as {seen[real]!r}); give each run once")
            seen[real] = str(f)
            doc = read_json(f, what="result file")
            if not (isinstance(doc, dict) and doc.get("kind") == "bench.train"):
                continue
            if doc.get("status") != "ok":
                if left_out is not None:
                    left_out.append(f"{f} (seed {doc.get('seed')}, status {doc.get('status')!r})")
                continue
            if doc.get("seed") in seeds:
                raise UsageError(
                    f"seed {doc.get('seed')!r} is recorded twice: {seeds[doc.get('seed')]!r} and {str(f)!r};"
                    " each seed once, or the spread is understated"
                )
            seeds[doc.get("seed")] = str(f)
            if docs and _setting(doc) != _setting(docs[0]):
                raise UsageError(
                    f"{str(f)!r} is {_describe(doc)}, not {_describe(docs[0])} like {seeds[docs[0].get('seed')]!r};"
                    " give the runs of one recipe, dataset and budget"
                )
            docs.append(doc)
    return docs


SETTING = ("recipe", "dataset", "budget")  # what makes runs' spreads comparable: only the seed may differ


def _setting(doc: dict) -> tuple:
    return tuple(doc.get(k) for k in SETTING)


def _describe(doc: dict) -> str:
    return " ".join(f"{k} {doc.get(k)!r}" for k in SETTING)


def variants(doc: dict) -> dict[str, dict]:
    """Variant name -> {"top1", "loss"}: the recorded evaluations, or the plain figures of a result
    written before evaluation variants existed (its moving-average evaluation)."""
    return dict(doc.get("evaluations") or {}) or {"moving_bn": {"top1": doc.get("top1"), "loss": doc.get("loss")}}


def table(docs: list[dict]) -> list[dict]:
    by_variant: dict[str, list[tuple[int, float, float, float]]] = {}
    recorded: dict[str, list[dict]] = {}
    for doc in docs:
        for name, ev in variants(doc).items():
            top1, loss = finite(ev.get("top1")), finite(ev.get("loss"))
            if top1 is not None and loss is not None:
                by_variant.setdefault(name, []).append((doc.get("seed"), top1, loss, doc.get("wall_time_s") or 0.0))
                recorded.setdefault(name, []).append(ev)
    rows = []
    for name, runs in by_variant.items():
        if len(runs) < 3:
            continue
        top1 = [r[1] for r in runs]
        loss = [r[2] for r in runs]
        band = prediction_halfwidth(top1, FALSE_ALARM)["halfwidth"]
        loss_band = prediction_halfwidth(loss, FALSE_ALARM)["halfwidth"]
        slope = _slope(loss, top1)
        rows.append(
            {
                "variant": name,
                "n": len(runs),
                "seeds": sorted(r[0] for r in runs),
                "minutes": round(statistics.median(r[3] for r in runs) / 60.0, 1),
                "top1_mean": round(statistics.fmean(top1), 2),
                "top1_sd": round(statistics.stdev(top1), 3),
                "top1_band_pt": round(band, 2),
                "top1_3sd_pt": round(3 * statistics.stdev(top1), 2),
                "loss_mean": round(statistics.fmean(loss), 4),
                "loss_sd": round(statistics.stdev(loss), 4),
                "loss_band_pct": round(100 * loss_band / statistics.fmean(loss), 2),
                "loss_band_as_top1_pt": None if slope is None else round(abs(slope) * loss_band, 2),
                **held_out(top1, loss),
                **_floor(name, runs, recorded[name]),
            }
        )
    return rows


def per_image_floor(evaluations: list[dict]) -> dict:
    """The per-image floor (module docstring) of one variant's runs, or Nones when a run lacks the
    bits or the runs did not read the same test images in the same order; ValueError when a run's
    bits are corrupt."""
    import numpy as np

    none = {"floor_sd_pt": None, "floor_share": None, "flipping_images": None}
    same = {(ev.get("test_examples"), ev.get("labels_sha256")) for ev in evaluations}
    if len(evaluations) < 2 or not all(ev.get("correct") for ev in evaluations) or len(same) != 1:
        return none
    n = evaluations[0]["test_examples"]
    right = np.stack([decode_correct(ev["correct"], n) for ev in evaluations]).astype(float)
    k = right.shape[0]
    rate = right.mean(axis=0)
    floor = float((k / (k - 1)) * np.sum(rate * (1.0 - rate))) * (100.0 / n) ** 2  # points squared
    observed = float(np.var(100.0 * right.mean(axis=1), ddof=1))
    return {
        "floor_sd_pt": round(floor**0.5, 3),
        "floor_share": round(floor / observed, 2) if observed > 0 else None,
        "flipping_images": int(np.count_nonzero((rate > 0) & (rate < 1))),
    }


def _floor(name: str, runs: list[tuple], evaluations: list[dict]) -> dict:
    try:
        return per_image_floor(evaluations)
    except ValueError as e:
        raise UsageError(f"{name} of seeds {sorted(r[0] for r in runs)}: {e}") from None


def held_out(top1: list[float], loss: list[float]) -> dict:
    """Leave-one-out: each run against the band of the others (both metrics), needing 3 others."""
    if len(top1) < 4:
        return {"held_out_outside": None, "held_out_worst": None}
    outside, worst = 0, 0.0
    for i in range(len(top1)):
        share = 0.0
        for values in (top1, loss):
            rest = values[:i] + values[i + 1 :]
            share = max(
                share, abs(values[i] - statistics.fmean(rest)) / prediction_halfwidth(rest, FALSE_ALARM)["halfwidth"]
            )
        outside += share > 1.0
        worst = max(worst, share)
    return {"held_out_outside": outside, "held_out_worst": round(worst, 2)}


def _slope(x: list[float], y: list[float]) -> float | None:
    mx, my = statistics.fmean(x), statistics.fmean(y)
    sxx = sum((a - mx) ** 2 for a in x)
    return None if sxx == 0 else sum((a - mx) * (b - my) for a, b in zip(x, y)) / sxx


def markdown(rows: list[dict]) -> str:
    head = (
        "| variant | n | minutes | top-1 mean | top-1 sd | band (pt) | 3 sd (pt) | loss mean | loss sd | loss band"
        " | loss band as top-1 (pt) | held out: outside band | furthest (share of band)"
        " | per-image floor sd (pt) | floor share of variance | images that flip |"
    )
    lines = [head, "|---|" + "---:|" * (head.count("|") - 2)]
    for r in rows:
        outside = "-" if r["held_out_outside"] is None else f"{r['held_out_outside']}/{r['n']}"
        lines.append(
            f"| {r['variant']} | {r['n']} | {r['minutes']} | {r['top1_mean']} | {r['top1_sd']} | ±{r['top1_band_pt']} | "
            f"{r['top1_3sd_pt']} | {r['loss_mean']} | {r['loss_sd']} | ±{r['loss_band_pct']} % | {r['loss_band_as_top1_pt']} | "
            f"{outside} | {r['held_out_worst'] or '-'} | {_dash(r['floor_sd_pt'])} | {_dash(r['floor_share'])} | "
            f"{_dash(r['flipping_images'])} |"
        )
    return "\n".join(lines)


def _dash(value) -> str:
    return "-" if value is None else str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.regression.noise", description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", help="training result files or directories")
    parser.add_argument("--markdown", default=None, help="also write the table to this file")
    args = parser.parse_args(argv)
    try:
        if args.markdown:
            writable_file("--markdown", args.markdown)  # checked before any reading
        left_out: list[str] = []
        rows = table(load(args.results, left_out=left_out))
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for line in left_out:
        print(f"left out a run that did not finish: {line}", file=sys.stderr)
    if not rows:
        print("error: no variant has 3 or more successful runs in the given results", file=sys.stderr)
        return 2
    text = markdown(rows)
    print(text)
    if args.markdown:
        with atomic_path(args.markdown, suffix=".md") as tmp:
            tmp.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
