"""``python -m bench report FILES [--by precision|backend] --out PNG``: images/s from saved throughput results.

``--by precision`` (the default) prints each file's run table (``bench.throughput.summary.table``)
and plots images/s per model and precision. ``--by backend`` prints a table of images/s per model x
backend x precision with the ratio to tensorflow, and plots it; give it one file per backend, or a
merged one. Both name the planned cases a partial (interrupted) run did not measure. A file that
``compare`` would refuse, one run given twice, or an empty ``--out`` is one line and exit 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.errors import UsageError
from bench.io import distinct_outputs, png_file

BY = ("precision", "backend")
DEFAULT_OUT = {"precision": "results/throughput.png", "backend": "results/throughput-by-backend.png"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", nargs="+", help="saved throughput JSON files")
    # checked in run(), not by argparse's choices=, so that a bad value is one line of error and exit 2
    parser.add_argument(
        "--by",
        default="precision",
        metavar="{precision,backend}",
        help="compare precisions or backends; both print a table and write a PNG (default: %(default)s)",
    )
    parser.add_argument(
        "--out",
        default=None,
        help=f"PNG to write (default: {DEFAULT_OUT['precision']}, or {DEFAULT_OUT['backend']} with --by backend)",
    )


def run(args: argparse.Namespace) -> int:
    from bench.throughput import report, summary

    if args.by not in BY:
        raise UsageError(f"--by {args.by!r} is invalid; valid: {', '.join(BY)}")
    if args.out is not None and not args.out.strip():
        raise UsageError(f"--out {args.out!r} is invalid; expected a PNG path, or leave --out out for the default")
    out = args.out or DEFAULT_OUT[args.by]
    distinct_outputs([("--out", out)], args.results)
    out = png_file("--out", out)
    docs = report.load(args.results)
    runs = [Path(p).name if len({Path(q).name for q in args.results}) == len(args.results) else p for p in args.results]
    if args.by == "backend":
        print(report.backend_table(docs, runs))
    else:
        for path, doc in zip(args.results, docs):
            print(*([f"{path}:"] if len(docs) > 1 else []), summary.table(doc), sep="\n")
    for path, doc in zip(args.results, docs):
        if note := report.partial_note(doc, path):
            print(note)
    plot = report.plot_backends if args.by == "backend" else report.plot
    print(f"wrote {plot(docs, out, runs)}")
    return 0
