"""Accuracy A/B: a recipe trained on both sides with the same seeds, top-1 compared seed by seed.

``python -m bench ab BASE HEAD --recipe smoke_resnet20_cifar10_jpeg --seeds 3`` runs ``python -m
bench train RECIPE --seed S`` in each side's tree and environment for seeds 0..N-1 (sides
alternating, one run at a time) and judges the paired differences HEAD - BASE of top-1 with a
paired t-test: HEAD is **lower** when the mean difference is below ``-tolerance`` points and the
test finds it significant (p < alpha). The smoke recipe is deterministic, so identical code gives
identical pairs and even a 0.3-point shift shows; when every difference is the same the test is
exact (significant iff it is not zero).
"""

from __future__ import annotations

import math
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench import processes
from bench.ab import runner
from bench.io import read_json

TOLERANCE_PT = 0.3
LOWER, HIGHER, SAME, ERROR = "lower", "higher", "no change", "error"


def train_one(prepared: runner.Prepared, recipe: str, seed: int, train_args: Sequence[str], out: Path) -> dict:
    """One training run of the side: its top-1 (or its error), wall time and the load before it."""
    argv = [prepared.python, "-m", "bench", "train", recipe, "--seed", str(seed), "--out", str(out), *train_args]
    load, t0 = list(os.getloadavg()), time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "train.log", "w") as log:
        status = subprocess.run(
            argv,
            cwd=prepared.tree,
            env={**os.environ, **prepared.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            **processes.child_options(),
        ).returncode
    record = {"seed": seed, "returncode": status, "wall_s": time.perf_counter() - t0, "loadavg_before": load}
    docs = [read_json(p, what="training result") for p in sorted(out.glob("*.json"))]
    result = next((d for d in docs if d.get("kind") == "bench.train"), None)
    if status != 0 or result is None or result.get("status") != "ok":  # a non-zero exit: whatever file is there
        record["error"] = (result or {}).get("error") if status == 0 else None
        record["error"] = record["error"] or f"exited {status} without a result"
        return record
    return {**record, "top1": result["top1"], "result": result}


def paired(base: Sequence[float], head: Sequence[float], *, tolerance: float, alpha: float) -> dict:
    """The paired differences HEAD - BASE (points), their mean, the paired t-test and the verdict."""
    from scipy import stats as st

    diffs = [h - b for b, h in zip(base, head)]
    n = len(diffs)
    mean = sum(diffs) / n
    if n >= 2 and len(set(diffs)) > 1:
        p = float(st.ttest_rel(head, base).pvalue)
    else:  # identical differences (deterministic pairs): exact
        p = 0.0 if mean != 0 else 1.0
    significant = p < alpha
    if significant and mean < -tolerance:
        verdict = LOWER
    elif significant and mean > tolerance:
        verdict = HIGHER
    else:
        verdict = SAME
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1)) if n >= 2 else None
    return {"diffs": diffs, "mean": mean, "sd": sd, "p": p, "n": n, "verdict": verdict, "tolerance_pt": tolerance}


def run(
    sides: tuple[runner.Prepared, runner.Prepared],
    recipe: str,
    seeds: int,
    train_args: Sequence[str],
    workdir: Path,
    *,
    tolerance: float = TOLERANCE_PT,
    alpha: float = 0.05,
    train: Callable | None = None,
    log=print,
) -> dict:
    """Both sides trained on seeds ``0..seeds-1`` (order alternating per seed); the paired verdict."""
    train = train or train_one
    runs: dict[str, list[dict]] = {"BASE": [], "HEAD": []}
    for seed in range(seeds):
        order = sides if seed % 2 == 0 else sides[::-1]
        for prepared in order:
            record = train(prepared, recipe, seed, train_args, workdir / f"{prepared.label}-seed{seed}")
            runs[prepared.label].append(record)
            log(
                f"cnn-bench ab: {prepared.label} seed {seed}: "
                + (f"top-1 {record['top1']:.2f}%" if "top1" in record else record["error"])
            )
    errors = [f"{label} seed {r['seed']}: {r['error']}" for label, rs in runs.items() for r in rs if "error" in r]
    doc = {"recipe": recipe, "seeds": seeds, "runs": runs}
    if errors:
        return {**doc, "verdict": ERROR, "error": "; ".join(errors)}
    return {
        **doc,
        **paired(
            [r["top1"] for r in runs["BASE"]], [r["top1"] for r in runs["HEAD"]], tolerance=tolerance, alpha=alpha
        ),
    }
