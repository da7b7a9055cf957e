"""``python -m bench gate RESULTS...``: training results against baselines.json's accuracy entries; exit 1 on any
regression, unexpected improvement, changed fingerprint, error, NaN or missing baseline. The rule is
``bench.regression.accuracy``'s."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.errors import UsageError
from bench.io import distinct_outputs, writable_file, write_json
from bench.regression import baselines
from bench.regression.accuracy import gate
from bench.regression.rules import exit_code, format_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", nargs="+", help="training result JSON files or directories holding them")
    parser.add_argument(
        "--baselines", default=str(baselines.DEFAULT_PATH), help="baselines file (default: %(default)s)"
    )
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the findings as JSON")
    parser.add_argument(
        "--allow-improvement",
        action="store_true",
        help="pass a gain beyond the band (default: two-sided, an unexplained gain fails as 'unexpected improvement')",
    )


def run(args: argparse.Namespace) -> int:
    if args.json is not None:
        if not args.json:
            raise UsageError("--json '' names no file; expected a file name")
        writable_file("--json", args.json)  # before the results are read
        distinct_outputs([("--json", args.json)], [*_inputs(args.results), args.baselines])
    findings = gate(args.results, args.baselines, allow_improvement=args.allow_improvement)
    if not findings:
        print(f"gate: no training results found in {' '.join(args.results)}: FAIL")
        return 1
    print(format_table(findings))
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.verdict.value] = counts.get(f.verdict.value, 0) + 1
    code = exit_code(findings)
    print(f"gate: {', '.join(f'{n} {v}' for v, n in sorted(counts.items()))}: {'FAIL' if code else 'PASS'}")
    if args.json is not None:
        write_json(args.json, {"findings": [f.to_dict() for f in findings], "exit_code": code})
    return code


def _inputs(paths: list[str]) -> list[str | Path]:
    """The files the gate reads: each file named, and the JSON files in each directory named."""
    found: list[str | Path] = []
    for p in paths:
        found += sorted(Path(p).glob("*.json")) if p and Path(p).is_dir() else [p]
    return found
