"""The throughput suite end to end (a real CPU benchmark of a small model, on two logical CPUs
mirrored), the plugin the CLI hands pytest, and the out-of-memory path."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.throughput.workload import Case

REPO = Path(__file__).resolve().parents[2]
# resnet20 at batch 8, three one-step rounds: the smallest real run of the suite
SMALL_RUN = "--models resnet20 --batch-size 8 --rounds 3 --warmup-rounds 0 --max-rounds 4 --steps 1".split()
EXTRA_FIELDS = (
    "images_per_s",
    "cv",
    "noisy",
    "rounds",
    "round_seconds",
    "steps_per_round",
    "compile_s",
    "macs_per_image",
    "achieved_flops_per_s",
    "matmul_flops_per_s",
    "utilization",
    "peak_memory_bytes",
    "loadavg_start",
    "loadavg_end",
    "device_class",
    "replicas",
)


def test_out_of_memory_is_recorded_and_raised_as_a_measurement_error(monkeypatch):
    import tensorflow as tf

    from bench.throughput import measure, workload

    def oom(*args, **kwargs):
        raise tf.errors.ResourceExhaustedError(
            None, None, "OOM when allocating tensor with shape[65536,16,32,32]\nmore"
        )

    class Fixture:  # the parts of pytest-benchmark's fixture that measure() touches before timing
        extra_info, name, fullname, group = {}, "test_throughput[x]", "suite::test_throughput[x]", None

    from bench.backends import Placement
    from bench.backends import tensorflow as backend

    monkeypatch.setattr(workload, "build", oom)
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    placement = Placement("tensorflow", "cpu", "cpu:test x2", 1, ["CPU:0"], strategy.scope, strategy)
    session = measure.DeviceSession(backend, placement)
    with pytest.raises(measure.MeasurementError, match="out of memory: ResourceExhaustedError: OOM when allocating"):
        measure.measure(Fixture(), Case("resnet20", "train", 65536), session)
    assert session.errors[0]["id"] == "resnet20-train-bs65536-fp32-xla_off-synthetic-tensorflow"
    assert session.errors[0]["error"].count("\n") == 0 and session.errors[0]["device_class"] == "cpu:test x2"
    assert backend.out_of_memory(ValueError("shapes differ")) is None


def test_in_an_ab_pair_the_first_case_compiles_before_the_first_turn_and_no_reference_is_taken(monkeypatch):
    """Every timed step in the process's turn; the first case's compilation beside the other side's
    (before the first turn, when the runner gives none), a later case's in the turn; no matmul reference."""
    import types

    import tensorflow as tf

    from bench.backends import Placement
    from bench.backends import tensorflow as backend
    from bench.throughput import hardware, measure, timing, turns, workload

    events = []

    def build(case, placement, **kwargs):
        events.append(f"build {case.mode}")
        return workload.Workload(case, None, lambda: events.append("step"), lambda out: out, 8, 1, None)

    class Fixture:  # pytest-benchmark's fixture as measure() uses it: setup before every round
        name, fullname, group = "test_throughput[x]", "suite::test_throughput[x]", None

        def __init__(self):
            self.extra_info = {}

        def pedantic(self, target, setup, rounds, warmup_rounds, iterations):
            data = []
            for i in range(warmup_rounds + rounds):
                setup()
                t = timing.time_call(target)
                if i >= warmup_rounds:
                    data.append(t)
            self.stats = types.SimpleNamespace(stats=types.SimpleNamespace(data=data), update=data.append)

    def no_reference(*args, **kwargs):
        raise AssertionError("an A/B process took a matmul reference")

    monkeypatch.setattr(workload, "build", build)
    monkeypatch.setattr(hardware, "matmul_reference", no_reference)
    monkeypatch.setattr(turns, "_state", {"turn": lambda: events.append("turn")})
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    placement = Placement("tensorflow", "cpu", "cpu:test x2", 1, ["CPU:0"], strategy.scope, strategy)
    session = measure.DeviceSession(backend, placement)
    sizes = {"rounds": 2, "warmup_rounds": 1, "max_rounds": 2, "steps": 1}
    extras = [measure.measure(Fixture(), Case("resnet20", mode, 8), session, **sizes) for mode in ("train", "infer")]
    one_case = ["step", "turn", "step", *["turn", "step"] * 3]  # first step, turn, warm step, 3 rounds of one step
    assert events == ["build train", *one_case, "build infer", *one_case]
    assert session.references == {} and all(x["utilization"] is None and x["matmul_reference"] is None for x in extras)
    assert [x["rounds"] for x in extras] == [2, 2]


