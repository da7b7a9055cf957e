"""The A/B figures (issue #8), run by hand: benchmark figures, not timed tests.

``python -m bench.ab.figures aa --trials 20 -- [ab options]``
    A/A false alarms: ``ab git:HEAD git:HEAD`` (two worktrees of one commit) ``--trials`` times.
``python -m bench.ab.figures power --slowdown 0.05 --trials 20 -- [ab options]``
    Power: ``ab`` of HEAD against HEAD plus a commit that adds a chain of 256x256 matmuls to the
    compiled step (inside the step's tf.function, after the model's own work: for training, after
    every weight's update), sized to ``--slowdown`` of each mode's step time as measured on this
    machine first, then checked by timing the injected step against the plain one (``injection``);
    with ``--load``, the loaded trials' HEAD has a chain of its own, sized and checked beside the load.
``python -m bench.ab.figures compare --runs 15 --slowed 6 --slowdown 0.1 --load -- [throughput options]``
    ``compare``'s false alarms and power over time: unchanged and slowed throughput runs one after
    another, each judged against every baseline recorded before it (``bench.ab.compare_figure``);
    ``compare REPORT.json`` (or unchanged runs' result files) judges recorded runs again.
``python -m bench.ab.figures simulate RECORDED ... --trials 2000 -- [ab options]``
    An A/B design's false alarms, power and pairs replayed from the pairs of recorded A/A runs
    (``bench.ab.simulate``): which design is worth measuring for real. Nothing is run.
``python -m bench.ab.figures bisect --commits 16 --bad-at 11 -- [ab options]``
    ``bisect`` over a throw-away history of ``--commits`` commits after HEAD, the slowdown
    injected at commit ``--bad-at``: the first bad commit found, and in how many A/B steps.

Every figure works in a throw-away clone of this repository (HEAD; uncommitted changes are not in
it) and prints one markdown table row: confirmed regressions n/N, the median time to a verdict,
the load average seen. ``--load`` runs a second ``python -m bench throughput`` in a loop during
every other trial (the issue's busy machine); without it the machine's own load is what there is.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import processes
from bench.environment import REPO_ROOT

MATMUL_N = 256
SIZE_TOLERANCE = 0.1  # a chain whose timing lands within this share of its target is kept
SIZE_TRIES = 4  # timings of the injected step at most, while sizing one chain
PATCH = """

# --- injected by bench.ab.figures: an extra cost in the compiled step, about {fraction:.0%} of its time ---
_EXTRA_MATMULS = {chains!r}
_plain_resident_step = resident_step


def resident_step(mode, model, placement, x, y):
    import tensorflow as tf

    step, sync = _plain_resident_step(mode, model, placement, x, y)
    chain = _EXTRA_MATMULS[mode]
    a = tf.Variable(tf.random.normal(({n}, {n}), seed=1) / {n} ** 0.5)

    @tf.function
    def slowed():
        out = step()
        # after the model's own work, not beside it: a training step's loss is out before its backward
        # pass, so the chain waits for every updated weight (reads ordered after the step's writes)
        done = [tf.nest.flatten(out)[0]] if mode != "train" else model.trainable_variables
        c = a + 0.0 * tf.cast(tf.add_n([tf.reduce_sum(tf.cast(v, tf.float32)) for v in done]), a.dtype)
        for _ in range(chain):
            c = tf.matmul(c, a)
        extra = 0.0 * tf.reduce_sum(c)
        return tf.nest.map_structure(lambda t: t + tf.cast(extra, t.dtype), out)

    return slowed, sync
"""

SIZE = """
import json, statistics, time
import tensorflow as tf
from bench import devices
from bench.backends import tensorflow as tfb
from bench.throughput import workload
placement = tfb.open("cpu")
devices.set_precision("fp32")
a = tf.Variable(tf.random.normal((%(n)d, %(n)d), seed=1) / %(n)d ** 0.5)
@tf.function
def chain():
    c = a
    for _ in range(20):
        c = tf.matmul(c, a)
    return tf.reduce_sum(c)
def once(call, sync):
    t0 = time.perf_counter(); sync(call()); return time.perf_counter() - t0
out = {}
for mode in ("train", "infer"):
    w = workload.build(workload.Case("resnet20", mode, 128), placement, jit_compile=tfb.jit_compile("off"))
    for _ in range(2):
        once(w.step, w.sync); once(chain, float)
    steps, chains = [], []
    for _ in range(%(timings)d):  # interleaved, so that both see the same load
        steps.append(once(w.step, w.sync)); chains.append(once(chain, float))
    out[mode] = {"step_s": statistics.median(steps), "matmul_s": statistics.median(chains) / 20}
    workload.release(w)
