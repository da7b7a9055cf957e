"""``python -m bench models``: the model zoo as a table or JSON (name, source, input, parameters, MACs).

The models are built on Keras's planning backend (``bench.backends.planning``: numpy, no framework)
unless Keras already runs here: counts do not depend on the backend, and a mistyped name is one line
before any framework is imported (the model registry imports Keras)."""

from __future__ import annotations

import argparse
import json
import os

from bench import backends


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "patterns", nargs="*", default=["*"], help="model names or globs, or comma lists of them (default: all)"
    )
    parser.add_argument("--format", choices=["table", "json", "markdown"], default="table", help="output format")


def run(args: argparse.Namespace) -> int:
    if backends.running() is None:
        os.environ["KERAS_BACKEND"] = backends.planning()
    import models
    from models import registry
    from models.catalog import summary

    names = models.list_models(registry.select(",".join(args.patterns)))  # checked as --models is; zoo order
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