def test_the_command_resolves_once_and_hands_pytest_the_plugin(monkeypatch):
    """The CLI resolves the plan and opens the device once, then gives pytest the plugin object and
    only the suite's path and the pytest arguments: no option is turned back into text."""
    import pytest as pytest_module

    from bench.__main__ import main
    from bench.throughput import plugin

    opened, calls = [], []
    real_open = plugin.open_session
    monkeypatch.setattr(plugin, "open_session", lambda plan: opened.append(plan) or real_open(plan))
    monkeypatch.setattr(pytest_module, "main", lambda args, plugins: calls.append((args, plugins)) or 0)
    argv = ["throughput", "--models", "resnet2*", "--mode", "infer", "--batch-size", "8", "--isolate", "none"]
    assert main([*argv, "--", "-q"]) == 1  # the stand-in for pytest measured nothing: not a success
    ((args, plugins),) = calls
    assert args[1:] == ["-q"] and args[0].endswith("suite") and len(opened) == 1
    (p,) = plugins
    assert isinstance(p, plugin.ThroughputPlugin) and p.plan is opened[0] and p.session.device_class.startswith("cpu:")
    assert [c.id for c in p.plan.cases] == ["resnet20-infer-bs8-fp32-xla_off-synthetic-tensorflow"]


def run_suite(tmp_path, *args):
    """``python -m bench throughput`` on resnet20 at batch 8, three one-step rounds; the result document."""
    out, pb = tmp_path / "run.json", tmp_path / "pytest-benchmark.json"
    cmd = [
        sys.executable,
        "-m",
        "bench",
        "throughput",
        *SMALL_RUN,
        "--bench-out",
        str(out),
        *args,
        "--",
        "-q",
        "-p",
        "no:cacheprovider",
        "--benchmark-json",
        str(pb),
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert json.loads(pb.read_text())["benchmarks"]  # pytest-benchmark's own JSON is written too
    return json.loads(out.read_text())


def check_extra(x, replicas):
    missing = [f for f in EXTRA_FIELDS if x.get(f) is None]
    assert not missing, (x.get("id"), missing)
    assert x["replicas"] == replicas and x["steps_per_round"] == 1 and 3 <= x["rounds"] <= 4
    # each rate is the batch over its round's time
    assert x["images_per_s"]["samples"] == pytest.approx([8 / t for t in x["round_seconds"]])
    assert x["images_per_s"]["q1"] <= x["images_per_s"]["median"] <= x["images_per_s"]["q3"]
    assert x["compile_s"] > 0 and x["macs_per_image"] > 4e7 and x["utilization"] > 0
    assert x["peak_memory_kind"] == "rss" and x["peak_memory_bytes"] > 0


def check_benchmarks(doc, replicas):
    from bench.regression import throughput as compare

    assert doc["harness"]["kind"] == "throughput" and doc["errors"] == []
    assert doc["harness"]["matmul_reference"]["fp32"][0]["flops_per_s"] > 0
    assert doc["machine_info"]["tensorflow"] and doc["commit_info"]["id"] and "dirty" in doc["commit_info"]
    assert doc["benchmarks"]
    for bench in doc["benchmarks"]:
        check_extra(bench["extra_info"], replicas=replicas)
        assert bench["stats"]["rounds"] == bench["extra_info"]["rounds"]  # pytest-benchmark holds the same rounds
    assert compare.is_result(doc) and all(r["error"] is None for r in compare.results(doc))


def test_measure_trains_a_real_model_through_pytest_benchmark(benchmark, tmp_path, request):
    """In this process, with pytest-benchmark's own fixture: resnet20's real train step on the CPU."""
    import tensorflow as tf

    from bench.throughput import measure

    if request.config.getoption("benchmark_disable"):
        pytest.skip("benchmarks are disabled (--benchmark-disable)")
    assert not benchmark.disabled, "pytest-benchmark disabled itself: in an xdist worker's environment? (conftest)"
    session = measure.DeviceSession.open("cpu")
    extra = measure.measure(
        benchmark, Case("resnet20", "train", 8), session, rounds=3, warmup_rounds=0, max_rounds=4, steps=1
    )
    assert extra is benchmark.extra_info and extra["strategy"] == "OneDeviceStrategy"
    assert benchmark.stats.stats.rounds == extra["rounds"]
    assert session.references["fp32"][0]["flops_per_s"] == extra["matmul_flops_per_s"] > 0
    check_extra(extra, replicas=1)
    assert tf.keras.mixed_precision.global_policy().name == "float32"
    # the report plots it (and names errored cases)
    from bench.throughput import report

    doc = {
        "benchmarks": [{"extra_info": dict(extra)}],
        "harness": {"device_class": session.device_class},
        "errors": [{"case": Case("resnet20", "train", 4096).to_dict(), "error": "out of memory: OOM"}],
    }
    png = report.plot([doc], tmp_path / "plot.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [r["error"] for r in report.rows([doc])] == [None, "out of memory: OOM"]


@pytest.mark.slow
def test_end_to_end_command_on_two_logical_cpus(tmp_path):
    """``python -m bench throughput`` end to end, mirrored over two logical CPUs (the path a multi-GPU
    host takes; inference, to stay quick): the result file and pytest-benchmark's JSON."""
    doc = run_suite(tmp_path, "--mode", "infer", "--cpu-replicas", "2")
    assert doc["harness"]["strategy"] == "MirroredStrategy" and len(doc["harness"]["devices"]) == 2
    assert doc["harness"]["options"]["cases"] == ["resnet20-infer-bs8-fp32-xla_off-synthetic-tensorflow"]
    check_benchmarks(doc, replicas=2)


@pytest.mark.slow
def test_plain_pytest_builds_the_plugin_from_its_options(tmp_path):
    """``pytest bench/throughput/suite --models ...`` without the CLI: the conftest builds the same plugin."""
    out = tmp_path / "run.json"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "bench/throughput/suite",
        "-q",
        "-p",
        "no:cacheprovider",
        *SMALL_RUN,
        "--mode",
        "infer",
        "--bench-out",
        str(out),
    ]
    proc = subprocess.run(
        cmd, cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["harness"]["options"]["cases"] == ["resnet20-infer-bs8-fp32-xla_off-synthetic-tensorflow"]
    check_benchmarks(doc, replicas=1)
    bad = subprocess.run([*cmd[:7], "--models", "resnet57"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 4 and "unknown model 'resnet57'" in bad.stderr and "Traceback" not in bad.stderr


def test_an_interrupted_sweep_keeps_the_finished_cases_marked_partial_and_exits_130(tmp_path, monkeypatch, capsys):
    """Ctrl-C during the second case: the first case's result is written, the file says it is
    partial, and the command exits 130 as ``train`` does (pytest's 2 is our usage error). The file
    is there, partial, before the second case starts: a process killed outright keeps it too."""
    from bench.__main__ import main
    from bench.throughput import workload

    real_build, calls, seen = workload.build, [], []
    out = tmp_path / "r.json"

    def build(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            seen.append(json.loads(out.read_text()))
            raise KeyboardInterrupt
        return real_build(*args, **kwargs)

    monkeypatch.setattr(workload, "build", build)
    argv = ["throughput", *SMALL_RUN, "--mode", "infer,train", "--isolate", "none", "--bench-out", str(out)]
    code = main([*argv, "--", "-q"])
    assert code == 130 and "interrupted" in capsys.readouterr().err
    doc = json.loads(out.read_text())
    assert doc["partial"] is True and doc["harness"]["partial"] is True
    assert [b["param"] for b in doc["benchmarks"]] == ["resnet20-infer-bs8-fp32-xla_off-synthetic-tensorflow"]
    (before_second,) = seen
    assert before_second["partial"] is True and len(before_second["benchmarks"]) == 1


def test_an_in_process_run_that_measured_nothing_or_not_every_planned_case_fails(capsys):
    """``--isolate none``: pytest's 0 is not the run's when nothing was recorded (1, with a line) or
    ``-k`` left a planned case unmeasured (1; the table names it)."""
    from types import SimpleNamespace

    from bench.commands.throughput import _measured
    from tests.throughput.documents import bench, case, doc

    train, infer = Case.from_dict(case(mode="train")), Case.from_dict(case(mode="infer"))
    chief = SimpleNamespace(placement=SimpleNamespace(chief=True))
    assert _measured(SimpleNamespace(output=None, session=chief), 0) == 1
    assert "nothing was measured" in capsys.readouterr().err
    measured = doc([bench(infer.to_dict(), 100.0)])
    measured["harness"]["options"] = {"cases": [train.id, infer.id]}
    assert _measured(SimpleNamespace(output=measured, session=chief), 0) == 1
    measured["harness"]["options"] = {"cases": [infer.id]}
    assert _measured(SimpleNamespace(output=measured, session=chief), 0) == 0
    assert _measured(SimpleNamespace(output=None, session=chief), 5) == 5  # -k selected none: pytest's own status
