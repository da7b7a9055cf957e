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
from bench.errors import UsageError
from bench.io import read_json

TOLERANCE_PT = 0.3
LOWER, HIGHER, SAME, ERROR = "lower", "higher", "no change", "error"


def train_one(prepared: runner.Prepared, recipe: str, seed: int, train_args: Sequence[str], out: Path) -> dict:
    """One training run of the side: its top-1 (or its error), wall time and the load before it.
    The result read is the one training result this run wrote (``_written``), never a file an
    earlier run left in ``out``; ``run_accuracy`` gives each run a directory that holds nothing yet
    (``check_workdir``), so no earlier checkpoint is resumed either. ``out`` is made absolute: the
    run's working directory is the side's tree."""
    out = out.absolute()
    argv = [prepared.python, "-m", "bench", "train", recipe, "--seed", str(seed), "--out", str(out), *train_args]
    load, t0 = list(os.getloadavg()), time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    before = _stamps(out)
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
    results = _written(out, before)
    result = results[0] if len(results) == 1 else None
    if status != 0 or result is None or result.get("status") != "ok":  # a non-zero exit: whatever file is there
        record["error"] = (result or {}).get("error") if status == 0 else None
        if status == 0 and len(results) > 1:
            record["error"] = f"exited 0 having written {len(results)} training results in {out}, not one"
        record["error"] = record["error"] or f"exited {status} without a result"
        return record
    return {**record, "top1": result["top1"], "result": result}


def _stamps(directory: Path) -> dict[Path, tuple[int, int]]:
    """Each JSON file of ``directory`` with its inode and modification time."""
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in directory.glob("*.json")}


def _written(directory: Path, before: dict) -> list[dict]:
    """The training results in ``directory`` written since ``before`` (``_stamps``): new files, or
    files replaced (``bench.io.write_json`` renames a new file into place)."""
    new = [p for p, stamp in sorted(_stamps(directory).items()) if before.get(p) != stamp]
    docs = [read_json(p, what="training result") for p in new]
    return [d for d in docs if d.get("kind") == "bench.train"]


def check_workdir(workdir: Path) -> None:
    """The directory the runs go into holds nothing yet: a training result or checkpoint left there
    by an earlier A/B (of other code, another budget) would be read or resumed as this A/B's. One
    line, exit 2, before any side is prepared."""
    if workdir.is_dir() and (leftover := next(iter(sorted(workdir.iterdir())), None)):
        raise UsageError(
            f"--out: {str(workdir)!r} already holds {leftover.name!r} from an earlier accuracy A/B; give another"
            " --out (the default's {time} makes a new one for each run)"
        )


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
