"""``python -m bench report FILES [--by precision|backend] --out PNG``: images/s from saved throughput results.

``--by precision`` (the default) plots images/s per model and precision. ``--by backend`` prints a
table of images/s per model x backend x precision with the ratio to tensorflow, and plots it; give
it one file per backend, or a merged one.
"""

from __future__ import annotations

import argparse

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
        help="compare precisions (plot) or backends (table and plot) (default: %(default)s)",
    )
    parser.add_argument(
        "--out",
        default=None,
        help=f"PNG to write (default: {DEFAULT_OUT['precision']}, or {DEFAULT_OUT['backend']} with --by backend)",
    )


def run(args: argparse.Namespace) -> int:
    from bench.regression.throughput import load_result
    from bench.throughput import report

    if args.by not in BY:
        raise UsageError(f"--by {args.by!r} is invalid; valid: {', '.join(BY)}")
    distinct_outputs([("--out", args.out or DEFAULT_OUT[args.by])], args.results)
    out = png_file("--out", args.out or DEFAULT_OUT[args.by])
    docs = [load_result(p) for p in args.results]
    if args.by == "backend":
        print(report.backend_table(docs))
        print(f"wrote {report.plot_backends(docs, out)}")
    else:
        print(f"wrote {report.plot(docs, out)}")
    return 0
