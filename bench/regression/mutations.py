"""Does the accuracy gate catch the changes a careless contributor could make? A rerunnable table.

``python -m bench.regression.mutations [--seed S] [--unit] [--only NAME,...] [--out DIR]``

Each mutation below is a real edit to this tree's source (model, recipe, training, data, evaluation code),
applied to a copy of the tracked files in a temporary directory. For each one, in that copy:

1. ``python -m bench fingerprint RECIPE --check`` against this tree's baselines.json (seconds): a
   change to the recipe, the model, what the training code compiles, the data or how it is
   evaluated is caught here, deterministically, before any training;
2. when the fingerprint passes (the change is invisible to it), the recipe trains once at ``--seed``
   (a seed outside the baseline's and the design's) and ``python -m bench gate`` judges it by the band;
3. with ``--unit``, the unit suite (``pytest -m "not slow" -x``) on the same copy: what the fast
   tests say about the same change (without ``tests/regression/test_mutations.py``, which checks
   this table's own anchors and so fails on every mutated copy). A test that fails there but
   passes when run again alone is set aside as a flake and the suite run again (``unit_suite``).

The table (markdown and JSON under ``--out``, written atomically) gives each mutation's verdicts.
An edit whose anchor text is no longer in the source is reported as "stale" (rather than measuring
an unchanged tree); the script exits 1, naming the rows on stderr, when a row is stale, a step
errored, or a mutation was caught by neither the fingerprint nor the gate (``problems``). Bad
arguments (``--out`` naming a file, a missing ``--baselines``, a ``--seed`` out of range) are one
line and exit 2, before any work. Clean unseen seeds are the other half of the proof: train them with
``bench train`` and gate them (the README gives the figures).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.environment import REPO_ROOT
from bench.errors import UsageError
from bench.regression import rules

RECIPE = "smoke_resnet20_cifar10_jpeg"


@dataclasses.dataclass(frozen=True)
class Mutation:
    name: str
    kind: str  # model | recipe | training | data | evaluation
    what: str  # in words
    path: str  # file, relative to the repository
    old: str  # text that must occur exactly once
    new: str


MUTATIONS = (
    Mutation(
        "bn_momentum",
        "model",
        "batch-norm momentum 0.99 -> 0.9 in the shared conv-BN block",
        "models/layers.py",
        'layers.BatchNormalization(epsilon=bn_epsilon, name=f"{name}_bn")',
        'layers.BatchNormalization(epsilon=bn_epsilon, momentum=0.9, name=f"{name}_bn")',
    ),
    Mutation(
        "no_weight_decay",
        "model",
        "weight decay dropped from the CIFAR ResNets' convolutions",
        "models/cifar_resnet.py",
        "kernel_regularizer=regularizers.L2(weight_decay) if weight_decay else None,",
        "kernel_regularizer=None,",
    ),
    Mutation(
        "glorot_init",
        "model",
        "convolution initialiser he_normal -> glorot_uniform",
        "models/cifar_resnet.py",
        'kernel_initializer="he_normal",\n        bn_epsilon=BN_EPSILON,',
        'kernel_initializer="glorot_uniform",\n        bn_epsilon=BN_EPSILON,',
    ),
    Mutation(
        "half_lr",
        "recipe",
        "smoke recipe's peak learning rate 0.2 -> 0.1",
        "bench/training/recipes.py",
        'schedule={"base": 0.2, "knots": [[0, 0.1], [0.15, 1.0], [1.0, 0.0]], "interpolation": "linear"},',
        'schedule={"base": 0.1, "knots": [[0, 0.1], [0.15, 1.0], [1.0, 0.0]], "interpolation": "linear"},',
    ),
    Mutation(
        "no_label_smoothing",
        "recipe",
        "label smoothing 0.1 -> 0",
        "bench/training/recipes.py",
        "label_smoothing=0.1,  # smoother targets",
        "label_smoothing=0.0,  # smoother targets",
    ),
    Mutation(
        "nesterov_dropped_in_code",
        "training",
        "the optimizer built without Nesterov momentum by the training code (the recipe still asks for it)",
        "bench/training/loop.py",
        "learning_rate=first_lr, **opt_cfg, **evaluation.optimizer_arguments(recipe)",
        'learning_rate=first_lr, **{**opt_cfg, "nesterov": False}, **evaluation.optimizer_arguments(recipe)',
    ),
    Mutation(
        "smoothing_dropped_in_code",
        "training",
        "the loss built without the recipe's label smoothing by the training code",
        "bench/training/loop.py",
        "loss=keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing),",
        "loss=keras.losses.CategoricalCrossentropy(),",
    ),
    Mutation(
        "schedule_steps_in_code",
        "training",
        "the schedule code ignores linear interpolation and holds each knot's rate (a step schedule)",
        "bench/training/budget.py",
        'if schedule.get("interpolation", "step") == "step" or i == len(knots) - 1:',
        "if True:",
    ),
    Mutation(
        "lr_per_epoch_in_code",
        "training",
        "the training callback sets the learning rate at each epoch's first step only, not every step",
        "bench/training/callbacks.py",
        "rate = budget_mod.lr_at(self.schedule, self.progress.fraction(self.global_step(batch)))",
        "rate = budget_mod.lr_at(self.schedule, self.progress.fraction(self.global_step(0)))",
    ),
    Mutation(
        "flip_disabled_in_code",
        "data",
        "the flip augmentation silently skipped by the data code (the recipe still asks for it)",
        "bench/training/data.py",
        'if spec.get("flip"):\n            x = tf.image.stateless_random_flip_left_right(x, seeds[0])',
        'if spec.get("flip") and False:\n            x = tf.image.stateless_random_flip_left_right(x, seeds[0])',
    ),
    Mutation(
        "small_shuffle_buffer",
        "data",
        "training shuffle buffer 50,000 -> 1,024 examples",
        "bench/training/data.py",
        "train_raw.shuffle(shuffle_buffer or n_train,",
        "train_raw.shuffle(shuffle_buffer or 1024,",
    ),
    Mutation(
        "test_leak",
        "data",
        "the test split appended to the training data",
        "bench/training/data.py",
        "train_raw = load(name, info.train_split, **kwargs).cache()",
        "train_raw = load(name, info.train_split, **kwargs).concatenate(load(name, info.test_split, **kwargs)).cache()",
    ),
    Mutation(
        "no_std_division",
        "data",
        "featurewise normalisation forgets to divide by the std",
        "bench/training/data.py",
        "return lambda x: (tf.cast(x, tf.float32) / 255.0 - m) / s",
        "return lambda x: (tf.cast(x, tf.float32) / 255.0 - m)",
    ),
    Mutation(
        "tta_flipped_only",
        "evaluation",
        "test-time augmentation keeps only the flipped view instead of the average",
        "bench/training/evaluation.py",
        "probs = (probs + flipped) / 2.0",
        "probs = flipped",
    ),
    Mutation(
        "half_test_split",
        "evaluation",
        "the test pipeline evaluates the first 40 batches only",
        "bench/training/data.py",
        "test = test.batch(batch_size).prefetch(tf.data.AUTOTUNE)",
        "test = test.batch(batch_size).take(40).prefetch(tf.data.AUTOTUNE)",
    ),
)


def copy_tree(dest: Path) -> Path:
    """This repository at HEAD as a detached git worktree under ``dest`` (tests that read git history
    need one), with the working tree's files (tracked, and untracked but not ignored) copied over it."""
    subprocess.run(["git", "worktree", "add", "--quiet", "--detach", str(dest), "HEAD"], cwd=REPO_ROOT, check=True)
    files = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO_ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, files):
        src = REPO_ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def remove_tree(tree: Path) -> None:
    subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO_ROOT, capture_output=True)


