"""``python -m bench compare SAVED.json``: judge a throughput run against baselines.json; exit 1 on a regression.

The rule is ``bench.regression.throughput``'s; this module only reads the files and prints the table.
"""

from __future__ import annotations

import argparse

from bench.errors import UsageError
from bench.regression import baselines, rules
from bench.regression.throughput import (
    between_run_calibrations,
    judge_all,
    load_result,
    results,
    unmeasured,
    validate_entries,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "results",
        nargs="+",
        help="saved throughput JSON files (python -m bench throughput or pytest bench/throughput/suite)",
    )
    parser.add_argument(
        "--baselines", default=str(baselines.DEFAULT_PATH), help="baselines file (default: %(default)s)"
    )
    parser.add_argument("--tolerance", default=None, help="override every entry's rule, e.g. 'throughput:-10%%'")
    parser.add_argument(
        "--alpha",
        type=float,
        default=rules.ALPHA,
        help=f"one-sided significance level, {rules.ALPHA_RANGE[0]:g} <= alpha < {rules.ALPHA_RANGE[1]:g} (default: %(default)s)",
    )
    parser.add_argument(
        "--device-class", default=None, help="judge against this device class's baselines instead of the run's own"
    )


def run(args: argparse.Namespace) -> int:
    low, high = rules.ALPHA_RANGE
    if not low <= args.alpha < high:  # NaN too
        raise UsageError(f"--alpha {args.alpha:g} is invalid; expected {low:g} <= alpha < {high:g}")
    if args.device_class is not None and (not args.device_class.strip() or "/" in args.device_class):
        raise UsageError(
            f"--device-class {args.device_class!r} is invalid; expected a device class, e.g. 'cpu:AMD EPYC x2'"
        )
    data = baselines.load(args.baselines)
    base = validate_entries(data["throughput"], args.baselines)
    calibration = between_run_calibrations(data["ab_calibration"])
    current = []
    for path in args.results:
        doc = load_result(path)
        current += results(doc, device_class=args.device_class) + unmeasured(doc, device_class=args.device_class)
    findings = judge_all(current, base, rule_override=args.tolerance, alpha=args.alpha, calibration=calibration)
    print(rules.format_table(findings))
    code = rules.exit_code(findings)
    failed = sum(f.failed for f in findings)
    print(f"\n{len(findings)} benchmark(s), {failed} failing: {'FAIL' if code else 'OK'}")
    return code
