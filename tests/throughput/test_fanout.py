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
