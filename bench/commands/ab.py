"""``python -m bench ab BASE [HEAD]``: is HEAD slower than BASE on this machine? Alternating processes, judged from pairs.

Sides (``bench.ab.sides``): ``.`` (the working tree, the default HEAD), ``git:REF``, ``pkg:NAME==V[,...]``,
``backend:NAME``, combined with ``+``. Writes ``ab.json`` (every pair's raw samples, both
environments, the load), ``ab.md`` and ``ab.png`` under ``--out``. Exit 1 on a confirmed regression
(or a case with no result), 0 otherwise, 2 on bad input. ``--calibrate`` runs an A/A (default
``. .``) and records its threshold for this device class and design in baselines.json's ``ab_calibration``.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

from bench.errors import UsageError
from bench.regression import baselines, rules

# throughput options passed on to every process when given; the three timing ones always, with A/B defaults
PASSED = (
    "--device",
    "--backend",
    "--models",
    "--mode",
    "--batch-size",
    "--precision",
    "--xla",
    "--compile",
    "--data",
    "--steps",
)
TIMING = {"--rounds": 10, "--warmup-rounds": 1, "--round-seconds": 0.5}  # 10: as measured (README)
DEFAULT_OUT = "results/ab/{time}"
# the options the accuracy A/B (--recipe) reads, and those only it reads (argparse dests)
ACCURACY = ("recipe", "seeds", "budget", "out", "repo")
RECIPE_ONLY = ("seeds", "budget")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "base", nargs="?", default=None, help="the side to compare against (required unless --calibrate)"
    )
    parser.add_argument("head", nargs="?", default=".", help="the side under test (default: '.', the working tree)")
    parser.add_argument(
        "--calibrate", action="store_true", help="run an A/A and record its threshold for this device class"
    )
    parser.add_argument("--recipe", default=None, help="accuracy A/B instead: train this recipe on both sides")
    parser.add_argument(
        "--seeds", type=int, default=3, help="with --recipe: seeds 0..N-1 on each side (default: %(default)s)"
    )
    parser.add_argument("--budget", default=None, help="with --recipe: the training budget (default: the recipe's)")
    add_measure_arguments(parser)
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            action.__class__ = _recorded(type(action))


GIVEN = "_given"  # the Namespace attribute that holds the dests of the options the command line gave


@functools.cache
def _recorded(action: type[argparse.Action]) -> type[argparse.Action]:
    """``action`` that also notes its option as given (``GIVEN``): ``check_mode`` must tell an option
    given at its default value (``--seeds 3``, ``--models resnet20``) from one not given at all."""

    class Recorded(action):
        def __call__(self, parser, namespace, values, option_string=None):
            if getattr(namespace, GIVEN, None) is None:
                setattr(namespace, GIVEN, set())
            getattr(namespace, GIVEN).add(self.dest)
            super().__call__(parser, namespace, values, option_string)

    return Recorded


def add_measure_arguments(parser: argparse.ArgumentParser, *, out: str = DEFAULT_OUT) -> None:
    """How each A/B measures and judges (shared with ``bisect``): pairs, rule, outputs, throughput options.
    The defaults are ``Settings``'s, the measured design."""
    from bench.ab.experiment import Settings
    from bench.throughput.plan import OPTIONS

    parser.add_argument("--pairs", type=int, default=Settings.pairs, help="pairs of processes (default: %(default)s)")
    parser.add_argument(
        "--confirm-pairs",
        type=int,
        default=Settings.confirm_pairs,
        help="pairs in the confirming set; 0: no confirmation (default: %(default)s)",
    )
    parser.add_argument(
        "--max-pairs",
        type=int,
        default=Settings.max_pairs,
        help="grow each set, two pairs at a time, up to this many pairs while a case is neither flagged slower"
        " nor clear of a --detect slowdown; 0: fixed sets of --pairs and --confirm-pairs (default: %(default)s;"
        " --calibrate: fixed)",
    )
    parser.add_argument(
        "--detect",
        type=float,
        default=Settings.detect,
        help="with --max-pairs: the slowdown in percent a growing set must rule out before it stops for a case"
        " (default: %(default)g)",
    )
    parser.add_argument(
        "--tolerance", default=Settings.rule, help="the rule, e.g. 'throughput:-3%%' (default: %(default)s)"
    )
    parser.add_argument(
        "--baselines", default=str(baselines.DEFAULT_PATH), help="baselines file (default: %(default)s)"
    )
    parser.add_argument("--out", default=out, help="output directory (default: %(default)s)")
    parser.add_argument(
        "--order-seed", type=int, default=None, help="seed of the pair orders (default: from the clock)"
    )
    parser.add_argument("--repo", default=None, help="the git repository git: sides name (default: this tree's)")
    parser.add_argument(
        "--interleave",
        default=Settings.interleave,
        help="how a pair's two processes share the machine: 'rounds' (both at once, taking turns at every"
        " round) or 'processes' (one after the other) (default: %(default)s)",
    )
    parser.add_argument(
        "--process-timeout",
        type=float,
        default=Settings.process_timeout,
        help="seconds a process (with --interleave rounds: a pair) may run before it is killed and counted as"
        " an error (default: %(default)g)",
    )
    for flag in PASSED:
        kwargs = {k: v for k, v in OPTIONS[flag].items() if k != "default"}
        parser.add_argument(flag, default=None, **kwargs)
    for flag, default in TIMING.items():
        parser.add_argument(flag, type=type(default), default=default, help=f"per process (default: {default})")


