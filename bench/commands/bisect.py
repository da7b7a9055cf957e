"""``python -m bench bisect --good REF --bad REF`` (or ``--package keras --versions 3.10.0,3.11.0,...``):
the first commit (first parent) or version whose throughput regresses against the good end.

Each step is a whole ``ab`` (pairs, confirmation) of the midpoint against the good end, so about
log2(N) A/B runs for N candidates. It assumes the regression is monotonic, and says so. Writes
``bisect.json`` (every step's A/B document) and ``bisect.md`` under ``--out``; exit 0 when a first
bad candidate was found, 1 when the bad end does not regress here (or untestable candidates leave
a range the first bad is in), 2 on bad input. A candidate whose A/B fails (it does not run, or a
case has no result and none is confirmed slower) is untestable, as with ``git bisect skip``: its
nearest untested neighbour is tried instead. bisect.json and bisect.md are written whatever
the steps gave. A step that
comes out good while its interval does not rule out a ``--detect`` slowdown is A/B'd again with
twice the pairs (``--reruns`` times at most); one still undecided then is counted good and named in
the summary: the first bad candidate may then be that one or earlier.
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
        "--versions",
        default=None,
        help="with --package: versions, oldest (good) first, comma-separated; the last may be 'latest' (the newest release)",
    )
    parser.add_argument(
        "--reruns",
        type=int,
        default=1,
        help="a step that comes out good while a --detect slowdown is not ruled out is A/B'd again, each time with"
        " sets growing to twice the pairs, at most this many times; 0: never (default: %(default)s)",
    )
    add_measure_arguments(parser, out="results/bisect/{time}")


def candidates(args: argparse.Namespace, repo: Path) -> tuple[list[str], Callable[[str], str]]:
    """The candidates, good end first, and the side spec of each."""
    from bench.ab import bisect, sides

    if args.package is not None and not args.package.strip():
        raise UsageError("--package '' is empty; expected a package name, e.g. --package keras")
    if args.versions is not None and not args.package:
        raise UsageError(
            f"--versions {args.versions!r} applies with --package NAME only (a package's versions to bisect)"
        )
    if args.package:
        if args.good or args.bad:
            raise UsageError("give --good/--bad (commits) or --package/--versions, not both")
        versions = [v.strip() for v in (args.versions or "").split(",") if v.strip()]
        if len(versions) < 2:
            raise UsageError("--package needs --versions with at least two versions, oldest (good) first")
        for v in versions:
            sides.parse(f"pkg:{args.package}=={v}")  # checks the spelling now, not half-way through
        if twice := next((v for k, v in enumerate(versions) if _same_version(v, versions[:k])), None):
            raise UsageError(
                f"--versions {args.versions}: {twice} is there twice; list each version once, oldest (good) first"
            )
        if any(v.lower() == sides.LATEST for v in versions[:-1]):
            raise UsageError(
                f"--versions {args.versions}: '{sides.LATEST}' (the newest release) can only be the last, bad end"
            )
        _increasing(args.versions, [v for v in versions if v.lower() != sides.LATEST])
        return versions, lambda v: f"pkg:{args.package}=={v}"
    if not (args.good and args.bad):
        raise UsageError("give --good REF and --bad REF (or --package NAME --versions A,B,...)")
    return bisect.commits(repo, args.good, args.bad), lambda sha: f"git:{sha}"


def _increasing(given: str, versions: list[str]) -> None:
    """Versions oldest (good) first, as pip orders them; else one line naming the pair out of order."""
    from packaging.version import InvalidVersion, Version

    try:
        parsed = [Version(v) for v in versions]
    except InvalidVersion as e:
        raise UsageError(f"--versions {given}: {e}; expected versions such as 3.13.0, oldest (good) first") from None
    for (a, va), (b, vb) in zip(zip(versions, parsed), zip(versions[1:], parsed[1:])):
        if not va < vb:
            raise UsageError(f"--versions {given}: {a} comes before {b}, which is older; list them oldest (good) first")


def _same_version(version: str, others: list[str]) -> bool:
    """Whether ``version`` is one of ``others`` as pip reads them (3.13 is 3.13.0)."""
    from packaging.version import InvalidVersion, Version

    try:
        return any(Version(version) == Version(o) for o in others if o.lower() != "latest")
    except InvalidVersion:
        return version.lower() in (o.lower() for o in others)


def run(args: argparse.Namespace) -> int:
    from bench import processes
    from bench.ab import bisect, experiment, report, verdict

    processes.exit_on_sigterm()
    if args.reruns < 0:
        raise UsageError(f"--reruns {args.reruns} is invalid; expected 0 or more")
    opts = settings(args, ("bisect.json", "bisect.md"))
    found, side = candidates(args, opts.repo)
    out = out_dir(args, claim=True)
    lookup = calibration_lookup(args.baselines, opts)
    steps = 0

    def judge(candidate: str) -> tuple[bool, dict]:
        nonlocal steps
        steps += 1

        def run_ab(current, attempt: int) -> dict:
            workdir = out / (f"step{steps}" + (f"-rerun{attempt}" if attempt else ""))
            try:
                doc = experiment.run(side(found[0]), side(candidate), current, calibration=lookup, workdir=workdir)
            except UsageError as e:  # the candidate does not build or run: untestable, not bad input
                print(f"cnn-bench bisect: {candidate} is untestable: {e}")
                return {"kind": "ab", "error": str(e), "cases": {}, "regressions": [], "summary": f"untestable: {e}"}
            print(report.table(doc["cases"]))
            print(doc["summary"])
            errors = [k for k in doc["regressions"] if verdict.errored(doc["cases"][k])]
            if errors and len(errors) == len(doc["regressions"]):
                print(f"cnn-bench bisect: {candidate} gave no result for {', '.join(errors)}; untestable")
            return doc

        return bisect.step(run_ab, opts, reruns=args.reruns)

    what = f"--package {args.package}" if args.package else "commits (first parent)"
    taken: list[dict] = []
    try:
        result = bisect.search(found, judge, steps=taken)
    except BaseException:  # SIGTERM, Ctrl-C: the steps already run are kept
        if taken:
            for path in write({**bisect.interrupted(found, taken), "kind": "bisect", "what": what}, out, "bisect"):
                print(f"cnn-bench bisect: wrote {path} (interrupted)")
        raise
    result["kind"] = "bisect"
    result["what"] = what
    print()
    print(report.bisect_summary(result))
    for path in write(result, out, "bisect"):
        print(f"cnn-bench bisect: wrote {path}")
    return 0 if result["first_bad"] else 1
