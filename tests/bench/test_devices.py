"""What every backend means by a device and a precision (bench.devices)."""

import pytest

from bench import devices
from bench.errors import UsageError


@pytest.mark.parametrize("bad", ["cuda", "CPU", ""])
def test_unknown_device_is_a_usage_error(bad):
    with pytest.raises(UsageError, match="--device"):
        devices.check_device(bad)


def test_device_classes():
    assert devices.accelerator_class("gpu", ["NVIDIA  H100 80GB HBM3"]) == "gpu:NVIDIA H100 80GB HBM3"
    assert devices.accelerator_class("gpu", ["A100", "A100"]) == "gpu:A100 x2"
    assert devices.cpu_class().startswith("cpu:") and "  " not in devices.cpu_class()


def test_a_device_class_never_holds_a_slash(monkeypatch):
    """A result's key is ``device_class/case``, split at the first '/': a '/' in a device's name
    would move part of the device into the case's name."""
    import bench.environment

    monkeypatch.setattr(bench.environment, "cpu_model", lambda: "Acme  CPU 8/16 @ 3GHz")
    assert devices.cpu_class() == f"cpu:Acme CPU 8-16 @ 3GHz x{bench.environment.usable_cpus()}"
    assert devices.accelerator_class("gpu", ["GeForce RTX 3090/PCIe/SSE2"]) == "gpu:GeForce RTX 3090-PCIe-SSE2"


def test_the_cpu_class_counts_the_cpus_this_process_may_use(monkeypatch):
    """Under ``taskset -c 0`` (or a container's cpuset) the process runs on one CPU whatever the
    machine has: the device class and ``machine_info`` record that one (``usable_cpus``)."""
    import os

    import bench.environment

    monkeypatch.setattr(bench.environment, "cpu_model", lambda: "Acme CPU")
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert bench.environment.usable_cpus() == 1 and devices.cpu_class() == "cpu:Acme CPU x1"
    monkeypatch.delattr(os, "sched_getaffinity")  # macOS: no affinity to read
    assert bench.environment.usable_cpus() == 64 and devices.cpu_class() == "cpu:Acme CPU x64"


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