def throughput_args(args: argparse.Namespace) -> list[str]:
    """The throughput command line every process gets (fixed rounds: no adaptive extension)."""
    from bench.throughput.plan import dest

    out = []
    for flag in PASSED:
        value = getattr(args, dest(flag))
        if value is not None:
            out += [flag, str(value)]
    for flag in TIMING:
        out += [flag, str(getattr(args, dest(flag)))]
    return out + ["--max-rounds", str(args.rounds)]


def check_throughput_options(args: argparse.Namespace) -> None:
    """Every throughput option the processes will get, checked here by the plan that checks them in
    ``bench throughput`` (one line, exit 2), before any environment is built or process started."""
    from bench.throughput import plan

    opts = {plan.dest(flag): spec.get("default") for flag, spec in plan.OPTIONS.items()}
    for flag in (*PASSED, *TIMING):
        value = getattr(args, plan.dest(flag))
        if value is not None:
            opts[plan.dest(flag)] = value
    opts["max_rounds"] = max(opts.get("max_rounds") or 0, opts["rounds"])
    plan.resolve(opts)
    if args.backend is not None and len(plan.backend_list(args.backend)) > 1:
        raise UsageError(
            f"--backend {args.backend!r}: an A/B runs one backend per side; compare backends with sides"
            f" instead, e.g. `ab backend:{plan.backend_list(args.backend)[0]} backend:{plan.backend_list(args.backend)[1]}`"
        )


def check_outputs(args: argparse.Namespace, names: tuple[str, ...] = ("ab.json", "ab.md", "ab.png")) -> None:
    """The output directory can be written, none of its files (``names``) is the baselines file, and
    the baselines file (read for the calibration, written by ``--calibrate``) is valid, and writable
    when ``--calibrate`` will write it: one line, exit 2, before any work."""
    from bench.io import distinct_outputs, writable_dir, writable_file

    out = writable_dir("--out", out_dir(args))
    distinct_outputs([("--out", out / name) for name in names], [args.baselines])
    if Path(args.baselines).exists():
        baselines.load(args.baselines)
    if getattr(args, "calibrate", False):
        writable_file("--baselines", args.baselines)


def decision(args: argparse.Namespace) -> dict:
    """How the pairs are sized and judged (``Settings`` fields: pairs, growth, the rule), checked:
    one line, exit 2. Shared by ``settings`` and ``figures simulate``, which replays a design."""
    if args.pairs < 2 or args.confirm_pairs < 0:
        raise UsageError(
            f"--pairs {args.pairs} / --confirm-pairs {args.confirm_pairs}: need --pairs >= 2 and --confirm-pairs >= 0"
        )
    if args.max_pairs and args.max_pairs < max(args.pairs, args.confirm_pairs):
        raise UsageError(
            f"--max-pairs {args.max_pairs} is invalid; expected 0 (fixed sets) or at least --pairs and --confirm-pairs"
            f" ({max(args.pairs, args.confirm_pairs)})"
        )
    if not 0 < args.detect < 100:  # NaN too
        raise UsageError(f"--detect {args.detect:g} is invalid; expected a slowdown in percent between 0 and 100")
    rule = rules.Rule.parse_for(args.tolerance, metric="throughput", unit="%")
    calibrating = getattr(args, "calibrate", False)  # an A/A of fixed size: its spread, not a decision
    return {
        "pairs": args.pairs,
        "confirm_pairs": 0 if calibrating else args.confirm_pairs,
        "rule": str(rule),
        "max_pairs": None if calibrating else args.max_pairs or None,
        "detect": args.detect,
    }


