"""``compare``'s false alarms and power over time (issue #8), run by hand: a benchmark figure.

``python -m bench.ab.figures compare --runs 15 --slowed 6 --slowdown 0.1 --load --out F.json -- [throughput options]``
    ``--runs`` unchanged runs of ``python -m bench throughput`` one after another in a throw-away
    clone of HEAD, and ``--slowed`` runs of HEAD plus the power figure's chain of matmuls (sized to
    ``--slowdown`` of each mode's step, beside the load for the loaded runs), spread among them;
    with ``--load``, a seeded half of the runs beside a second throughput loop (a shared runner).
``python -m bench.ab.figures compare F.json`` (or result files of unchanged runs, in the order they ran)
    The same verdicts again from recorded runs.

Each run is judged by ``compare`` (``bench.regression.throughput.judge_all``, its default rule and
test) against every baseline recorded before it: from one unchanged run (the rank test over that
run's rounds decides) and from each three (and five) consecutive unchanged runs (their between-run
prediction interval decides), as ``python -m bench baselines update`` would record them. An unchanged run that
fails is a false alarm; a slowed run that fails is caught. Comparisons that share a baseline or a run
are not independent: the table also counts the runs that failed at least once.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

BASELINE_RUNS = (1, 3, 5)  # unchanged runs a baseline is recorded from
FIRST = 3  # unchanged runs before the first slowed one: a three-run baseline precedes every slowed run
SAME, SLOW = "unchanged", "slowed"
VERDICTS = ("comparisons", "counts", "slowdown_seen", "without_result", "quiet_only", "row")  # a report's, recomputed


def schedule(unchanged: int, slowed: int, *, load: bool, seed: int = 0) -> list[dict]:
    """The runs in order: the first ``FIRST`` unchanged, then the rest of the unchanged and the
    slowed spread evenly; with ``load``, a seeded half of all of them (rounded down) beside the load."""
    if unchanged < FIRST + 1:
        raise ValueError(f"--runs {unchanged} is too few; expected at least {FIRST + 1}")
    if slowed < 0:
        raise ValueError(f"--slowed {slowed} is invalid; expected 0 or more")
    kinds = [SAME] * FIRST
    rest, used = unchanged - len(kinds) + slowed, 0
    for i in range(rest):
        take_slow = used < slowed and (used + 1) / slowed <= (i + 1) / rest + 1e-9
        kinds.append(SLOW if take_slow else SAME)
        used += take_slow
    loaded = set()
    if load:
        loaded = {int(i) for i in np.random.default_rng(seed).permutation(len(kinds))[: len(kinds) // 2]}
    return [{"run": i, "kind": k, "loaded": i in loaded} for i, k in enumerate(kinds)]


def judge(runs: list[dict]) -> dict:
    """Every comparison ``compare`` would make among ``runs`` (each ``{"run", "kind", "loaded", "doc"}``,
    in the order they ran), and their counts per kind of baseline."""
    from bench.regression import rules
    from bench.regression import throughput as gate

    args = argparse.Namespace(tolerance=None, provenance="figure")  # as `baselines update` gets them
    same = [r for r in runs if r["kind"] == SAME and r.get("doc")]
    comparisons = []
    for k in BASELINE_RUNS:
        for i in range(len(same) - k + 1):
            window = same[i : i + k]
            with contextlib.redirect_stderr(io.StringIO()):  # noisy-run warnings, once per window
                base = gate.baseline_entries([(f"run{r['run']}", r["doc"]) for r in window], args)
            for r in runs:
                if r["run"] <= window[-1]["run"] or not r.get("doc"):
                    continue
                findings = gate.judge_all(gate.results(r["doc"]), base)
                comparisons.append(
                    {
                        "baseline_runs": [w["run"] for w in window],
                        "baseline_loaded": [w["loaded"] for w in window],
                        "run": r["run"],
                        "kind": r["kind"],
                        "loaded": r["loaded"],
                        "cases": {
                            f.key.split("/", 1)[1]: {
                                "verdict": f.verdict.value,
                                "failed": f.verdict in rules.FAILING,
                                "change": f.change,
                                "reason": f.reason,
                            }
                            for f in findings
                        },
                    }
                )
    return {
        "comparisons": comparisons,
        "counts": counts(comparisons),
        "slowdown_seen": slowdown_seen(runs),
        "without_result": [r["run"] for r in runs if not r.get("doc")],
    }


def counts(comparisons: list[dict]) -> dict:
    """Per baseline size and kind of run: failing cases of those compared, failing comparisons (a
    run against one baseline) of those made, and runs that failed against at least one baseline."""
    out = {}
    for k in BASELINE_RUNS:
        for kind in (SAME, SLOW):
            rows = [c for c in comparisons if len(c["baseline_runs"]) == k and c["kind"] == kind]
            if not rows:
                continue
            cases = [v["failed"] for c in rows for v in c["cases"].values()]
            failed_runs = {c["run"] for c in rows if any(v["failed"] for v in c["cases"].values())}
            out[f"{k}-run baseline, {kind} runs"] = {
                "cases_failed": sum(cases),
                "cases": len(cases),
                "comparisons_failed": sum(any(v["failed"] for v in c["cases"].values()) for c in rows),
                "comparisons": len(rows),
                "runs_failed": len(failed_runs),
                "runs": len({c["run"] for c in rows}),
            }
    return out


def slowdown_seen(runs: list[dict]) -> dict:
    """What each slowed run's chain cost as these runs saw it: per case, its median images/s against
    the median of the unchanged runs on either side of it in the same load condition."""
    out: dict[str, list[float]] = {}
    for r in runs:
        if r["kind"] != SLOW or not r.get("doc"):
            continue
        near = [s for s in runs if s["kind"] == SAME and s.get("doc") and s["loaded"] == r["loaded"]]
        before = [s for s in near if s["run"] < r["run"]][-1:]
        after = [s for s in near if s["run"] > r["run"]][:1]
        for case, value in medians(r["doc"]).items():
            around = [medians(s["doc"]).get(case) for s in before + after]
            around = [v for v in around if v]
            if around:
                out.setdefault(case, []).append(value / statistics.median(around))
    return out


def table(result: dict, *, slowdown: float | None, prefix: str = "") -> str:
    """The markdown rows: one per baseline size and kind of run, each label after ``prefix``."""
    lines = []
    for label, c in result["counts"].items():
        word = "caught" if label.endswith(f"{SLOW} runs") else "false alarms"
        what = prefix + (f"{label} ({slowdown:.0%} slower)" if slowdown and word == "caught" else label)
        lines.append(
            f"| {what} | {c['comparisons_failed']}/{c['comparisons']} comparisons {word} "
            f"({c['cases_failed']}/{c['cases']} cases) | {c['runs_failed']}/{c['runs']} runs failed at least once |"
        )
    seen = ", ".join(
        f"{case.split('-bs')[0]} {statistics.median(v):.3f} ({min(v):.3f}-{max(v):.3f})"
        for case, v in result["slowdown_seen"].items()
    )
    if seen:
        lines.append(f"| {prefix}slowed runs against the unchanged runs beside them (median, range) | {seen} | |")
    if result["without_result"]:
        lines.append(
            f"| {prefix}runs without a result (left out) | {', '.join(map(str, result['without_result']))} | |"
        )
    return "\n".join(lines)


def recorded(paths: list[str]) -> dict:
    """A figure report to judge again: an earlier run's (``--out``; what it measured kept, its
    verdicts dropped), or one made of plain result files (unchanged runs, in the order they ran,
    none loaded)."""
    from bench.io import read_json

    if len(paths) == 1:
        doc = read_json(paths[0], what="figure report or result file")
        if doc.get("figure") == "compare" and "runs" in doc:
            kept = {k: v for k, v in doc.items() if k not in VERDICTS}
            return {**kept, "judged_by": sys.argv}
    runs = [
        {"run": i, "kind": SAME, "loaded": False, "doc": read_json(p, what="result file")} for i, p in enumerate(paths)
    ]
    return {"figure": "compare", "argv": sys.argv, "runs": runs}


def measure(args, throughput_args: list[str], work: Path, *, log=print) -> dict:
    """The runs of the schedule, in a throw-away clone of HEAD (the slowed ones in worktrees of it
    with the chain committed), each beside the load or not; the figure report, runs included. With
    ``args.out``, the report so far is written there after every run (``compare REPORT.json`` judges
    a run that was stopped early)."""
    from bench import processes
    from bench.ab import figures, worktree
    from bench.io import write_json

    plan = schedule(args.runs, args.slowed, load=args.load, seed=args.seed)
    repo = figures.clone(work)
    base = figures.git(repo, "rev-parse", "HEAD")
    report: dict = {"figure": "compare", "argv": sys.argv, "base": base, "throughput_args": throughput_args}
    report["runs"] = plan
    trees = {False: repo, True: repo}
    with contextlib.ExitStack() as stack:
        if args.slowed:
            report["slowdown"] = args.slowdown
            for loaded in sorted({r["loaded"] for r in plan if r["kind"] == SLOW}):
                counts, record = figures.injection(args.slowdown, loaded=loaded)
                report["loaded" if loaded else "quiet"] = record
                head = figures.inject(repo, args.slowdown, counts)
                figures.git(repo, "checkout", "--quiet", "--detach", base)
                trees[loaded] = stack.enter_context(worktree.checkout(repo, head))
        for r in plan:
            tree = repo if r["kind"] == SAME else trees[r["loaded"]]
            out = work / f"run{r['run']:02d}.json"
            argv = [sys.executable, "-m", "bench", "throughput", *throughput_args, "--bench-out", str(out)]
            r["loadavg_before"] = list(os.getloadavg())
            t0 = time.perf_counter()
            with figures.load(r["loaded"]):
                status = subprocess.run(
                    argv,
                    cwd=tree,
                    env={**os.environ, "PYTHONPATH": str(tree), "TF_CPP_MIN_LOG_LEVEL": "2"},
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    **processes.child_options(),
                ).returncode
            r.update(wall_s=time.perf_counter() - t0, returncode=status)
            r["doc"] = json.loads(out.read_text()) if out.exists() else None
            log(json.dumps({k: v for k, v in r.items() if k != "doc"} | {"medians": medians(r["doc"])}), flush=True)
            if args.out:
                write_json(args.out, report)
    return report


def medians(doc: dict | None) -> dict[str, float]:
    """Each case's median images/s in a throughput result (none for a run without one)."""
    from bench.regression import throughput as gate

    return {r["key"].split("/", 1)[1]: r["median"] for r in gate.results(doc or {}) if not r["error"]}


