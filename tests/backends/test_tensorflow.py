"""The tensorflow backend (bench.backends.tensorflow): strategies, device classes, XLA and seeds.
No accelerator here: the GPU and TPU paths must refuse with one line, never fall back to the CPU;
the multi-device path is tested by the end-to-end run with two logical CPUs (test_suite.py)."""

import re

import numpy as np
import pytest

from bench.__main__ import main
from bench.backends import tensorflow as backend
from bench.errors import UsageError

tf = pytest.importorskip("tensorflow")
HAS_GPU = bool(tf.config.list_physical_devices("GPU"))


def test_cpu_placement_is_one_device_on_the_cpu():
    placement = backend.open("cpu")
    info = placement.record()
    assert info["strategy"] == "OneDeviceStrategy" and info["replicas"] == 1 and info["backend"] == "tensorflow"
    assert info["devices"][0].endswith("CPU:0")
    assert placement.device_class == backend.device_class("cpu")


def test_device_class_names_the_hardware():
    dc = backend.device_class("cpu")
    assert re.fullmatch(r"cpu:\S.* x\d+", dc), dc
    assert "  " not in dc and dc == backend.device_class("cpu")


@pytest.mark.skipif(HAS_GPU, reason="a GPU is visible")
def test_missing_gpu_is_refused_not_replaced_by_the_cpu(capsys):
    with pytest.raises(UsageError, match="no GPU found"):
        backend.open("gpu")
    with pytest.raises(UsageError):
        backend.device_class("gpu")
    # the command says so in one line and exits non-zero before anything runs
    assert main(["throughput", "--device", "gpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --device gpu: no GPU found") and err.count("\n") == 1


@pytest.mark.skipif(bool(tf.config.list_logical_devices("TPU")), reason="a TPU is attached")
def test_missing_tpu_is_refused(monkeypatch):
    monkeypatch.delenv("TPU_NAME", raising=False)
    assert backend.tpu_name() == "local" and backend.tpu_name("my-tpu") == "my-tpu"
    monkeypatch.setenv("TPU_NAME", "from-env")
    assert backend.tpu_name() == "from-env"
    with pytest.raises(UsageError, match="no TPU found for 'local'"):
        backend.open("tpu", tpu="local")


def test_xla_choice():
    try:
        assert backend.jit_compile(True) is True and tf.config.optimizer.get_jit() == "autoclustering"
        assert backend.jit_compile("off") is False and not tf.config.optimizer.get_jit()
        assert backend.jit_compile("auto") == "auto"
        with pytest.raises(UsageError, match="--xla"):
            backend.jit_compile("maybe")
    finally:
        backend.jit_compile(False)


def test_seed_repeats_draws():
    import keras

    backend.seed(7)
    a = (np.random.rand(3), keras.random.uniform((3,)).numpy())
    backend.seed(7)
    b = (np.random.rand(3), keras.random.uniform((3,)).numpy())
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_versions_and_out_of_memory():
    assert backend.versions()["tensorflow"] == tf.__version__
    assert backend.out_of_memory(tf.errors.ResourceExhaustedError(None, None, "OOM when allocating")).startswith(
        "out of memory"
    )
    assert backend.out_of_memory(ValueError("shapes differ")) is None
