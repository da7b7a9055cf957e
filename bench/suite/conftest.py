"""The throughput suite's options, device session and result file.

Options come from ``bench.throughput.OPTIONS`` (shared with ``python -m bench throughput``). A bad
option or a device that is not there stops the run with one line before any benchmark starts.
After the run, the pytest-benchmark JSON, with the harness's own section (resolved options,
device, matmul references, errored cases), is written atomically to ``--bench-out``.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from bench import throughput  # noqa: E402
from bench.errors import UsageError  # noqa: E402

PLAN = pytest.StashKey()
SESSION = pytest.StashKey()
WRITTEN = pytest.StashKey()
RESULT_SCHEMA = 1


def pytest_addoption(parser):
    group = parser.getgroup("cnn-bench", "throughput suite (bench/suite); lists are comma-separated")
    for flag, kwargs in throughput.OPTIONS.items():
        group.addoption(flag, dest=throughput.dest(flag), **kwargs)


def pytest_configure(config):
    if config.option.help:
        return
    try:
        config.stash[PLAN] = throughput.resolve({throughput.dest(f): config.getoption(throughput.dest(f)) for f in throughput.OPTIONS})
    except UsageError as e:
        raise pytest.UsageError(str(e)) from None
    except KeyError as e:  # an unknown model name (UnknownModelError) says which
        raise pytest.UsageError(str(e)) from None


def pytest_sessionstart(session):
    from bench.measure import DeviceSession

    plan = session.config.stash.get(PLAN, None)
    if plan is None:
        return
    data_options = {"archive": plan.data_archive} if plan.data_archive else {}
    try:
        session.config.stash[SESSION] = DeviceSession.open(plan.device, tpu=plan.tpu, cpu_replicas=plan.cpu_replicas,
                                                           seed=plan.seed, data_options=data_options)
    except UsageError as e:
        raise pytest.UsageError(str(e)) from None


def pytest_generate_tests(metafunc):
    if "case" in metafunc.fixturenames:
        cases = metafunc.config.stash[PLAN].cases
        # plain dicts, so that pytest-benchmark's JSON records them as params
        metafunc.parametrize("case", [c.to_dict() for c in cases], ids=[c.id for c in cases])


@pytest.fixture(scope="session")
def plan(request):
    return request.config.stash[PLAN]


@pytest.fixture(scope="session")
def device_session(request):
    return request.config.stash[SESSION]


# --- pytest-benchmark's JSON: our environment and our section ---------------------------------


def pytest_benchmark_update_machine_info(config, machine_info):
    from bench.environment import machine_info as ours

    mine = ours()
    machine_info.update({k: v for k, v in mine.items() if k not in ("cpu", "node", "machine", "release", "system")})
    machine_info["cpu"] = {**machine_info.get("cpu", {}), "count": mine["cpu"]["count"]}
    session = config.stash.get(SESSION, None)
    if session is not None:
        machine_info["device_class"] = session.device_class


def pytest_benchmark_update_commit_info(config, commit_info):
    from bench.environment import commit_info as ours

    commit_info.update({k: v for k, v in ours().items() if v is not None})


def pytest_benchmark_update_json(config, benchmarks, output_json):
    from bench.environment import describe

    plan = config.stash.get(PLAN, None)
    session = config.stash.get(SESSION, None)
    output_json["harness"] = {
        "kind": "throughput",
        "schema": RESULT_SCHEMA,
        "produced_by": describe(output_json.get("machine_info", {})),
        "options": plan.to_dict() if plan else None,
        **(session.describe() if session else {}),
        "matmul_reference": dict(session.references) if session else {},
        "loadavg_end": list(os.getloadavg()),
    }
    output_json["errors"] = list(session.errors) if session else []


def pytest_sessionfinish(session, exitstatus):
    """Write the result file ourselves (atomically), whatever pytest-benchmark was asked to save."""
    from bench.io import write_json

    config = session.config
    plan = config.stash.get(PLAN, None)
    bs = getattr(config, "_benchmarksession", None)
    dev = config.stash.get(SESSION, None)
    if plan is None or bs is None or dev is None or bs.disabled or bs.skip:
        return
    done = [b for b in bs.benchmarks if b]
    if not done and not dev.errors:
        return
    machine_info = bs.get_machine_info()
    commit_info = config.hook.pytest_benchmark_generate_commit_info(config=config)
    config.hook.pytest_benchmark_update_commit_info(config=config, commit_info=commit_info)
    output = config.hook.pytest_benchmark_generate_json(config=config, benchmarks=bs.benchmarks, include_data=True,
                                                        machine_info=machine_info, commit_info=commit_info)
    config.hook.pytest_benchmark_update_json(config=config, benchmarks=bs.benchmarks, output_json=output)
    written = []
    path = throughput.out_path(plan.bench_out, plan.device)
    if path is not None:
        written.append(write_json(path, output))
    if plan.plot:
        from bench.report import plot

        written.append(plot([output], plan.plot))
    config.stash[WRITTEN] = written


def pytest_terminal_summary(terminalreporter, config):
    for path in config.stash.get(WRITTEN, []):
        terminalreporter.write_line(f"cnn-bench: wrote {path}")