print(json.dumps(out))
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def commit(repo: Path, message: str) -> str:
    git(repo, "-c", "user.name=figures", "-c", "user.email=figures@cnn-bench", "commit", "-qam", message)
    return git(repo, "rev-parse", "HEAD")


def clone(tmp: Path) -> Path:
    repo = tmp / "repo"
    subprocess.run(["git", "clone", "--quiet", "--shared", str(REPO_ROOT), str(repo)], check=True)
    return repo


def chains(fraction: float, *, timings: int = 15) -> tuple[dict[str, int], dict]:
    """Matmuls per step that cost ``fraction`` of each mode's step time here (timed in a child process,
    the medians of ``timings`` steps and chains taken in turns)."""
    code = SIZE % {"n": MATMUL_N, "timings": timings}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    timing = json.loads(out.stdout.strip().splitlines()[-1])
    return {m: max(1, round(fraction * t["step_s"] / t["matmul_s"])) for m, t in timing.items()}, timing


def inject(repo: Path, fraction: float, counts: dict[str, int]) -> str:
    """Commit the slowdown into ``repo``'s tensorflow backend; returns the commit."""
    path = repo / "bench" / "backends" / "tensorflow.py"
    path.write_text(path.read_text() + PATCH.format(fraction=fraction, chains=counts, n=MATMUL_N))
    return commit(repo, f"inject a {fraction:.0%} slowdown")


