"""The Keras backends a benchmark can run on, one small module each, answering the same questions.

Keras fixes its backend when it is first imported (``KERAS_BACKEND``), so a process runs one
backend: ``activate`` chooses it before Keras is imported, and ``python -m bench throughput
--backend tensorflow,jax`` runs one process per backend and merges their results.

Each module (``bench.backends.tensorflow``, ``.jax``, ``.torch``) provides:

- ``COMPILE_FLAG``, ``COMPILE_MODES``, ``DEFAULT_COMPILE``: the flag that chooses compilation
  (``--xla`` for tensorflow and jax, ``--compile`` for torch), its values and its default;
- ``open(device, *, tpu=None, cpu_replicas=1, cluster=None) -> Placement``: where models and batches go, with a
  one-line ``UsageError`` when the device asked for is not there (nothing falls back to the CPU);
  with a ``bench.cluster.Cluster``, this process joins a multi-worker job (tensorflow:
  MultiWorkerMirroredStrategy; jax: jax.distributed and keras.distribution.DataParallel; torch: refused);
- ``gather_replicas(placement, value) -> list[float]``: ``value`` from every replica of the job, in
  replica order (a collective: every worker calls it), so that workers agree on what each decides alone;
- ``sync_statistics(placement, model)``: the model's non-trainable statistics made the same on every
  replica (tensorflow averages batch norm's moving statistics; a no-op elsewhere);
- ``jit_compile(mode)``: the ``model.compile(jit_compile=...)`` value for on / off / auto;
- ``resident_step(mode, model, placement, x, y) -> (step, sync)``: the compiled train (or
  inference) step Keras's own ``fit`` (``predict``) runs, on batches placed on the device once,
  and the wait for the device (a read-back, ``block_until_ready`` or ``torch.cuda.synchronize``);
- ``matmul(placement, dtype, n, chain) -> (call, sync)``: chained square matmuls, for the
  utilization reference (``bench.throughput.hardware`` times them);
- ``reset_peak_memory(placement)``, ``peak_memory(placement)``, ``out_of_memory(exc)``;
- ``seed(seed, deterministic=False)``, ``versions()``, ``accelerators()``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from bench.errors import UsageError

BACKENDS = ("tensorflow", "jax", "torch")
FRAMEWORKS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}  # backend -> the module it needs
DEFAULT_BACKEND = "tensorflow"


def check_backend(name: str) -> str:
    """``name`` if it is one of ``BACKENDS``, else a one-line ``UsageError``."""
    if name not in BACKENDS:
        raise UsageError(f"--backend {name!r} is invalid; valid: {', '.join(BACKENDS)}")
    return name


def planning() -> str:
    """The Keras backend for a process that only checks a plan or builds models to count them:
    Keras's numpy backend (no framework, no threads), which Keras 3.15 builds on jax's fft, so it
    needs jax installed; without jax, the first installed of ``BACKENDS`` (tensorflow first)."""
    if importlib.util.find_spec("jax") is not None:
        return "numpy"
    installed = [b for b in BACKENDS if importlib.util.find_spec(FRAMEWORKS[b]) is not None]
    if not installed:
        raise UsageError(f"no Keras backend is installed here: pip install -e '.[cpu]' (one of {', '.join(BACKENDS)})")
    return installed[0]


def running() -> str | None:
    """The backend Keras runs on in this process, or None when Keras is not imported yet."""
    keras = sys.modules.get("keras")
    return keras.backend.backend() if keras is not None else None


def activate(name: str) -> ModuleType:
    """Make ``name`` this process's Keras backend (before Keras is imported) and return its module.
    A process whose Keras already runs another backend cannot switch: that is a ``UsageError``."""
    check_backend(name)
    now = running()
    if now is None:
        framework = FRAMEWORKS[name]
        if importlib.util.find_spec(framework) is None:
            raise UsageError(
                f"--backend {name}: {framework} is not installed here (pip install -e '.[{name}]', "
                f"or nox -s bench -- --backend {name})"
            )
        os.environ["KERAS_BACKEND"] = name
    elif now != name:
        raise UsageError(
            f"--backend {name}: Keras already runs on {now} in this process and cannot switch; "
            "each backend runs in its own process (python -m bench throughput --backend LIST does that)"
        )
    return load(name)


def load(name: str) -> ModuleType:
    """The module answering for backend ``name``; its framework is imported only when a function runs."""
    return importlib.import_module(f"bench.backends.{check_backend(name)}")


def current() -> ModuleType:
    """The module of the backend Keras runs on (importing Keras if needed)."""
    import keras

    return load(keras.backend.backend())


def keras_seed(value: int, *, tf_data: bool = True) -> None:
    """``keras.utils.set_random_seed`` (Python, NumPy, Keras, and torch on torch). It also seeds
    TensorFlow for tf.data whenever TensorFlow is installed, importing it; ``tf_data=False`` (a
    process that reads no tf.data, on jax or torch) tells Keras TensorFlow is not there instead,
    so that such a process never imports it."""
    import keras

    if not tf_data:
        from keras.src.utils import module_utils  # Keras's lazy handle on TensorFlow

        if module_utils.tensorflow.module is None:
            module_utils.tensorflow._available = False
    keras.utils.set_random_seed(int(value))


@dataclasses.dataclass
class Placement:
    """Where one process's models and batches live: a device of one backend, and how to enter it."""

    backend: str
    device: str
    device_class: str
    replicas: int
    devices: list[str]
    enter: Callable[[], Any] = contextlib.nullcontext  # a fresh context manager per call
    strategy: Any = None  # tensorflow: the tf.distribute.Strategy; a jax job: its keras.distribution; else None
    kind: str = "keras.device"  # what places the work: the strategy's class, or keras.device
    cluster: Any = None  # bench.cluster.Cluster when this process is one worker of a multi-worker job

    @property
    def chief(self) -> bool:
        """Whether this process writes results, checkpoints and logs: always, unless it is a worker other than 0."""
        return self.cluster is None or self.cluster.is_chief

    def scope(self):
        """The context in which models are built and batches placed."""
        return self.enter()

    def record(self) -> dict:
        """What a result records about where it ran."""
        doc = {
            "backend": self.backend,
            "device": self.device,
            "device_class": self.device_class,
            "strategy": self.kind,
            "replicas": self.replicas,
            "devices": list(self.devices),
        }
        if self.cluster is not None:
            doc["cluster"] = self.cluster.record()
        return doc


def cluster_class(local: str, workers: int) -> str:
    """The device class of a job over ``workers`` workers whose worker 0 is ``local``: never one host's class."""
    return f"{local}, {workers} workers"
