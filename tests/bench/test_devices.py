"""Device, precision, XLA and seed set-up (bench.devices). No accelerator here: the GPU and TPU
paths must refuse with one line, never fall back to the CPU; the multi-device path is tested by
the end-to-end run with two logical CPUs (test_throughput.py)."""

import re

import numpy as np
import pytest

from bench import devices
from bench.__main__ import main
from bench.errors import UsageError

tf = pytest.importorskip("tensorflow")
HAS_GPU = bool(tf.config.list_physical_devices("GPU"))


def test_cpu_strategy_is_one_device_on_the_cpu():
    strategy = devices.strategy_for("cpu")
    info = devices.strategy_record(strategy)
    assert info["strategy"] == "OneDeviceStrategy" and info["replicas"] == 1
    assert info["devices"][0].endswith("CPU:0")


def test_device_class_names_the_hardware():
    dc = devices.device_class("cpu")
    assert re.fullmatch(r"cpu:\S.* x\d+", dc), dc
    assert "  " not in dc and dc == devices.device_class("cpu")


@pytest.mark.parametrize("bad", ["cuda", "CPU", ""])
def test_unknown_device_is_a_usage_error(bad):
    with pytest.raises(UsageError, match="--device"):
        devices.strategy_for(bad)


@pytest.mark.skipif(HAS_GPU, reason="a GPU is visible")
def test_missing_gpu_is_refused_not_replaced_by_the_cpu(capsys):
    with pytest.raises(UsageError, match="no GPU found"):
        devices.strategy_for("gpu")
    with pytest.raises(UsageError):
        devices.device_class("gpu")
    # the command says so in one line and exits non-zero before anything runs
    assert main(["throughput", "--device", "gpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --device gpu: no GPU found") and err.count("\n") == 1


@pytest.mark.skipif(bool(tf.config.list_logical_devices("TPU")), reason="a TPU is attached")
def test_missing_tpu_is_refused(monkeypatch):
    monkeypatch.delenv("TPU_NAME", raising=False)
    assert devices.tpu_name() == "local" and devices.tpu_name("my-tpu") == "my-tpu"
    monkeypatch.setenv("TPU_NAME", "from-env")
    assert devices.tpu_name() == "from-env"
    with pytest.raises(UsageError, match="no TPU found for 'local'"):
        devices.strategy_for("tpu", tpu="local")


def test_precision_policies():
    import keras

    try:
        assert devices.set_precision("mixed_bf16") == "mixed_bfloat16"
        assert keras.mixed_precision.global_policy().compute_dtype == "bfloat16"
        assert devices.set_precision("mixed_fp16") == "mixed_float16"
        assert keras.mixed_precision.global_policy().variable_dtype == "float32"
        with pytest.raises(UsageError, match="--precision 'fp8'"):
            devices.set_precision("fp8")
        assert devices.compute_dtype("mixed_fp16") == "float16"
    finally:
        devices.set_precision("fp32")
    assert keras.mixed_precision.global_policy().name == "float32"


def test_xla_choice():
    try:
        assert devices.set_xla(True) is True and tf.config.optimizer.get_jit() == "autoclustering"
        assert devices.set_xla("off") is False and not tf.config.optimizer.get_jit()
        assert devices.set_xla("auto") == "auto"
        with pytest.raises(UsageError, match="--xla"):
            devices.set_xla("maybe")
    finally:
        devices.set_xla(False)


def test_seed_everything_repeats_draws():
    import keras

    devices.seed_everything(7)
    a = (np.random.rand(3), keras.random.uniform((3,)).numpy())
    devices.seed_everything(7)
    b = (np.random.rand(3), keras.random.uniform((3,)).numpy())
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