def settings(args: argparse.Namespace, names: tuple[str, ...] = ("ab.json", "ab.md", "ab.png")):
    """The run's ``Settings`` from the options, every one checked (one line, exit 2) before any work;
    ``names``: the files the command writes under ``--out``."""
    from bench.ab.experiment import Settings

    judged = decision(args)
    check_throughput_options(args)
    check_outputs(args, names)
    if args.order_seed is not None and not 0 <= args.order_seed < 2**32:
        raise UsageError(f"--order-seed {args.order_seed} is invalid; expected 0 to {2**32 - 1}")
    from bench.ab.runner import INTERLEAVE

    if args.interleave not in INTERLEAVE:
        raise UsageError(f"--interleave {args.interleave!r} is invalid; expected one of {', '.join(INTERLEAVE)}")
    if not args.process_timeout > 0:  # NaN too
        raise UsageError(f"--process-timeout {args.process_timeout:g} is invalid; expected a number of seconds above 0")
    repo = check_repo(args)
    seed = args.order_seed if args.order_seed is not None else time.time_ns() % 2**32
    return Settings(
        throughput_args=tuple(throughput_args(args)),
        seed=seed,
        repo=repo,
        interleave=args.interleave,
        process_timeout=args.process_timeout,
        **judged,
    )


def check_repo(args: argparse.Namespace) -> Path:
    """``--repo`` (default: this tree's) as a git repository, or one line, exit 2."""
    from bench.environment import REPO_ROOT

    repo = Path(args.repo).resolve() if args.repo else REPO_ROOT
    if not (repo / ".git").exists():
        raise UsageError(f"--repo {str(repo)!r} is not a git repository")
    return repo


def calibration_lookup(path: str, opts):
    """``device_class -> (threshold, why none)`` from baselines.json's ``ab_calibration``. A recorded
    threshold counts only for a run of the same design (``opts``: the throughput options every process
    gets, the interleave): an A/A of other cases, rounds or batch says nothing about this run's spread.
    Otherwise (None, the reason, one line)."""
    design = {"throughput_args": list(opts.throughput_args), "interleave": opts.interleave}

    def lookup(device_class: str | None) -> tuple[float | None, str | None]:
        section = baselines.section(path, "ab_calibration") if Path(path).exists() else {}
        # entries were checked on load (baselines.check_calibrations); the fields, not the key, say what ran
        mine = [
            e
            for k, e in section.items()
            if device_class is not None and baselines.calibration_device_class(k) == device_class
        ]
        for entry in mine:
            if all(entry.get(k) == v for k, v in design.items()):
                return entry["threshold"], None
        if not mine:
            return None, f"no A/A calibration for {device_class}: run `python -m bench ab --calibrate`"

        def differences(entry: dict) -> str:
            said = {k: entry.get(k) for k in design if entry.get(k) != design[k]}
            return "; ".join(
                f"{k} {' '.join(v) if isinstance(v, list) else v or 'not recorded'}" for k, v in said.items()
            )

        theirs = " / ".join(differences(entry) for entry in mine)
        return None, (
            f"the A/A calibration{'s' if len(mine) > 1 else ''} for {device_class} ran other options ({theirs})"
            f" and {'none applies' if len(mine) > 1 else 'does not apply'}: run `python -m bench ab --calibrate`"
            " with this run's options"
        )

    return lookup


def out_dir(args: argparse.Namespace, *, claim: bool = False) -> Path:
    """``--out`` with ``{time}`` filled in, fixed at the first call (a run that crosses a second writes
    all its files into one directory). With ``claim`` (once the inputs are checked, before the first
    write), the directory is made: where ``{time}`` names one that another run made in the same
    second, this run's becomes ``<time>-2`` (``io.claim_directory``). The path is absolute: the
    processes and training runs that write into it run in other trees (a ``git:`` side's worktree)."""
    import time

    from bench.io import claim_directory, fill_template

    if not hasattr(args, "_out_dir"):
        if not args.out.strip():
            raise UsageError("--out '' is empty; expected a directory (it may hold {time})")
        args._stamp = time.strftime("%Y%m%dT%H%M%S")
        args._out_dir = fill_template(args.out, stamp=args._stamp).absolute()
    if claim and not getattr(args, "_claimed", False):
        args._out_dir, args._claimed = claim_directory(args.out, args._stamp).absolute(), True
    return args._out_dir


