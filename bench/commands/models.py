"""``python -m bench models``: the model zoo as a table or JSON (name, source, input, parameters, MACs).

The models are built on Keras's planning backend (``bench.backends.planning``: numpy, no framework)
unless Keras already runs here: counts do not depend on the backend, and a mistyped name is one line
before any framework is imported (the model registry imports Keras)."""

from __future__ import annotations

import argparse
import json
import os

from bench import backends
from bench.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("patterns", nargs="*", default=["*"], help="model names or globs (default: all)")
    parser.add_argument("--format", choices=["table", "json", "markdown"], default="table", help="output format")


def run(args: argparse.Namespace) -> int:
    if backends.running() is None:
        os.environ["KERAS_BACKEND"] = backends.planning()
    import models
    from models.catalog import summary

    for pattern in args.patterns:
        if not any(c in pattern for c in "*?["):
            models.get_spec(pattern)  # an exact name that is not registered: error with close matches
        elif not models.list_models(pattern):
            raise UsageError(f"no model matches {pattern!r}; see 'python -m bench models' for the names")
    names = models.list_models(args.patterns)
    rows = [summary(n) for n in names]
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    header = ("name", "source", "dataset", "input", "classes", "params", "MACs")
    table = [header] + [
        (
            r["name"],
            r["source"],
            r["dataset"],
            "x".join(map(str, r["input_shape"])),
            str(r["classes"]),
            f"{r['params']:,}",
            f"{r['macs'] / 1e9:.3f} G",
        )
        for r in rows
    ]
    if args.format == "markdown":
        print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
        print("\n".join("| " + " | ".join(r) + " |" for r in table[1:]))
        return 0
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for i, r in enumerate(table):
        print("  ".join(c.rjust(w) if j >= 4 else c.ljust(w) for j, (c, w) in enumerate(zip(r, widths))).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    return 0
