"""Device and numerics set-up: distribution strategy, precision policy, XLA, seeds, device class.

Every command that runs a model goes through here, so that ``--device gpu`` means the same
thing to the throughput suite and to training, and so that a device that is not there is a
one-line ``UsageError`` (exit 2) rather than a silent run on the CPU.

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

import os
import re

from bench.errors import UsageError, first_line

DEVICES = ("cpu", "gpu", "tpu")
# our names -> Keras dtype policies
PRECISIONS = {"fp32": "float32", "mixed_bf16": "mixed_bfloat16", "mixed_fp16": "mixed_float16"}
XLA_MODES = ("on", "off", "auto")

# The TPU strategy is expensive to set up and its system may be initialised only once per
# process; keep the first one (per TPU name) for later callers.
_TPU_STRATEGIES: dict[str, object] = {}


# --batch-size auto for throughput: (CIFAR-sized inputs <= 64 px, ImageNet-sized) per device
AUTO_BATCH = {"cpu": (128, 16), "gpu": (512, 128), "tpu": (1024, 256)}


def check_device(device: str) -> str:
    """``device`` if it is one of ``DEVICES``, else a one-line ``UsageError``: the one check of --device."""
    if device not in DEVICES:
        raise UsageError(f"--device {device!r} is invalid; valid: {', '.join(DEVICES)}")
    return device


def _local_strategy(kind: str):
    """One logical device of ``kind``: OneDeviceStrategy; several: MirroredStrategy over all of them."""
    import tensorflow as tf

    logical = tf.config.list_logical_devices(kind)
    if not logical:
        return None
    if len(logical) == 1:
        return tf.distribute.OneDeviceStrategy(logical[0].name)
    # Mirrored over CPUs has no NCCL; reduce through one device (what TF picks for CPUs anyway).
    cross = tf.distribute.ReductionToOneDevice() if kind == "CPU" else None
    return tf.distribute.MirroredStrategy([d.name for d in logical], cross_device_ops=cross)


def tpu_name(tpu: str | None = None) -> str:
    """The TPU to resolve: ``tpu`` if given, else ``$TPU_NAME``, else ``local`` (a TPU VM's own chips)."""
    return tpu or os.environ.get("TPU_NAME") or "local"


def strategy_for(device: str, *, tpu: str | None = None):
    """The ``tf.distribute.Strategy`` for ``device`` ('cpu' | 'gpu' | 'tpu').

    cpu: OneDeviceStrategy on the CPU (MirroredStrategy when the process was split into several
    logical CPUs, which is how the multi-device path is tested without GPUs). gpu: one visible GPU,
    or MirroredStrategy over all visible ones. tpu: TPUClusterResolver(``tpu_name(tpu)``) and
    TPUStrategy. A device that is not there raises ``UsageError``; nothing falls back to the CPU.
    ``device`` was checked by the caller's options (``check_device``).
    """
    import tensorflow as tf

    if device == "cpu":
        return _local_strategy("CPU")
    if device == "gpu":
        if not tf.config.list_physical_devices("GPU"):
            build = (
                "this TensorFlow has no CUDA support (install tensorflow[and-cuda]: nox -s bench -- --device gpu)"
                if not tf.test.is_built_with_cuda()
                else f"none is visible (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')!s}; check nvidia-smi)"
            )
            raise UsageError(f"--device gpu: no GPU found; {build}")
        return _local_strategy("GPU")
    name = tpu_name(tpu)
    if name in _TPU_STRATEGIES:
        return _TPU_STRATEGIES[name]
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=name)
        if name != "local":
            tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        strategy = tf.distribute.TPUStrategy(resolver)
    except Exception as e:  # resolver/initialisation errors come in many types; all mean "no TPU"
        raise UsageError(
            f"--device tpu: no TPU found for {name!r} (--tpu NAME or TPU_NAME; 'local' on a TPU VM): "
            f"{first_line(e, limit=200)}"
        ) from None
    _TPU_STRATEGIES[name] = strategy
    return strategy


def split_cpu(n: int) -> None:
    """Split the physical CPU into ``n`` logical devices (before TensorFlow initialises), so that
    ``strategy_for('cpu')`` mirrors over them: the multi-device path, testable without GPUs."""
    import tensorflow as tf

    if n < 1:
        raise UsageError(f"--cpu-replicas {n} is invalid; expected >= 1")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
    except RuntimeError:
        if len(tf.config.list_logical_devices("CPU")) != n:
            raise UsageError(f"cannot split the CPU into {n} devices: TensorFlow is already initialised") from None


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
    return {"fp32": "float32", "mixed_bf16": "bfloat16", "mixed_fp16": "float16"}[name]


def set_xla(on: bool | str):
    """Choose XLA: True/'on', False/'off' or 'auto' (Keras's default: XLA on GPUs, not on CPUs or
    under a distribution strategy). Returns the value to pass as ``model.compile(jit_compile=...)``
    and sets TensorFlow's auto-clustering to match, so tf.functions outside Keras agree."""
    import tensorflow as tf

    if isinstance(on, str):
        if on not in XLA_MODES:
            raise UsageError(f"--xla {on!r} is invalid; valid: {', '.join(XLA_MODES)}")
        if on == "auto":
            tf.config.optimizer.set_jit(False)
            return "auto"
        on = on == "on"
    tf.config.optimizer.set_jit(bool(on))
    return bool(on)


def seed_everything(seed: int, *, deterministic: bool = False) -> None:
    """Seed Python, NumPy, TensorFlow and Keras; with ``deterministic``, also make TensorFlow's
    ops deterministic (slower; some GPU ops then raise instead of running nondeterministically)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(int(seed))
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", str(text)).strip()


def device_class(device: str) -> str:
    """The stable key naming the hardware ``device`` runs on (see the module docstring)."""
    import tensorflow as tf

    from bench.environment import cpu_model

    if device == "cpu":
        return f"cpu:{_squash(cpu_model())} x{os.cpu_count()}"
    if device == "gpu":
        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            raise UsageError("--device gpu: no GPU found")
        names = sorted({_squash(tf.config.experimental.get_device_details(g).get("device_name", "GPU")) for g in gpus})
        return f"gpu:{'+'.join(names)}" + (f" x{len(gpus)}" if len(gpus) > 1 else "")
    accel = os.environ.get("TPU_ACCELERATOR_TYPE")
    if accel:
        return f"tpu:{_squash(accel)}"
    cores = len(tf.config.list_logical_devices("TPU"))
    if not cores:
        raise UsageError("--device tpu: no TPU initialised; call strategy_for('tpu') first")
    return f"tpu:x{cores}"


def strategy_record(strategy) -> dict:
    """What a result records about where it ran: the strategy's class, replicas and devices."""
    return {
        "strategy": type(strategy).__name__,
        "replicas": int(strategy.num_replicas_in_sync),
        "devices": list(getattr(strategy.extended, "worker_devices", ()) or ()),
    }
