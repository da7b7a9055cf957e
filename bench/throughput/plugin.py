"""The throughput suite's pytest plugin: the resolved plan and the open device session, handed to pytest.

``python -m bench throughput`` resolves the plan and opens the device session once, then runs
``pytest.main([suite], plugins=[ThroughputPlugin(plan, session)])``. Under plain ``pytest
bench/throughput/suite`` the suite's conftest builds the same plugin from its command-line options
(``OPTIONS``). Either way the plugin parametrises the suite with the plan's cases, gives the tests
``plan`` and ``device_session`` fixtures, adds the harness's environment and section to
pytest-benchmark's JSON, and writes that JSON atomically to ``--bench-out``.
"""

from __future__ import annotations

import dataclasses
import os

import pytest

from bench.errors import UsageError
from bench.results import THROUGHPUT_SCHEMA
from bench.throughput.measure import DeviceSession
from bench.throughput.plan import OPTIONS, ThroughputPlan, dest, out_file, plot_file, resolve


def add_options(parser) -> None:
    """The suite's options on pytest's command line (``pytest_addoption``)."""
    group = parser.getgroup("cnn-bench", "throughput suite (bench/throughput/suite); lists are comma-separated")
    for flag, kwargs in OPTIONS.items():
        group.addoption(flag, dest=dest(flag), **kwargs)


def from_options(config) -> ThroughputPlugin:
    """A plugin for a plain ``pytest`` run: the plan from its options, the device session opened.
    A bad option or a missing device is a ``pytest.UsageError`` (one line, no benchmark started)."""
    try:
        plan = resolve({dest(flag): config.getoption(dest(flag)) for flag in OPTIONS})
        if len(plan.backends) != 1:
            raise UsageError(
                f"--backend {','.join(plan.backends)}: a pytest process runs one Keras backend; "
                "python -m bench throughput runs each in its own process and merges the results"
            )
        plan = dataclasses.replace(plan, isolate="none")  # a plain pytest run is one process
        return ThroughputPlugin(plan, open_session(plan))
    except (UsageError, KeyError) as e:  # KeyError: an unknown model name (UnknownModelError) says which
        raise pytest.UsageError(str(e)) from None


def open_session(plan: ThroughputPlan) -> DeviceSession:
    data_options = {"archive": plan.data_archive} if plan.data_archive else {}
    (backend,) = plan.backends
    return DeviceSession.open(
        plan.device,
        backend=backend,
        tpu=plan.tpu,
        cpu_replicas=plan.cpu_replicas,
        seed=plan.seed,
        data_options=data_options,
        cluster=plan.cluster,
    )


class ThroughputPlugin:
    """pytest hooks and fixtures for one throughput run of ``plan`` on ``session``."""

    def __init__(self, plan: ThroughputPlan, session: DeviceSession):
        self.plan = plan
        self.session = session
        self.written: list[str] = []  # the lines saying what was written, for the end of the run
        self.output: dict | None = None  # the result document, once written
        self.file = out_file(plan.bench_out, plan.device)  # one file for every write of this run
        self._config = None

    @property
    def path(self):
        """The result file (the one written, once written), or None for ``--bench-out ''``."""
        return None if self.file is None else self.file.path

    def pytest_generate_tests(self, metafunc):
        if "case" in metafunc.fixturenames:
            cases = self.plan.cases
            # plain dicts, so that pytest-benchmark's JSON records them as params
            metafunc.parametrize("case", [c.to_dict() for c in cases], ids=[c.id for c in cases])

    def pytest_sessionstart(self, session):
        """pytest-benchmark's table of seconds per round only with ``--pytest-table``: ours ends the run."""
        self._config = session.config
        bs = getattr(session.config, "_benchmarksession", None)
        if bs is not None and not self.plan.pytest_table:
            bs.quiet = True

    @pytest.fixture(scope="session", name="plan")
    def plan_fixture(self):
        return self.plan

    @pytest.fixture(scope="session", name="device_session")
    def device_session_fixture(self):
        return self.session

    # --- pytest-benchmark's JSON: our environment and our section ------------------------------

    def pytest_benchmark_update_machine_info(self, config, machine_info):
        from bench.environment import machine_info as ours

        mine = ours()
        machine_info.update({k: v for k, v in mine.items() if k not in ("cpu", "node", "machine", "release", "system")})
        machine_info["cpu"] = {**machine_info.get("cpu", {}), "count": mine["cpu"]["count"]}
        machine_info["device_class"] = self.session.device_class

    def pytest_benchmark_update_commit_info(self, config, commit_info):
        from bench.environment import commit_info as ours

        commit_info.update({k: v for k, v in ours().items() if v is not None})

    def pytest_benchmark_update_json(self, config, benchmarks, output_json):
        from bench.environment import machine_line

        output_json["harness"] = {
            "kind": "throughput",
            "schema": THROUGHPUT_SCHEMA,
            "produced_by": machine_line(output_json.get("machine_info", {})),
            "options": self.plan.to_dict(),
            **self.session.record(),
            "matmul_reference": dict(self.session.references),
            "loadavg_end": list(os.getloadavg()),
        }
        if self.plan.shard is not None:  # --shard i/N: which share of which plan (python -m bench merge checks it)
            output_json["harness"]["shard"] = self.plan.shard.record()
        output_json["errors"] = list(self.session.errors)

    def pytest_runtest_logfinish(self, nodeid, location):
        """After each case, the result file so far, marked partial: a process the kernel kills (out
        of memory) keeps the cases it finished."""
        if self._config is not None and self.file is not None:
            self._write(self._config, partial=True)

    def pytest_sessionfinish(self, session, exitstatus):
        """Write the result file ourselves (atomically), whatever pytest-benchmark was asked to save;
        after Ctrl-C it holds the finished cases and stays marked partial."""
        if self._write(session.config, partial=exitstatus == pytest.ExitCode.INTERRUPTED):
            if self.path is not None:
                self.written.append(f"cnn-bench: wrote {self.path}")
            if self.plan.plot:
                from bench.throughput.summary import plot_line

                self.written.append(plot_line(self.output, plot_file(self.plan, self.file)))

    def _write(self, config, *, partial: bool) -> bool:
        """pytest-benchmark's JSON of the cases so far, with our sections, written to ``self.path``
        (when there is one) and kept as ``self.output``; False when there is nothing to write."""
        bs = getattr(config, "_benchmarksession", None)
        if bs is None or bs.disabled or bs.skip:
            return False
        if self.plan.cases and not ([b for b in bs.benchmarks if b] or self.session.errors):
            return False  # nothing finished yet; a plan with no cases (an empty shard) writes that it had none
        machine_info = bs.get_machine_info()
        commit_info = config.hook.pytest_benchmark_generate_commit_info(config=config)
        config.hook.pytest_benchmark_update_commit_info(config=config, commit_info=commit_info)
        output = config.hook.pytest_benchmark_generate_json(
            config=config,
            benchmarks=bs.benchmarks,
            include_data=True,
            machine_info=machine_info,
            commit_info=commit_info,
        )
        config.hook.pytest_benchmark_update_json(config=config, benchmarks=bs.benchmarks, output_json=output)
        if partial:
            output["partial"] = output["harness"]["partial"] = True
        self.output = output
        if self.file is not None:
            self.file.write_json(output)
        return True

    def pytest_terminal_summary(self, terminalreporter, config):
        if self.output is not None:
            from bench.throughput import summary

            terminalreporter.write_line("")
            terminalreporter.write_line(summary.table(self.output, summary.load_baselines()))
        for line in self.written:
            terminalreporter.write_line(line)
