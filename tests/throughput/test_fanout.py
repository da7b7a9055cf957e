"""The backend axis of the throughput plan, and one process per backend merged into one result
(bench.throughput.plan, bench.throughput.fanout)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.errors import UsageError
from bench.throughput import fanout
from bench.throughput.plan import OPTIONS, dest, resolve

ROOT = Path(__file__).resolve().parents[2]


def opts(**over):
    base = {dest(flag): kwargs.get("default") for flag, kwargs in OPTIONS.items()}
    return base | {"models": "resnet20", "mode": "train"} | over


def test_each_backend_gets_its_own_cases_and_compile_default():
    plan = resolve(opts(backend="tensorflow,jax,torch"))
    assert plan.backends == ("tensorflow", "jax", "torch")
    assert [c.id for c in plan.cases] == [
        "resnet20-train-bs128-fp32-xla_off-synthetic-tensorflow",
        "resnet20-train-bs128-fp32-xla_on-synthetic-jax",
        "resnet20-train-bs128-fp32-compile_off-synthetic-torch",
    ]
    plan = resolve(opts(backend="jax,torch", xla="on,off", compile="on"))
    assert [c.compile_label for c in plan.cases] == ["xla_on", "xla_off", "compile_on"]


@pytest.mark.parametrize(
    "over, message",
    [
        (dict(backend="mxnet"), "--backend 'mxnet' is invalid; valid: tensorflow, jax, torch"),
        (dict(backend=""), "--backend '' is invalid; valid: tensorflow, jax, torch"),
        (dict(backend="tensorflow", compile="on"), "--compile 'on' applies to --backend torch, not tensorflow"),
        (dict(backend="torch", xla="on"), "--xla 'on' applies to --backend tensorflow or jax, not torch"),
        (dict(backend="torch", compile="fast"), "--compile 'fast' is invalid; valid: on, off, auto"),
        (
            dict(backend="jax", data="real"),
            "--data real feeds a tf.data pipeline on --backend tensorflow only, not jax",
        ),
        (dict(backend="jax", cpu_replicas=2), "--cpu-replicas splits the CPU for tensorflow's MirroredStrategy"),
        (dict(backend="torch", device="tpu"), "--device tpu runs on --backend tensorflow or jax, not torch"),
    ],
)
def test_bad_backend_combinations_are_one_line_errors(over, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve(opts(**over))


def test_the_command_refuses_a_bad_backend_in_one_line_before_any_process_starts(capsys, tmp_path):
    from bench.__main__ import main

    out = tmp_path / "result.json"
    for bad in ("", "jax,mxnet"):
        assert main(["throughput", "--backend", bad, "--bench-out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: --backend {bad!r} is invalid") and err.count("\n") == 1
    assert not out.exists()


def test_a_child_gets_only_what_its_backend_reads(tmp_path):
    o = opts(backend="tensorflow,torch", xla="on", compile="off", rounds=3, pytest_table=True)
    tf_argv = fanout.child_argv(o, "tensorflow", tmp_path / "tf.json", ["-q"])
    torch_argv = fanout.child_argv(o, "torch", tmp_path / "torch.json", [])
    assert tf_argv[:4] == [sys.executable, "-m", "bench", "throughput"]
    assert tf_argv[tf_argv.index("--backend") + 1] == "tensorflow" and tf_argv[-2:] == ["--", "-q"]
    assert "--xla" in tf_argv and "--compile" not in tf_argv and "--pytest-table" in tf_argv
    assert "--compile" in torch_argv and "--xla" not in torch_argv
    assert torch_argv[torch_argv.index("--rounds") + 1] == "3" and "--plot" not in torch_argv


def _doc(backend: str, median: float) -> dict:
    case = {"model": "resnet20", "mode": "train", "batch_size": 8, "precision": "fp32", "compile": "on"}
    return {
        "machine_info": {"backend": backend, backend: "1.0", "keras": "3", "cpu": {"brand_raw": "X", "count": 2}},
        "commit_info": {"id": "abc"},
        "harness": {"kind": "throughput", "backend": backend, "device_class": "cpu:X x2"},
        "benchmarks": [{"extra_info": {"case": case | {"backend": backend}, "images_per_s": {"median": median}}}],
        "errors": [{"id": f"{backend}-oom", "error": "out of memory"}] if backend == "torch" else [],
        "version": "5",
    }


def test_merge_keeps_every_benchmark_and_each_backends_record():
    from bench.environment import machine_line

    merged = fanout.merge([_doc("jax", 10.0), _doc("torch", 20.0)])
    assert [b["extra_info"]["case"]["backend"] for b in merged["benchmarks"]] == ["jax", "torch"]
    assert merged["errors"] == [{"id": "torch-oom", "error": "out of memory"}]
    assert merged["harness"]["backend"] == "jax,torch" and set(merged["harness"]["backends"]) == {"jax", "torch"}
    assert merged["commit_info"] == {"id": "abc"} and merged["version"] == "5"
    assert "on jax 1.0 + torch 1.0 /" in machine_line(merged["machine_info"])


def test_the_merged_top_level_describes_every_backend_not_the_first():
    """What differs between backends (their versions, strategy, produced_by) stays under ``backends``;
    the top level keeps what all share, and names every backend."""
    jax, torch = _doc("jax", 10.0), _doc("torch", 20.0)
    jax["harness"] |= {"strategy": "single", "versions": {"jax": "1.0"}, "produced_by": "Keras 3 on jax 1.0"}
    torch["harness"] |= {"strategy": "default", "versions": {"torch": "1.0"}, "produced_by": "Keras 3 on torch 1.0"}
    merged = fanout.merge([jax, torch])
    for gone in ("strategy", "versions"):
        assert gone not in merged["harness"]
        assert {n: merged["harness"]["backends"][n][gone] for n in ("jax", "torch")}
    assert "jax" not in merged["machine_info"] and "torch" not in merged["machine_info"]  # each backend's version
    assert merged["machine_info"]["keras"] == "3" and merged["harness"]["device_class"] == "cpu:X x2"
    assert "on jax 1.0 + torch 1.0 /" in merged["harness"]["produced_by"]


def test_a_run_whose_backends_recorded_nothing_fails_with_one_line(monkeypatch, tmp_path, capsys):
    plan = _two_backends(tmp_path)
    _fake_children(monkeypatch, tmp_path, plan, {"tensorflow": (False, "ok"), "jax": (False, "ok")})
    assert fanout.run(plan, {}, []) == 1
    assert "nothing was measured" in capsys.readouterr().err and not (tmp_path / "fan.json").exists()


@pytest.mark.slow
def test_tensorflow_and_jax_in_one_command_write_one_merged_file(tmp_path):
    """The real thing: two child processes, then one file with both backends' benchmarks."""
    pytest.importorskip("jax")
    out = tmp_path / "merged.json"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("KERAS_BACKEND", None)
    args = ["--models", "resnet20", "--mode", "infer", "--batch-size", "8", "--rounds", "2", "--steps", "1"]
    args += ["--warmup-rounds", "0", "--max-rounds", "2", "--bench-out", str(out), "--backend", "tensorflow,jax"]
    run = subprocess.run(
        [sys.executable, "-m", "bench", "throughput", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    doc = json.loads(out.read_text())
    ids = [b["extra_info"]["id"] for b in doc["benchmarks"]]
    assert ids == [
        "resnet20-infer-bs8-fp32-xla_off-synthetic-tensorflow",
        "resnet20-infer-bs8-fp32-xla_on-synthetic-jax",
    ]
    assert doc["machine_info"]["backends"]["jax"]["jax"] and doc["harness"]["backend"] == "tensorflow,jax"
    assert all(b["extra_info"]["images_per_s"]["median"] > 0 for b in doc["benchmarks"])
    assert "resnet20  infer  jax" in run.stdout  # the merged table ends the run


def test_jax_throughput_imports_no_tensorflow(tmp_path):
    """--backend jax measures a real step in a process that never imports TensorFlow."""
    pytest.importorskip("jax")
    out = tmp_path / "jax.json"
    code = (
        "import sys, runpy; sys.argv = ['bench'] + sys.argv[1:]\n"
        "try:\n    runpy.run_module('bench', run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    loaded = [k for k, v in sys.modules.items() if k.split('.')[0] == 'tensorflow' and v is not None]\n"
        "    assert not loaded, f'tensorflow was imported: {loaded[:3]}'\n    raise\n"
    )
    args = ["throughput", "--backend", "jax", "--models", "resnet20", "--mode", "train", "--batch-size", "8"]
    args += ["--rounds", "2", "--steps", "1", "--warmup-rounds", "0", "--max-rounds", "2", "--bench-out", str(out)]
    args += ["--isolate", "none"]  # measured in the process checked
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"} | {"JAX_PLATFORMS": "cpu"}
    run = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    (bench,) = json.loads(out.read_text())["benchmarks"]
    extra = bench["extra_info"]
    assert extra["backend"] == "jax" and extra["versions"]["jax"] and extra["images_per_s"]["median"] > 0
    assert extra["id"] == "resnet20-train-bs8-fp32-xla_on-synthetic-jax" and extra["utilization"] > 0


# A stand-in for a backend's child process: it copies a prepared result to its --bench-out, or dies,
# or signals its parent (the command) as Ctrl-C or SIGTERM would reach it, then waits to be stopped.
FAKE_CHILD = """
import os, shutil, signal, sys, time
src, out, how = sys.argv[1:]
if how == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
if src:
    shutil.copy(src, out)
if how in ("SIGINT", "SIGTERM"):
    time.sleep(0.5)  # the parent is waiting on this process by now
    os.kill(os.getppid(), getattr(signal, how))
    try:
        time.sleep(60)
    except KeyboardInterrupt:
        sys.exit(130)
"""


def _fake_children(monkeypatch, tmp_path, plan, behaviour: dict[str, tuple[bool, str]]) -> list[str]:
    """``fanout.run``'s children replaced by ``FAKE_CHILD``: per backend (writes its result?, how it ends);
    returns the backends' temporary result paths as the command gave them."""
    from tests.throughput import documents

    seen = []
    for backend, (writes, _) in behaviour.items():
        if writes:
            (case,) = [c for c in plan.cases if c.backend == backend]
            doc = documents.doc([documents.bench(case.to_dict(), 100.0)])
            doc["harness"] |= {"backend": backend, "schema": 2}
            doc["machine_info"] |= {"backend": backend}
            doc["commit_info"] = {"id": "abc"}
            (tmp_path / f"{backend}-src.json").write_text(json.dumps(doc))

    def argv(opts, backend, out, pytest_args):
        seen.append(str(out))
        writes, how = behaviour[backend]
        src = str(tmp_path / f"{backend}-src.json") if writes else ""
        return [sys.executable, "-c", FAKE_CHILD, src, str(out), how]

    monkeypatch.setattr(fanout, "child_argv", argv)
    monkeypatch.setattr(fanout.isolate, "GRACE_S", 2.0)
    return seen


def _two_backends(tmp_path):
    return resolve(opts(backend="tensorflow,jax", mode="infer", isolate="none", bench_out=str(tmp_path / "fan.json")))


@pytest.mark.parametrize("signal_name, status", [("SIGINT", 130), ("SIGTERM", 143)])
def test_an_interrupted_run_keeps_the_backends_that_finished(
    monkeypatch, tmp_path, capsys, ctrl_c, signal_name, status
):
    """Ctrl-C or SIGTERM while the second backend runs: the first's cases are written, marked partial."""
    plan = _two_backends(tmp_path)
    seen = _fake_children(monkeypatch, tmp_path, plan, {"tensorflow": (True, "ok"), "jax": (False, signal_name)})
    assert fanout.run(plan, {}, []) == status
    doc = json.loads((tmp_path / "fan.json").read_text())
    assert [b["param"] for b in doc["benchmarks"]] == ["resnet20-infer-bs128-fp32-xla_off-synthetic-tensorflow"]
    assert doc["partial"] is True and doc["harness"]["partial"] is True
    assert doc["harness"]["options"]["cases"] == [c.id for c in plan.cases]  # compare fails the unmeasured one
    assert "interrupted: the result file holds the finished cases, marked partial" in capsys.readouterr().err
    assert not Path(seen[0]).parent.exists()  # the temporary directory is gone, its results kept


def test_a_killed_backend_fails_the_run_with_an_error_for_each_of_its_cases(monkeypatch, tmp_path, capsys):
    """A child killed by SIGKILL (the OOM killer) before it wrote anything: exit 1, its case an error."""
    from bench.regression.throughput import unmeasured

    plan = _two_backends(tmp_path)
    _fake_children(monkeypatch, tmp_path, plan, {"tensorflow": (True, "ok"), "jax": (False, "kill")})
    assert fanout.run(plan, {}, []) == 1
    doc = json.loads((tmp_path / "fan.json").read_text())
    (error,) = doc["errors"]
    assert error["id"] == "resnet20-infer-bs128-fp32-xla_on-synthetic-jax"
    assert error["error"].startswith("the jax process was killed by SIGKILL (out of memory?)")
    assert error["exit_status"] == -9 and not doc.get("partial")
    assert unmeasured(doc) == []  # every planned case has its result: the jax case is an ERROR, not missing
    assert "the jax process was killed by SIGKILL" in capsys.readouterr().err


def test_a_backend_that_ends_badly_after_its_result_fails_the_run(monkeypatch, tmp_path):
    """A child that wrote its result and then ended with status 3 (not one pytest ends with) fails the run,
    and adds no error for a case it measured."""
    plan = _two_backends(tmp_path)
    _fake_children(monkeypatch, tmp_path, plan, {"tensorflow": (True, "ok"), "jax": (True, "ok")})
    code = FAKE_CHILD + "sys.exit(3 if 'jax' in out else 0)\n"
    real = fanout.child_argv
    monkeypatch.setattr(fanout, "child_argv", lambda *a: [*real(*a)[:2], code, *real(*a)[3:]])
    assert fanout.run(plan, {}, []) == 1
    doc = json.loads((tmp_path / "fan.json").read_text())
    assert len(doc["benchmarks"]) == 2 and doc["errors"] == []
