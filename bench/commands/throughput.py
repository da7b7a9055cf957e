"""``python -m bench throughput``: images per second of each model, trained and inferred, per device.

This runs the pytest-benchmark suite in ``bench/throughput/suite``, so pytest-benchmark's storage,
``--benchmark-compare``, histograms and JSON work as usual; give its options after ``--``:
``python -m bench throughput --device gpu --models 'resnet*' -- --benchmark-autosave``. The plan is
resolved and the device opened here, once; a bad option or a missing device ends the command with
one line before pytest starts. Each model's cases run in a child process of their own
(``--isolate``, ``bench.throughput.isolate``), so that a crash (the kernel's OOM killer, an abort in
a kernel) is that case's error and the sweep goes on; with ``--isolate none`` the sweep runs here,
and ``--backend tensorflow,jax,torch`` runs one process per backend (``bench.throughput.fanout``).
Either way one result file holds every backend's cases. ``--shard i/N`` runs the i-th of N
cost-balanced shares of the plan (``bench.throughput.shard``); ``python -m bench merge`` joins them.
``--cluster`` (or ``TF_CONFIG``) makes this process one worker of a multi-host job (in this
process, not isolated), and ``--workers N`` times N workers on this machine against one
(``bench.throughput.workers``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from bench.errors import UsageError
from bench.throughput.plan import NOTHING_MEASURED, OPTIONS, SUITE_DIR, backend_list, check_pytest_args, dest, resolve


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for flag, kwargs in OPTIONS.items():
        parser.add_argument(flag, dest=dest(flag), **kwargs)
    parser.add_argument(
        "pytest_args",
        nargs=argparse.REMAINDER,  # with the '--' itself, so that a word before it is told apart (``_pytest_args``)
        metavar="-- PYTEST_ARGS",
        help="after --: options for pytest and pytest-benchmark (e.g. --benchmark-autosave, --benchmark-compare)",
    )


def run(args: argparse.Namespace) -> int:
    import pytest

    from bench import backends
    from bench.throughput import fanout, isolate
    from bench.throughput import workers as workers_mod
    from bench.throughput.plugin import ThroughputPlugin, open_session

    opts = {dest(flag): getattr(args, dest(flag)) for flag in OPTIONS}
    args.pytest_args = _pytest_args(args.pytest_args)
    check_pytest_args(args.pytest_args)  # before any child starts: pytest's usage errors as one line
    chosen = backend_list(opts["backend"])
    if opts["workers"] > 1:
        if backends.running() is None:
            os.environ["KERAS_BACKEND"] = (
                backends.planning()
            )  # this process only checks the plan and starts the workers
        return workers_mod.run(resolve(opts), opts, list(args.pytest_args))
    # a worker of a multi-worker job runs its cases here: its peers wait for it in every collective
    in_process = opts["isolate"] == "none" or workers_mod.job_of(opts) is not None
    if in_process and len(chosen) == 1 and backends.running() in (None, chosen[0]):
        backends.activate(chosen[0])  # before Keras is imported: this process runs that backend
        plan = fanout.assigned(resolve(opts))
        _say_shard(plan)
        session = open_session(plan)
        if not session.placement.chief:  # a job's worker other than 0: the chief writes the result
            plan = dataclasses.replace(plan, bench_out="", plot=None)
        plugin = ThroughputPlugin(plan, session)
        status = pytest.main([str(SUITE_DIR), *args.pytest_args], plugins=[plugin])
        if status == pytest.ExitCode.INTERRUPTED:  # pytest's 2 is our usage error: Ctrl-C is 130, as for train
            print("interrupted: the result file holds the finished cases, marked partial", file=sys.stderr)
            return 130
        return _measured(plugin, int(status))
    if backends.running() is None:
        os.environ["KERAS_BACKEND"] = backends.planning()  # this process only checks the plan
    plan = resolve(opts)
    _say_shard(plan)
    if plan.isolate != "none":
        return isolate.run(plan, list(args.pytest_args))
    return fanout.run(plan, opts, list(args.pytest_args))


def _pytest_args(words: list[str]) -> list[str]:
    """pytest's arguments: the words after ``--``. A word before it is a stray positional (a model
    named without ``--models``): one line, rather than a pytest error from a child."""
    if words and words[0] != "--":
        raise UsageError(
            f"unexpected argument {words[0]!r}: name models with --models {words[0]}, "
            "and give pytest's own arguments after --"
        )
    return words[1:]


def _measured(plugin, status: int) -> int:
    """An in-process run's status: 1, with a line, where pytest passed but nothing was recorded, or
    planned cases were left unmeasured (``-k``: the table names them). A worker other than the chief
    writes nothing and is judged by its pytest status."""
    from bench.throughput import summary

    if status != 0 or not plugin.session.placement.chief:
        return status
    if plugin.output is None:
        print(f"cnn-bench: {NOTHING_MEASURED}", file=sys.stderr)
        return 1
    return 1 if summary.unmeasured(plugin.output) else 0


def _say_shard(plan) -> None:
    """With --shard: which share of which plan this runner measures; an empty shard says it has nothing to do."""
    s = plan.shard
    if s is None:
        return
    share = f"{len(plan.cases)} of {len(s.plan_cases)} cases"
    if plan.cases:
        print(f"cnn-bench: shard {s.label} of plan {s.plan}: {share}, {s.cost / s.plan_cost:.0%} of its estimated cost")
    else:
        print(
            f"cnn-bench: shard {s.label} of plan {s.plan}: {share} (more shards than cases); nothing to measure, "
            "its result file records an empty shard for python -m bench merge"
        )