def main(args) -> int:
    """``figures compare``: measure the runs (``--runs``) or read recorded ones, then judge and print
    the table. Bad input is one line on stderr, exit 2."""
    import tempfile

    from bench.errors import UsageError
    from bench.io import writable_file, write_json

    try:
        if args.out:
            writable_file("--out", args.out)  # before an hour of runs, not after
        if args.results and args.runs:
            raise UsageError("give recorded runs or --runs N, not both")
        if args.results:
            report = recorded(args.results)
        elif args.runs:
            schedule(args.runs, args.slowed, load=args.load)  # bad counts fail before anything runs
            if args.slowed and not 0 < args.slowdown < 1:
                raise UsageError(f"--slowdown {args.slowdown} is invalid; expected a fraction in (0, 1)")
            with tempfile.TemporaryDirectory(prefix="cnn-bench-figures-") as tmp:
                report = measure(args, args.ab_args, Path(tmp))
        else:
            raise UsageError("compare needs recorded runs (result files or a figure report) or --runs N")
    except (UsageError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report.update(judge(report["runs"]))
    report["row"] = table(report, slowdown=report.get("slowdown"))
    if any(r["loaded"] for r in report["runs"]):  # a dedicated runner: the quiet runs alone
        report["quiet_only"] = judge([r for r in report["runs"] if not r["loaded"]])
        quiet = table(report["quiet_only"], slowdown=report.get("slowdown"), prefix="quiet runs only: ")
        report["row"] += "\n" + quiet
    print(report["row"])
    if args.out:
        write_json(args.out, report)
    return 0
