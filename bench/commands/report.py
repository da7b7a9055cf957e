"""``python -m bench report FILES --out PNG``: plot images/s per model and precision from saved throughput results."""

from __future__ import annotations

import argparse

from bench.throughput.report import plot


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", nargs="+", help="saved throughput JSON files")
    parser.add_argument("--out", default="results/throughput.png", help="PNG to write (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    from bench.regression.throughput import load_result

    print(f"wrote {plot([load_result(p) for p in args.results], args.out)}")
    return 0