def measured_extra(counts: dict[str, int], *, rounds: int = 21, steps: int = 3) -> dict[str, float]:
    """What the injection really adds to each mode's step: the plain and the injected step (``PATCH``
    over the tensorflow backend, as the injected commit has it) timed in turns in a child process,
    each timing at least ``steps`` steps and a quarter of a second (one inference step takes about
    50 ms here: three are too short to time a 5 % difference); the median over ``rounds`` of their
    ratio, less 1."""
    code = (
        "import json, sys; from bench.ab.figures import _extra_in_process; "
        "print(json.dumps(_extra_in_process(json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))))"
    )
    argv = [sys.executable, "-c", code, json.dumps(counts), str(rounds), str(steps)]
    out = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _extra_in_process(counts: dict[str, int], rounds: int, steps: int) -> dict[str, float]:
    from bench import devices
    from bench.backends import tensorflow as tfb
    from bench.throughput import workload

    placement = tfb.open("cpu")
    devices.set_precision("fp32")
    plain = tfb.resident_step
    injected = {"resident_step": plain}
    exec(PATCH.format(fraction=0.0, chains=counts, n=MATMUL_N), injected)

    def timed(w, n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            w.sync(w.step())
        return time.perf_counter() - t0

    out = {}
    for mode in ("train", "infer"):
        case, jit = workload.Case("resnet20", mode, 128), tfb.jit_compile("off")
        base = workload.build(case, placement, jit_compile=jit)
        tfb.resident_step = injected["resident_step"]
        try:
            slow = workload.build(case, placement, jit_compile=jit)
        finally:
            tfb.resident_step = plain
        for w in (base, slow, base, slow):  # compile and warm up
            timed(w, steps)
        n = max(steps, math.ceil(0.25 * steps / timed(base, steps)))
        ratios = []
        for i in range(rounds):  # which goes first alternates, so that neither always follows the other
            first, second = (slow, base) if i % 2 else (base, slow)
            a, b = timed(first, n), timed(second, n)
            ratios.append(a / b if first is slow else b / a)
        out[mode] = statistics.median(ratios) - 1.0
        workload.release(base)
        workload.release(slow)
    return out


def injection(fraction: float, *, loaded: bool = False) -> tuple[dict[str, int], dict]:
    """Matmuls per step for each mode that make its step ``fraction`` slower here, and the record of
    how they were chosen: sized from the step's and a matmul's time (``chains``), then the injected
    step timed against the plain one (``measured_extra``). One such timing is noisy (on a busy
    machine 53 matmuls measured +2.5 % and 64 measured +7.1 % within minutes), so each mode's cost
    per matmul is fitted over every timing so far (``per_matmul``) and the chain re-sized from the
    fit, until a timing lands within ``SIZE_TOLERANCE`` of ``fraction`` or after ``SIZE_TRIES``
    timings; what the chain costs is then the fit's figure at its length, from all of them (a chain
    sized from one matmul's time alone cost 3.9-4.5 % for a 5 % target). ``loaded``: all of it
    beside the load loaded trials run with (``load``), since a chain's share of the step is not the
    same under load (measured: a chain costing +4.5 % of a quiet training step cost 0-1.5 % beside
    a second throughput loop)."""
    with load(loaded):
        return _injection(fraction, loaded)


def per_matmul(tries: list[dict], mode: str) -> float:
    """The extra cost of one matmul in ``mode``'s step: least squares through the origin over every
    timing in ``tries`` (``{"matmuls": {mode: n}, "measured": {mode: extra}}``), a longer chain's
    timing weighing more."""
    n = [t["matmuls"][mode] for t in tries]
    extra = [t["measured"][mode] for t in tries]
    return sum(a * b for a, b in zip(n, extra)) / sum(a * a for a in n)


def _injection(fraction: float, loaded: bool) -> tuple[dict[str, int], dict]:
    counts, timing = chains(fraction)
    tries = []
    while True:
        measured = measured_extra(counts)
        tries.append({"matmuls": dict(counts), "measured": measured})
        close = all(abs(v - fraction) <= SIZE_TOLERANCE * fraction for v in measured.values())
        if close or len(tries) == SIZE_TRIES:
            break
        counts = {m: max(1, round(fraction / max(per_matmul(tries, m), 1e-6))) for m in counts}
    cost = {m: per_matmul(tries, m) * counts[m] for m in counts}
    said = ", ".join(f"{m} +{v:.1%}" for m, v in cost.items())
    print(
        f"injecting {fraction:.0%}{' (sized under load)' if loaded else ''}: {counts} matmuls of {MATMUL_N}x{MATMUL_N} per step;"
        f" costs {said} (fitted over {len(tries)} timing(s): {tries}) (sized from {timing})",
        flush=True,
    )
    return counts, {
        "matmuls": counts,
        "timing": timing,
        "measured": cost,
        "tries": tries,
        "sized_under_load": loaded,
    }


@contextlib.contextmanager
def load(on: bool):
    """A second throughput run in a loop while the block runs (when ``on``)."""
    if not on:
        yield
        return
    loop = f"while true; do {sys.executable} -m bench throughput --rounds 3 --bench-out '' >/dev/null 2>&1; done"
    proc = subprocess.Popen(["bash", "-c", loop], cwd=REPO_ROOT, start_new_session=True)
    try:
        yield
    finally:
        os.killpg(proc.pid, 15)
        proc.wait()


def ab(repo: Path, base: str, head: str, out: Path, ab_args: list[str]) -> dict:
    """One ``python -m bench ab`` in a child process (killed with this one, as its timed processes are
    with it: ``processes.child_options``); its document and exit status."""
    argv = [sys.executable, "-m", "bench", "ab", base, head, "--repo", str(repo), "--out", str(out)]
    argv += ["--baselines", str(REPO_ROOT / "baselines.json"), *ab_args]
    t0 = time.perf_counter()
    status = subprocess.run(
        argv, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **processes.child_options()
    ).returncode
    doc = json.loads((out / "ab.json").read_text()) if (out / "ab.json").exists() else {}
    return {"status": status, "wall_s": time.perf_counter() - t0, "doc": doc}


def rejudge(doc: dict, threshold: float) -> list[str]:
    """The cases an A/B document would fail at another ``threshold`` (a fraction), from its own pairs:
    the first set judged again, and the confirming set for each case flagged. Valid only at or above
    the threshold it ran with, so that every case flagged here had its confirming pairs run."""
    from bench.ab import verdict

    ran = doc["threshold"]["value"]
    if threshold < ran - 1e-12:
        raise ValueError(
            f"a run judged at {ran:.1%} cannot be judged at {threshold:.1%}: its confirming pairs are missing"
        )
    first = verdict.evaluate(doc["pairs"], threshold)
    second = verdict.evaluate(doc["confirmation_pairs"], threshold) if doc["confirmation_pairs"] else {}
    return verdict.regressed(verdict.confirm(first, second))


def trials(repo: Path, base: str, head: str | dict[bool, str], args, ab_args: list[str], work: Path) -> list[dict]:
    """``args.trials`` A/B runs of ``base`` against ``head`` (or ``head[loaded]``: a HEAD per
    condition), every other one beside the load when ``args.load``."""
    rows = []
    for i in range(args.trials):
        loaded = args.load and i % 2 == 1
        with load(loaded):
            r = ab(repo, base, head[loaded] if isinstance(head, dict) else head, work / f"trial{i:02d}", ab_args)
        doc = r["doc"]
        if args.keep and doc:
            from bench.io import write_json

            write_json(Path(args.keep) / f"trial{i:02d}.json", doc)
        cases = {
            k: {f: v.get(f) for f in ("ratio", "lo", "hi", "verdict", "confirmed")}
            for k, v in doc.get("cases", {}).items()
        }
        loads = [p[x]["loadavg_before"][0] for p in doc.get("pairs", []) for x in ("BASE", "HEAD")]
        row = {
            "trial": i,
            "status": r["status"],
            "wall_s": r["wall_s"],
            "cases": cases,
            "loadavg": loads,
            "load": loaded,
            "interleave": doc.get("interleave"),
            "regressions_at": {f"{t:g}": rejudge(doc, t) for t in args.judge_at} if doc else {},
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def table_row(name: str, rows: list[dict], *, expect_regression: bool, judge_at=()) -> str:
    confirmed = sum(r["status"] == 1 for r in rows)
    errors = sum(r["status"] not in (0, 1) for r in rows)
    also = "".join(
        f"; at a {float(t):.0%} threshold {sum(bool(r['regressions_at'].get(t)) for r in rows)}/{len(rows)}"
        for t in (f"{t:g}" for t in judge_at)
    )
    loads = [v for r in rows for v in r["loadavg"]] or [float("nan")]
    ratios = (
        {
            k: statistics.median(r["cases"][k]["ratio"] for r in rows if r["cases"].get(k, {}).get("ratio"))
            for k in rows[0]["cases"]
        }
        if rows
        else {}
    )
    measured = ", ".join(f"{k.split('-bs')[0]} {v:.3f}" for k, v in ratios.items())
    goal = "caught" if expect_regression else "false alarms"
    return (
        f"| {name} | {confirmed}/{len(rows)} {goal}{also} | {errors} errored | median {statistics.median(r['wall_s'] for r in rows):.0f} s to a verdict"
        f" | median HEAD/BASE: {measured} | load avg {min(loads):.1f}-{max(loads):.1f} |"
    )


def simulate_figure(args) -> int:
    """``simulate``: the table for the design the ab options after ``--`` describe. Bad input (an
    option, a slowdown, a recorded file) is one line on stderr, exit 2."""
    from bench.ab import simulate
    from bench.ab.experiment import Settings
    from bench.commands import ab as ab_command
    from bench.errors import UsageError

    parser = argparse.ArgumentParser(prog="figures simulate -- [ab options]")
    ab_command.add_measure_arguments(parser)
    try:
        options = parser.parse_args(args.ab_args)
        settings = Settings(**ab_command.decision(options))
        ab_command.check_throughput_options(options)  # --rounds among them, checked as ab checks it
        slowdowns = simulate.slowdowns(args.slowdowns)
        if args.trials < 1:
            raise UsageError(f"--trials {args.trials} is invalid; expected at least 1")
        pools = simulate.pools(args.results, rounds=options.rounds)
    except (UsageError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rows = simulate.table(pools, settings, slowdowns, args.trials)
    print(simulate.markdown(pools, settings, rows, options.rounds))
    if args.out:
        from bench.io import write_json

        design = simulate.design(settings, options.rounds)
        write_json(args.out, {"figure": "simulate", "argv": sys.argv, "design": design, "rows": rows})
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ab.figures", description=__doc__.splitlines()[0])
    parser.add_argument("figure", choices=("aa", "power", "bisect", "compare", "simulate"))
    parser.add_argument(
        "results",
        nargs="*",
        help="compare: a report of its own (--out) or unchanged runs' result files, in the order they ran;"
        " simulate: recorded A/A runs"
        " (ab.json files, figures reports or directories of them)",
    )
    parser.add_argument("--slowdowns", default="0,0.02,0.05,0.1", help="simulate: the slowdowns to replay (fractions)")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--runs", type=int, default=0, help="compare: unchanged throughput runs to measure")
    parser.add_argument("--slowed", type=int, default=0, help="compare: slowed throughput runs among them")
    parser.add_argument("--seed", type=int, default=0, help="compare: which runs are loaded (with --load)")
    parser.add_argument(
        "--slowdown", type=float, default=0.05, help="power, bisect and compare: the injected fraction of the step"
    )
    parser.add_argument("--commits", type=int, default=16, help="bisect: commits in the throw-away history")
    parser.add_argument("--bad-at", type=int, default=11, help="bisect: the commit (1-based) that injects the slowdown")
    parser.add_argument("--load", action="store_true", help="a second throughput loop during every other trial")
    parser.add_argument("--out", default=None, help="also write the rows as JSON here")
    parser.add_argument(
        "--keep", default=None, help="keep each trial's ab.json (bisect: bisect.json and bisect.md) in this directory"
    )
    parser.add_argument(
        "--judge-at",
        type=float,
        action="append",
        default=[],
        help="also count confirmed regressions at this threshold (a fraction, at or above the one the runs used;"
        " repeatable)",
    )
    argv = sys.argv[1:] if argv is None else argv
    processes.exit_on_sigterm()  # a killed figure stops its load loop and its running ab (their finally blocks)
    split = argv.index("--") if "--" in argv else len(argv)  # after --: options for every `python -m bench ab`
    args = parser.parse_args(argv[:split])
    args.ab_args = argv[split + 1 :]
    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
    if args.figure == "simulate":
        return simulate_figure(args)
    if args.figure == "compare":
        from bench.ab import compare_figure

        return compare_figure.main(args)
    with tempfile.TemporaryDirectory(prefix="cnn-bench-figures-") as tmp:
        work = Path(tmp)
        repo = clone(work)
        base = git(repo, "rev-parse", "HEAD")
        result: dict = {"figure": args.figure, "argv": sys.argv, "base": base}
        if args.figure == "aa":
            rows = trials(repo, f"git:{base}", f"git:{base}", args, args.ab_args, work)
            result["row"] = table_row("A/A", rows, expect_regression=False, judge_at=args.judge_at)
        elif args.figure == "power":
            # a HEAD per condition: the chain sized on the machine as it is, and (--load) another sized
            # beside the load, so that a loaded trial too tests a step ``--slowdown`` slower
            counts, record = injection(args.slowdown)
            result.update(record)
            slow = {False: f"git:{inject(repo, args.slowdown, counts)}"}
            if args.load:
                counts, result["loaded"] = injection(args.slowdown, loaded=True)
                git(repo, "checkout", "--quiet", "--detach", base)
                slow[True] = f"git:{inject(repo, args.slowdown, counts)}"
            rows = trials(repo, f"git:{base}", slow, args, args.ab_args, work)
            result["row"] = table_row(
                f"{args.slowdown:.0%} slower", rows, expect_regression=True, judge_at=args.judge_at
            )
        else:
            counts, record = injection(args.slowdown)
            result.update(record)
            history = []
            for i in range(1, args.commits + 1):
                if i == args.bad_at:
                    history.append(inject(repo, args.slowdown, counts))
                    continue
                (repo / "CHANGES.figures").write_text(f"commit {i}\n")
                git(repo, "add", "CHANGES.figures")
                history.append(commit(repo, f"commit {i}: nothing timed"))
            out = work / "bisect"
            argv = [sys.executable, "-m", "bench", "bisect", "--good", base, "--bad", history[-1], "--repo", str(repo)]
            t0 = time.perf_counter()
            status = subprocess.run(
                [*argv, "--out", str(out), *args.ab_args], cwd=REPO_ROOT, **processes.child_options()
            ).returncode
            found = json.loads((out / "bisect.json").read_text()) if (out / "bisect.json").exists() else {}
            if args.keep:  # every step's A/B document and the report, not the processes' own files
                for name in ("bisect.json", "bisect.md"):
                    if (out / name).exists():
                        shutil.copy2(out / name, Path(args.keep) / name)
            right = found.get("first_bad") == history[args.bad_at - 1]
            result.update(
                status=status,
                found=found.get("first_bad"),
                expected=history[args.bad_at - 1],
                steps=len(found.get("steps", [])),
            )
            result["row"] = (
                f"| bisect, {args.commits} commits, {args.slowdown:.0%} at #{args.bad_at} | {'found' if right else 'NOT found'} "
                f"in {result['steps']} A/B steps | {time.perf_counter() - t0:.0f} s |"
            )
            rows = []
        result["rows"] = rows
    print(result["row"])
    if args.out:
        from bench.io import write_json

        write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
