"""Throughput of every selected model x mode x batch size x precision x XLA x data (see conftest).

The cases are generated from the model registry by ``--models`` (names or globs), so a newly
registered model can be benchmarked the moment it exists. Timing, statistics and evidence are
``bench.throughput.measure``'s; this file only hands it pytest-benchmark's fixture.
"""

import pytest

from bench.throughput.measure import MeasurementError, measure
from bench.throughput.workload import Case


def test_throughput(benchmark, case, plan, device_session):
    case = Case(**case)
    try:
        measure(
            benchmark,
            case,
            device_session,
            rounds=plan.rounds,
            warmup_rounds=plan.warmup_rounds,
            max_rounds=plan.max_rounds,
            max_cv=plan.max_cv,
            round_seconds=plan.round_seconds,
            steps=plan.steps,
        )
    except MeasurementError as e:
        pytest.fail(f"{case.id}: {e}", pytrace=False)
