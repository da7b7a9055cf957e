"""``python -m bench throughput``: images per second of each model, trained and inferred, per device.

This runs the pytest-benchmark suite in ``bench/throughput/suite``, so pytest-benchmark's storage,
``--benchmark-compare``, histograms and JSON work as usual; give its options after ``--``:
``python -m bench throughput --device gpu --models 'resnet*' -- --benchmark-autosave``. The plan is
resolved and the device opened here, once; a bad option or a missing device ends the command with
one line before pytest starts. ``--backend tensorflow,jax,torch`` runs one process per backend
(``bench.throughput.fanout``) and merges their results into one file. ``--cluster`` (or ``TF_CONFIG``)
makes this process one worker of a multi-host job, and ``--workers N`` times N workers on this
machine against one (``bench.throughput.workers``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from bench.throughput.plan import OPTIONS, SUITE_DIR, backend_list, dest, resolve


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for flag, kwargs in OPTIONS.items():
        parser.add_argument(flag, dest=dest(flag), **kwargs)
    parser.add_argument(
        "pytest_args",
        nargs="*",
        metavar="-- PYTEST_ARGS",
        help="after --: options for pytest and pytest-benchmark (e.g. --benchmark-autosave, --benchmark-compare)",
    )


def run(args: argparse.Namespace) -> int:
    import pytest

    from bench import backends
    from bench.throughput import fanout
    from bench.throughput.plugin import ThroughputPlugin, open_session

    opts = {dest(flag): getattr(args, dest(flag)) for flag in OPTIONS}
    chosen = backend_list(opts["backend"])
    if opts["workers"] > 1:
        from bench.throughput import workers

        if backends.running() is None:
            os.environ["KERAS_BACKEND"] = "numpy"  # this process only checks the plan and starts the workers
        return workers.run(resolve(opts), opts, list(args.pytest_args))
    if len(chosen) == 1 and backends.running() in (None, chosen[0]):
        backends.activate(chosen[0])  # before Keras is imported: this process runs that backend
        plan = resolve(opts)
        session = open_session(plan)
        if not session.placement.chief:  # a job's worker other than 0: the chief writes the result
            plan = dataclasses.replace(plan, bench_out="", plot=None)
        status = pytest.main([str(SUITE_DIR), *args.pytest_args], plugins=[ThroughputPlugin(plan, session)])
        if status == pytest.ExitCode.INTERRUPTED:  # pytest's 2 is our usage error: Ctrl-C is 130, as for train
            print("interrupted: the result file holds the finished cases, marked partial", file=sys.stderr)
            return 130
        return int(status)
    if backends.running() is None:
        os.environ["KERAS_BACKEND"] = "numpy"  # this process only checks the plan: no framework needed
    plan = resolve(opts)
    return fanout.run(plan, opts, list(args.pytest_args))