def write(doc: dict, out: Path, name: str = "ab") -> list[Path]:
    """``name``.json, .md (and .png for an A/B) under ``out``."""
    from bench.ab import report
    from bench.io import atomic_path, write_json

    out.mkdir(parents=True, exist_ok=True)
    md = out / f"{name}.md"
    with atomic_path(md, suffix=".md") as tmp:
        tmp.write_text(report.markdown(doc) if doc["kind"] == "ab" else report.bisect_markdown(doc))
    paths = [write_json(out / f"{name}.json", doc), md]
    return paths + ([report.plot(doc, out / f"{name}.png")] if doc["kind"] == "ab" else [])


def check_mode(args: argparse.Namespace) -> None:
    """No option of the other A/B: the accuracy A/B (``--recipe``) reads only ``ACCURACY``'s options,
    the throughput A/B none of ``RECIPE_ONLY``. An option the run would ignore is one line, exit 2,
    so that ``--recipe R --models resnet56`` is not read as an accuracy A/B of resnet56. An option
    counts as given when the command line gave it, even at its default value (``GIVEN``); in a
    Namespace not parsed by ``add_arguments``' parser, when its value is not its default."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    defaults = vars(parser.parse_args([]))
    recorded = getattr(args, GIVEN, None)
    given = [
        k
        for k, v in defaults.items()
        if k not in ("base", "head") and (k in recorded if recorded is not None else getattr(args, k, v) != v)
    ]
    flag = lambda dest: "--" + dest.replace("_", "-")  # noqa: E731
    if args.recipe:
        if stray := [flag(k) for k in given if k not in ACCURACY]:
            raise UsageError(
                f"{', '.join(stray)} with --recipe: the accuracy A/B takes only"
                f" {', '.join(flag(k) for k in ACCURACY if k != 'recipe')}; drop --recipe for a throughput A/B"
            )
    elif stray := [flag(k) for k in given if k in RECIPE_ONLY]:
        raise UsageError(
            f"{', '.join(stray)} without --recipe: {'they apply' if len(stray) > 1 else 'it applies'} only to the accuracy A/B (--recipe RECIPE)"
        )


def run(args: argparse.Namespace) -> int:
    from bench import processes
    from bench.ab import experiment, report, sides

    processes.exit_on_sigterm()
    if args.recipe is not None and not args.recipe.strip():
        raise UsageError("--recipe '' is empty; expected a recipe name (python -m bench train --help lists them)")
    check_mode(args)
    if args.base is None and not args.calibrate:
        raise UsageError("give BASE (e.g. git:origin/main), or --calibrate for an A/A run")
    base = sides.parse("." if args.base is None else args.base)
    head = sides.parse(args.head)
    if args.recipe:
        return run_accuracy(args, base, head)
    if args.calibrate and base != head:
        raise UsageError(f"--calibrate runs an A/A: BASE {base.text!r} and HEAD {head.text!r} must be the same side")
    opts = settings(args)
    out = out_dir(args, claim=True)
    lookup = (
        (lambda _dc: (None, "an A/A run: calibrating")) if args.calibrate else calibration_lookup(args.baselines, opts)
    )
    doc = experiment.run(base, head, opts, calibration=lookup, workdir=out / "processes")
    print()
    print("\n".join(report.header(doc)))
    print()
    print(report.table(doc["cases"]))
    if not args.calibrate:
        print(f"\n{doc['summary']}")
    for path in write(doc, out):  # first: whatever the calibration gives, the A/A's evidence is kept
        print(f"cnn-bench ab: wrote {path}")
    if args.calibrate:
        entry, why = calibration_of(doc, args.baselines)
        if entry is None:
            print(f"cnn-bench ab: error: {why}; nothing recorded in {args.baselines}", file=sys.stderr)
            return 1
        record_calibration(args.baselines, doc["device_class"], entry)
        print(
            f"\ncnn-bench ab: A/A threshold {entry['threshold']:.1%} for {doc['device_class']} recorded in {args.baselines}"
        )
        return 0
    return 1 if doc["regressions"] else 0


def calibration_of(doc: dict, path: str) -> tuple[dict | None, str | None]:
    """The baselines entry an A/A run records, or None and why none can be (one line): a case with no
    result, no case with an interval, or a threshold the baselines file would refuse (too noisy)."""
    from bench.ab import verdict
    from bench.errors import BaselinesError

    failed = [k for k, r in doc["cases"].items() if verdict.errored(r)]
    if failed or not doc["cases"] or doc["device_class"] is None:
        return None, f"the A/A run has no result for {', '.join(failed) or 'any case'}: it cannot calibrate"
    entry = calibration_entry(doc, verdict.calibration(doc["cases"]))
    try:
        baselines.check_calibrations({baselines.calibration_key(doc["device_class"], entry): entry}, path)
    except BaselinesError:
        return None, (
            f"the A/A run is too noisy to calibrate (its intervals reach {entry['threshold']:.1%} from 1; a threshold"
            " must be below 100 %): more --pairs or a quieter machine"
        )
    return entry, None


def run_accuracy(args: argparse.Namespace, base, head) -> int:
    """``--recipe``: the paired top-1 A/B (``bench.ab.accuracy``); exit 1 when HEAD is lower (or a run failed)."""
    from bench.ab import accuracy, runner
    from bench.io import write_json
    from bench.training.recipes import RECIPES

    if args.recipe not in RECIPES:
        raise UsageError(f"--recipe {args.recipe!r} is not a recipe; valid: {', '.join(sorted(RECIPES))}")
    if args.seeds < 2:
        raise UsageError(f"--seeds {args.seeds} is invalid; a paired test needs >= 2")
    if args.budget:
        from bench.training.budget import Budget

        Budget.parse(args.budget, full=RECIPES[args.recipe].full())
    check_outputs(args, ("ab-accuracy.json",))
    repo = check_repo(args)
    accuracy.check_workdir(out_dir(args) / "runs")
    out = out_dir(args, claim=True)
    train_args = ["--budget", args.budget] if args.budget else []
    with runner.prepared_sides(base, head, repo) as prepared:
        doc = accuracy.run(prepared, args.recipe, args.seeds, train_args, out / "runs")
        doc["sides"] = {p.label: p.environment for p in prepared}
    print(f"\n{args.recipe}, seeds 0..{args.seeds - 1}: BASE {base.text} vs HEAD {head.text}")
    if doc["verdict"] == accuracy.ERROR:
        print(f"error: {doc['error']}")
    else:
        print(f"top-1 HEAD - BASE per seed: {', '.join(f'{d:+.2f}' for d in doc['diffs'])} points")
        print(
            f"mean {doc['mean']:+.2f} points, paired t-test p={doc['p']:.3g}: {doc['verdict']} (tolerance {doc['tolerance_pt']} points)"
        )
    print(f"cnn-bench ab: wrote {write_json(out / 'ab-accuracy.json', doc)}")
    return 1 if doc["verdict"] in (accuracy.LOWER, accuracy.ERROR) else 0


def record_calibration(path: str, device_class: str, entry: dict) -> None:
    """Store ``entry`` under its design's key (``calibration_key``), in place of any earlier entry of
    this device class and design (under the device class alone, as written before the key named the
    design), and leave the device class's other designs as they are."""
    key = baselines.calibration_key(device_class, entry)

    def make(data: dict) -> dict:
        same = [
            k
            for k, e in data["ab_calibration"].items()
            if k != key
            and baselines.calibration_device_class(k) == device_class
            and baselines.calibration_key(device_class, e) == key
        ]
        return {"ab_calibration": {key: entry, **dict.fromkeys(same)}}

    baselines.update_sections(path, make)


def calibration_entry(doc: dict, threshold: float) -> dict:
    """baselines.json's record of one A/A run: the threshold and the intervals behind it."""
    loads = [p[x]["loadavg_before"][0] for p in doc["pairs"] for x in ("BASE", "HEAD")]
    return {
        "threshold": threshold,
        "pairs": doc["settings"]["pairs"],
        "interleave": doc["interleave"],  # compare takes only one measured between processes (processes)
        "throughput_args": list(doc["settings"]["throughput_args"]),
        "cases": {k: {f: r.get(f) for f in ("ratio", "lo", "hi", "sd_log")} for k, r in doc["cases"].items()},
        "loadavg": [min(loads), max(loads)],
        "recorded": doc["datetime"],
        "commit": doc["sides"]["BASE"]["commit"],
    }
