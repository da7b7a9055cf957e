"""``python -m bench COMMAND``: the harness's one command-line entry point.

Each command lives in its own module, ``bench.commands.<command>``, which provides
``add_arguments(parser)`` and ``run(args) -> int``; a module is imported only when its command runs. User mistakes
(``UsageError``, a bad model name or builder argument) print one line and exit 2; a worker of a
multi-worker job that lost another (``WorkerLost``) prints one line and exits 3.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# command -> one-line help; each is ``bench.commands.<command>`` with ``add_arguments(parser)`` and ``run(args)``
COMMANDS = {
    "models": "print the model table (name, source, input, parameters, MACs)",
    "throughput": "measure training/inference images per second (runs the pytest-benchmark suite)",
    "compare": "compare a saved throughput run with baselines.json; exit 1 on a regression",
    "merge": "join the shards of a sharded throughput sweep (throughput --shard i/N) into one result file",
    "train": "train a recipe under a budget and write a result JSON",
    "gate": "compare training results with baselines.json; exit 1 on a regression",
    "fingerprint": "what a training run would be produced by (recipe, model, data, versions); --check it against its baseline",
    "report": "images/s per model and precision (or --by backend) from saved throughput results: table and PNG",
    "baselines": "show or update baselines.json from result files",
    "ab": "A/B throughput of two sides (git refs, package versions, backends) in alternating processes; exit 1 on a confirmed regression",
    "bisect": "find the first commit (or package version) that made throughput regress, by A/B against the good end",
}


class _Parser(argparse.ArgumentParser):
    """argparse's own mistakes (an unknown flag, ``--seed x``) as one line and exit 2, like the rest."""

    def error(self, message: str):
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """The parser for ``argv``: every command listed, only the chosen one's options added (so only its
    module is imported, and TensorFlow only when needed)."""
    parser = _Parser(prog="python -m bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            _command(name).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    try:
        return _command(args.command).run(args)
    except Exception as e:
        from bench.errors import WorkerLost

        if isinstance(e, WorkerLost):
            from bench.cluster import exit_lost

            exit_lost(str(e))  # ends the process: the engines' shutdown would wait for the lost worker
        if not isinstance(e, _user_errors()):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _command(name: str):
    return importlib.import_module(f"bench.commands.{name}")


def _user_errors() -> tuple[type[Exception], ...]:
    """The exception types that are user mistakes. The model registry's are looked up only if it
    was imported, so commands that need no model never import TensorFlow."""
    from bench.errors import UsageError

    registry = sys.modules.get("models.registry")
    return (UsageError,) + ((registry.UnknownModelError, registry.ModelArgumentError) if registry else ())


if __name__ == "__main__":
    sys.exit(main())
