"""What every backend means by a device, a precision and a device class.

``--device`` and ``--precision`` mean the same to the throughput suite and to training on every
Keras backend; each backend's module (``bench.backends``) opens the device and says what it is.
A device that is not there is a one-line ``UsageError`` (exit 2), never a silent run on the CPU.

Device classes (the key under which baselines.json keeps throughput numbers) are stable strings
naming the hardware that produced a number, because images/s from different hardware cannot be
compared directly:

- ``cpu:<model name> x<logical cores>``, e.g. ``cpu:AMD EPYC 7B13 x2``
- ``gpu:<device name>`` for one GPU, ``gpu:<device name> x<N>`` for N mirrored ones,
  e.g. ``gpu:NVIDIA H100 80GB HBM3``
- ``tpu:<accelerator type>`` (``TPU_ACCELERATOR_TYPE`` on a TPU VM, e.g. ``tpu:v4-8``), else
  ``tpu:x<cores>``

Whitespace runs are collapsed to one space so that /proc/cpuinfo padding does not split a class.
"""

from __future__ import annotations

import re

from bench.errors import UsageError

DEVICES = ("cpu", "gpu", "tpu")
# our names -> Keras dtype policies
PRECISIONS = {"fp32": "float32", "mixed_bf16": "mixed_bfloat16", "mixed_fp16": "mixed_float16"}
COMPUTE_DTYPES = {"fp32": "float32", "mixed_bf16": "bfloat16", "mixed_fp16": "float16"}
COMPILE_MODES = ("on", "off", "auto")  # auto: Keras's own choice for the backend and device

# --batch-size auto for throughput: (CIFAR-sized inputs <= 64 px, ImageNet-sized) per device
AUTO_BATCH = {"cpu": (128, 16), "gpu": (512, 128), "tpu": (1024, 256)}


def check_device(device: str) -> str:
    """``device`` if it is one of ``DEVICES``, else a one-line ``UsageError``: the one check of --device."""
    if device not in DEVICES:
        raise UsageError(f"--device {device!r} is invalid; valid: {', '.join(DEVICES)}")
    return device


def set_precision(name: str) -> str:
    """Set Keras's global dtype policy from 'fp32' | 'mixed_bf16' | 'mixed_fp16'; returns the policy name.

    Under mixed_fp16, ``model.compile`` wraps the optimizer in a LossScaleOptimizer itself."""
    import keras

    if name not in PRECISIONS:
        raise UsageError(f"--precision {name!r} is invalid; valid: {', '.join(PRECISIONS)}")
    keras.mixed_precision.set_global_policy(PRECISIONS[name])
    return PRECISIONS[name]


def compute_dtype(name: str) -> str:
    """The compute dtype of precision ``name`` ('float32', 'bfloat16', 'float16')."""
    if name not in PRECISIONS:
        raise UsageError(f"--precision {name!r} is invalid; valid: {', '.join(PRECISIONS)}")
    return COMPUTE_DTYPES[name]


def squash(text: str) -> str:
    """A device's name as a device class holds it: whitespace runs collapsed to one space, and a '/'
    as '-' (a result's key is ``device_class/case``, split at its first '/')."""
    return re.sub(r"\s+", " ", str(text).replace("/", "-")).strip()


def cpu_class() -> str:
    """The device class of this machine's CPU, as this process may use it (its CPUs: ``usable_cpus``)."""
    from bench.environment import cpu_model, usable_cpus

    return f"cpu:{squash(cpu_model())} x{usable_cpus()}"


def accelerator_class(kind: str, names: list[str]) -> str:
    """The device class of ``names`` (one per device) of ``kind`` ('gpu', 'tpu')."""
    distinct = sorted({squash(n) for n in names})
    return f"{kind}:{'+'.join(distinct)}" + (f" x{len(names)}" if len(names) > 1 else "")