def apply(tree: Path, mutation: Mutation) -> None:
    path = tree / mutation.path
    text = path.read_text()
    if text.count(mutation.old) != 1:
        raise LookupError(
            f"{mutation.name}: {mutation.path} holds the anchor {text.count(mutation.old)} times, not once"
        )
    path.write_text(text.replace(mutation.old, mutation.new))


def _run(cmd: list[str], tree: Path, log: Path, timeout: float) -> tuple[int, str, float]:
    env = {
        **os.environ,
        "PYTHONPATH": str(tree),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "CIFAR10_JPEG_ARCHIVE": os.environ.get("CIFAR10_JPEG_ARCHIVE")
        or str(REPO_ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"),
    }
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
        code, out = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired:
        code, out = 124, f"timed out after {timeout:.0f} s"
    log.write_text(out)
    return code, out, time.monotonic() - start


def _last_line(out: str, prefix: str) -> str:
    lines = [line for line in out.splitlines() if line.startswith(prefix)]
    return lines[-1] if lines else (out.strip().splitlines() or [""])[-1]


def judge(mutation: Mutation, *, seed: int, unit: bool, train: bool, work: Path, baselines: Path) -> dict:
    tree = copy_tree(work / mutation.name / "tree")
    try:
        return _judge(mutation, tree, seed=seed, unit=unit, train=train, logs=work / mutation.name, baselines=baselines)
    finally:
        remove_tree(tree)


def _judge(mutation: Mutation, tree: Path, *, seed: int, unit: bool, train: bool, logs: Path, baselines: Path) -> dict:
    row = {"name": mutation.name, "kind": mutation.kind, "what": mutation.what}
    try:
        apply(tree, mutation)
    except LookupError as e:
        return {**row, "fingerprint": "stale", "gate": "stale", "unit": "stale", "detail": str(e)}
    py = sys.executable
    code, out, secs = _run(
        [py, "-m", "bench", "fingerprint", RECIPE, "--check", "--baselines", str(baselines)],
        tree,
        logs / "fingerprint.log",
        600,
    )
    changed = [line.strip() for line in out.splitlines() if line.startswith("  ") and " changed: " in line]
    differs = code == 1 and "fingerprint: differs from the baseline's" in out
    row["fingerprint"] = "CHANGED" if differs else "pass" if code == 0 else f"error {code}"
    row["fingerprint_detail"] = "; ".join(changed) or _last_line(out, "fingerprint:")
    row["fingerprint_s"] = round(secs, 1)
    if code == 0 and train:  # invisible to the fingerprint: only the band can see it
        results = logs / "results"
        code, out, secs = _run(
            [py, "-m", "bench", "train", RECIPE, "--seed", str(seed), "--out", str(results)],
            tree,
            logs / "train.log",
            3600,
        )
        row["train_s"] = round(secs, 1)
        code, out, _ = _run(
            [py, "-m", "bench", "gate", str(results), "--baselines", str(baselines), "--json", str(logs / "gate.json")],
            tree,
            logs / "gate.log",
            300,
        )
        findings = json.loads((logs / "gate.json").read_text())["findings"] if (logs / "gate.json").exists() else []
        row["gate"] = " + ".join(sorted({f["verdict"] for f in findings})) or f"error {code}"
        row["gate_detail"] = "; ".join(
            f"{f['metric']} {f['current']:.4g}: {f['reason'].split(';')[0]}" for f in findings
        )
    else:
        row["gate"] = "not trained (fingerprint caught it)" if differs else "not trained"
    if unit:
        row.update(unit_suite(tree, logs))
    return row


UNIT = ["-m", "pytest", "-q", "-m", "not slow", "-p", "no:cacheprovider"]
FLAKE_RETRIES = 2  # failing tests that pass when run again alone, skipped before the verdict is taken as it is


def unit_suite(tree: Path, logs: Path, *, run=None) -> dict:
    """The unit suite's verdict on a mutated copy (``pytest -x``, without this table's own anchor
    test). A test that fails in the suite but passes when run again alone is a flake of the
    machine (a timing test under load), not the mutation's doing: it is named, deselected and the
    suite run again, at most ``FLAKE_RETRIES`` times; a failure that repeats is the verdict."""
    run = run or _run
    py = sys.executable
    skipped: list[str] = []
    secs = 0.0
    while True:
        deselect = [a for t in skipped for a in ("--deselect", t)]
        cmd = [py, *UNIT, "tests", "-x", "--ignore", "tests/regression/test_mutations.py", *deselect]
        code, out, spent = run(cmd, tree, logs / "unit.log", 1800)
        secs += spent
        failed = _last_line(out, "FAILED") if code == 1 else ""
        test = failed.split()[1] if failed.startswith("FAILED ") and len(failed.split()) > 1 else ""
        if code != 1 or not test or len(skipped) >= FLAKE_RETRIES:
            break
        again, _, spent = run([py, *UNIT, test], tree, logs / "unit-again.log", 600)
        secs += spent
        if again != 0:
            break
        skipped.append(test)
    verdict = "FAIL" if code == 1 else "pass" if code == 0 else f"error {code}"
    return {
        "unit": verdict,
        "unit_detail": failed,
        "unit_flaky": skipped,
        "unit_s": round(secs, 1),
    }


def caught(row: dict) -> bool:
    """Whether the fingerprint or the gate failed the mutated tree: the fingerprint changed, or any of
    the gate's findings (``row["gate"]`` joins their verdicts, sorted: "pass + regression") is a
    failing verdict. An error with no finding ("error 2") is not a catch: it is a broken row."""
    failing = {v.value for v in rules.FAILING}
    return row.get("fingerprint") == "CHANGED" or any(v in failing for v in row.get("gate", "").split(" + "))


def problems(rows: list[dict]) -> list[str]:
    """Why the table is not a proof, one line a row: a stale anchor, a step that errored (it measured
    nothing), or a mutation neither the fingerprint nor the gate caught. Empty when every row is a catch."""
    out = []
    for r in rows:
        steps = {k: str(r.get(k, "")) for k in ("fingerprint", "gate", "unit")}
        if r.get("fingerprint") == "stale":
            out.append(f"{r['name']}: stale anchor ({r.get('detail', '')})")
        elif errored := [f"{k} {v}" for k, v in steps.items() if v.startswith("error")]:
            out.append(f"{r['name']}: {', '.join(errored)}")
        elif not caught(r):
            out.append(f"{r['name']}: not caught (fingerprint {steps['fingerprint']}, gate {steps['gate']})")
    return out


def markdown(rows: list[dict], seed: int) -> str:
    lines = [
        f"| mutation | kind | fingerprint | gate (seed {seed}) | caught | unit suite |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        gate = r["gate"] + (f" ({r['gate_detail']})" if r.get("gate_detail") else "")
        fp = r["fingerprint"] + (f" ({r['fingerprint_detail']})" if r["fingerprint"] == "CHANGED" else "")
        unit = r.get("unit", "not run") + (f" ({r['unit_detail']})" if r.get("unit_detail") else "")
        if r.get("unit_flaky"):
            unit += f"; passed alone, so set aside as flaky: {', '.join(r['unit_flaky'])}"
        lines.append(
            f"| {r['name']}: {r['what']} | {r['kind']} | {fp} | {gate} | {'yes' if caught(r) else 'NO'} | {unit} |"
        )
    return "\n".join(lines)


def _check_args(args: argparse.Namespace) -> None:
    """Every argument checked before any mutated tree is trained: a bad one is a one-line ``UsageError``."""
    from bench.io import writable_dir
    from bench.training.options import MAX_SEED

    names = [n for n in args.only.split(",") if n]
    unknown = set(names) - {m.name for m in MUTATIONS}
    if unknown:
        raise UsageError(f"--only {sorted(unknown)} unknown; valid: {', '.join(m.name for m in MUTATIONS)}")
    if not 0 <= args.seed <= MAX_SEED:
        raise UsageError(f"--seed {args.seed} is invalid; expected 0 to {MAX_SEED}")
    if not Path(args.baselines).is_file():
        raise UsageError(f"--baselines {args.baselines!r} is not a file; expected the baselines.json to judge against")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise UsageError(f"--out {args.out!r} is a file; expected a directory for the table, JSON and logs")
    writable_dir("--out", args.out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.regression.mutations", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=300, help="training seed for the mutations the fingerprint misses")
    parser.add_argument("--unit", action="store_true", help="also run the unit suite on each mutated copy")
    parser.add_argument("--no-train", action="store_true", help="fingerprint (and unit) verdicts only")
    parser.add_argument("--only", default="", help="comma-separated mutation names (default: all)")
    parser.add_argument("--out", default="results/mutations", help="directory for the table, JSON and logs")
    parser.add_argument("--baselines", default=str(REPO_ROOT / "baselines.json"))
    args = parser.parse_args(argv)
    try:
        _check_args(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    names = [n for n in args.only.split(",") if n]
    chosen = [m for m in MUTATIONS if not names or m.name in names]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="mutations-") as tmp:
        for m in chosen:
            row = judge(
                m,
                seed=args.seed,
                unit=args.unit,
                train=not args.no_train,
                work=Path(tmp),
                baselines=Path(args.baselines).resolve(),
            )
            rows.append(row)
            print(json.dumps(row), flush=True)
            for log in (Path(tmp) / m.name).glob("*.log"):
                (out / m.name).mkdir(exist_ok=True)
                shutil.copy2(log, out / m.name / log.name)
    return _finish(rows, args.seed, out)


def _finish(rows: list[dict], seed: int, out: Path) -> int:
    """Write the JSON and markdown table (atomically) and print it; 1 with a line per problem row
    (``problems``) on stderr where the table is not a proof, else 0."""
    from bench.io import atomic_path, write_json

    write_json(out / "mutations.json", {"seed": seed, "recipe": RECIPE, "rows": rows})
    table = markdown(rows, seed)
    with atomic_path(out / "mutations.md", suffix=".md") as tmp:
        tmp.write_text(table + "\n")
    print(table)
    found = problems(rows)
    for line in found:
        print(f"FAIL {line}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
