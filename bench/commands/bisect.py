"""``python -m bench bisect --good REF --bad REF`` (or ``--package keras --versions 3.10.0,3.11.0,...``):
the first commit (first parent) or version whose throughput regresses against the good end.

Each step is a whole ``ab`` (pairs, confirmation) of the midpoint against the good end, so about
log2(N) A/B runs for N candidates. It assumes the regression is monotonic, and says so. Writes
``bisect.json`` (every step's A/B document) and ``bisect.md`` under ``--out``; exit 0 when a first
bad candidate was found, 1 when the bad end does not regress here, 2 on bad input. A step counted
good whose interval does not rule out a ``--detect`` slowdown is named in the summary: the first
bad candidate may then be that one or earlier.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from bench.commands.ab import add_measure_arguments, calibration_lookup, out_dir, settings, write
from bench.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--good", default=None, help="a commit whose throughput is good")
    parser.add_argument(
        "--bad", default=None, help="a later commit (first-parent descendant) whose throughput regressed"
    )
    parser.add_argument("--package", default=None, help="bisect this package's versions instead of commits")
    parser.add_argument(
        "--versions", default=None, help="with --package: versions, oldest (good) first, comma-separated"
    )
    add_measure_arguments(parser, out="results/bisect/{time}")


def candidates(args: argparse.Namespace, repo: Path) -> tuple[list[str], Callable[[str], str]]:
    """The candidates, good end first, and the side spec of each."""
    from bench.ab import bisect, sides

    if args.package:
        if args.good or args.bad:
            raise UsageError("give --good/--bad (commits) or --package/--versions, not both")
        versions = [v.strip() for v in (args.versions or "").split(",") if v.strip()]
        if len(versions) < 2:
            raise UsageError("--package needs --versions with at least two versions, oldest (good) first")
        for v in versions:
            sides.parse(f"pkg:{args.package}=={v}")  # checks the spelling now, not half-way through
        return versions, lambda v: f"pkg:{args.package}=={v}"
    if not (args.good and args.bad):
        raise UsageError("give --good REF and --bad REF (or --package NAME --versions A,B,...)")
    return bisect.commits(repo, args.good, args.bad), lambda sha: f"git:{sha}"


def run(args: argparse.Namespace) -> int:
    from bench.ab import bisect, experiment, report, verdict

    opts = settings(args)
    found, side = candidates(args, opts.repo)
    out = out_dir(args)
    lookup = calibration_lookup(args.baselines)
    docs = []

    def judge(candidate: str) -> tuple[bool, dict]:
        step = len(docs) + 1
        doc = experiment.run(side(found[0]), side(candidate), opts, calibration=lookup, workdir=out / f"step{step}")
        docs.append(doc)
        print(report.table(doc["cases"]))
        print(doc["summary"])
        errors = [k for k in doc["regressions"] if doc["cases"][k]["verdict"] == verdict.ERROR]
        if errors:
            print(f"cnn-bench bisect: {candidate} gave no result for {', '.join(errors)}; counted as bad")
        bad = bool(doc["regressions"])
        # a step counted good while a --detect slowdown is still within its interval may be a miss
        doc["undecided"] = [] if bad else verdict.undecided(doc["cases"], opts.detect / 100.0)
        return bad, doc

    result = bisect.search(found, judge)
    result["kind"] = "bisect"
    result["what"] = f"--package {args.package}" if args.package else "commits (first parent)"
    print()
    print(report.bisect_summary(result))
    for path in write(result, out, "bisect"):
        print(f"cnn-bench bisect: wrote {path}")
    return 0 if result["first_bad"] else 1
