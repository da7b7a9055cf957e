"""``python -m bench COMMAND``: the harness's one command-line entry point.

Each command lives in its own module, which provides ``add_arguments(parser)`` and
``run(args) -> int``; modules are imported only when their command runs. User mistakes
(``UsageError``, a bad model name or builder argument) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

COMMANDS = {
    "models": ("bench.zoo", "print the model table (name, source, input, parameters, MACs)"),
    "throughput": ("bench.throughput", "measure training/inference images per second (runs the pytest-benchmark suite)"),
    "compare": ("bench.compare", "compare a saved throughput run with baselines.json; exit 1 on a regression"),
    "train": ("bench.train", "train a recipe under a budget and write a result JSON"),
    "gate": ("bench.accuracy", "compare training results with baselines.json; exit 1 on a regression"),
    "report": ("bench.report", "plot images/s per model and precision from saved throughput results (PNG)"),
    "baselines": ("bench.baselines_cli", "show or update baselines.json from result files"),
}


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    argv = sys.argv[1:] if argv is None else argv
    # Only the chosen command's module is imported (and so TensorFlow only when needed).
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            importlib.import_module(module).add_arguments(p)
    args = parser.parse_args(argv)
    try:
        return importlib.import_module(COMMANDS[args.command][0]).run(args)
    except Exception as e:
        if not isinstance(e, _user_errors()):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _user_errors() -> tuple[type[Exception], ...]:
    """The exception types that are user mistakes. The model registry's are looked up only if it
    was imported, so commands that need no model never import TensorFlow."""
    from bench.errors import UsageError

    registry = sys.modules.get("models.registry")
    return (UsageError,) + ((registry.UnknownModelError, registry.ModelArgumentError) if registry else ())


if __name__ == "__main__":
    sys.exit(main())
