"""Choosing a Keras backend (bench.backends): names, one backend per process, the placement record,
and each backend's module answering the same questions."""

import pytest

from bench import backends
from bench.errors import UsageError

QUESTIONS = (
    "COMPILE_FLAG",
    "COMPILE_MODES",
    "DEFAULT_COMPILE",
    "open",
    "jit_compile",
    "resident_step",
    "matmul",
    "reset_peak_memory",
    "peak_memory",
    "out_of_memory",
    "seed",
    "versions",
    "accelerators",
)


@pytest.mark.parametrize("name", backends.BACKENDS)
def test_every_backend_module_answers_the_same_questions_without_importing_its_framework(name):
    module = backends.load(name)
    assert [q for q in QUESTIONS if not hasattr(module, q)] == []
    assert module.COMPILE_FLAG == ("--compile" if name == "torch" else "--xla")
    assert module.DEFAULT_COMPILE in module.COMPILE_MODES


@pytest.mark.parametrize("bad", ["mxnet", "TensorFlow", ""])
def test_unknown_backend_is_a_usage_error(bad):
    with pytest.raises(UsageError, match=f"--backend {bad!r} is invalid; valid: tensorflow, jax, torch"):
        backends.check_backend(bad)


def test_a_process_cannot_switch_backends():
    import keras

    assert backends.running() == keras.backend.backend() == "tensorflow"
    assert backends.activate("tensorflow") is backends.load("tensorflow")
    with pytest.raises(UsageError, match="Keras already runs on tensorflow in this process and cannot switch"):
        backends.activate("jax")


def test_a_missing_framework_is_named(monkeypatch):
    monkeypatch.setattr(backends, "running", lambda: None)
    monkeypatch.setitem(backends.FRAMEWORKS, "torch", "no_such_framework_here")
    with pytest.raises(UsageError, match=r"--backend torch: no_such_framework_here is not installed here"):
        backends.activate("torch")


@pytest.mark.parametrize("name", ["jax", "torch"])
def test_out_of_memory_is_recognised_by_message(name):
    module = backends.load(name)
    text = "RESOURCE_EXHAUSTED: Out of memory while trying to allocate" if name == "jax" else "CUDA out of memory."
    assert module.out_of_memory(RuntimeError(text)).startswith("out of memory: RuntimeError")
    assert module.out_of_memory(ValueError("shapes differ")) is None
    assert module.jit_compile("on") is True and module.jit_compile("off") is False
    with pytest.raises(UsageError, match=f"{module.COMPILE_FLAG} 'maybe' is invalid"):
        module.jit_compile("maybe")


def test_placement_records_where_it_ran():
    p = backends.Placement("jax", "gpu", "gpu:NVIDIA H100 80GB HBM3", 1, ["cuda:0"])
    assert p.record() == {
        "backend": "jax",
        "device": "gpu",
        "device_class": "gpu:NVIDIA H100 80GB HBM3",
        "strategy": "keras.device",
        "replicas": 1,
        "devices": ["cuda:0"],
    }
    with p.scope():
        pass


def test_a_planning_process_uses_numpy_where_keras_can_and_else_an_installed_backend(monkeypatch):
    """Keras 3.15's numpy backend imports jax (for fft): without jax, the plan is checked on the
    first installed backend instead (``nox -s bench`` installs tensorflow-cpu and no jax)."""
    import importlib.util

    real = importlib.util.find_spec
    missing = set()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in missing else real(name, *a))
    assert backends.planning() == "numpy"
    missing.add("jax")
    assert backends.planning() == "tensorflow"
    missing.update({"tensorflow", "torch"})
    monkeypatch.setitem(backends.FRAMEWORKS, "torch", "torch")
    with pytest.raises(UsageError, match="no Keras backend is installed here"):
        backends.planning()


@pytest.mark.slow
def test_throughput_checks_its_plan_where_jax_is_not_installed():
    """``python -m bench throughput`` with jax unimportable (as in ``nox -s bench``'s environment):
    a bad --models is still its one-line error, not Keras's numpy backend failing to import jax."""
    import subprocess
    import sys

    code = (
        "import sys, runpy; sys.modules['jax'] = None; "
        "sys.argv = ['bench', 'throughput', '--models', 'no_such_model_xyz']; "
        "runpy.run_module('bench', run_name='__main__', alter_sys=True)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr[-2000:]
    assert "no_such_model_xyz" in run.stderr and "Traceback" not in run.stderr
