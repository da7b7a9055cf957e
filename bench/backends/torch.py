"""The torch backend: Keras's device (``keras.device``), its train and predict steps, torch.compile by ``--compile``.

The step is the one ``fit`` (``predict``) runs on torch: Keras's ``train_function([batch])``, with
the module in training (eval) mode as ``fit`` (``predict``) sets it; ``--compile on`` makes Keras
wrap it in ``torch.compile``. The wait for the device is ``torch.cuda.synchronize`` (on a GPU)
and a read-back of one value.
"""

from __future__ import annotations

import re

from bench import devices
from bench.backends import Placement, keras_seed
from bench.errors import UsageError, first_line

COMPILE_FLAG = "--compile"
COMPILE_MODES = devices.COMPILE_MODES
DEFAULT_COMPILE = "off"  # Keras's own default on torch


def versions() -> dict:
    import torch

    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {"torch": torch.__version__, "cuda_version": torch.version.cuda, "cudnn_version": cudnn}


def accelerators() -> list[dict]:
    import torch

    if not torch.cuda.is_available():
        return []
    return [
        {
            "kind": "GPU",
            "name": f"cuda:{i}",
            "model": torch.cuda.get_device_name(i),
            "compute_capability": ".".join(map(str, torch.cuda.get_device_capability(i))),
        }
        for i in range(torch.cuda.device_count())
    ]


def open(device: str, *, tpu: str | None = None, cpu_replicas: int = 1, cluster=None) -> Placement:  # noqa: A001
    """The first CUDA device for 'gpu', the CPU for 'cpu'; a missing one (or a TPU) is a one-line ``UsageError``."""
    import keras
    import torch

    if cluster is not None:
        raise UsageError(
            "a multi-worker job runs on --backend tensorflow (MultiWorkerMirroredStrategy) or jax (jax.distributed); not torch"
        )
    if cpu_replicas > 1:
        raise UsageError("--cpu-replicas is tensorflow's (MirroredStrategy over logical CPUs); on torch use 1")
    devices.check_device(device)
    if device == "tpu":
        raise UsageError("--device tpu runs on --backend tensorflow or jax; torch has no TPU support here")
    if device == "gpu":
        if not torch.cuda.is_available():
            build = (
                "this torch has no CUDA support" if torch.version.cuda is None else "none is visible (check nvidia-smi)"
            )
            raise UsageError(f"--device gpu: torch {torch.__version__} finds no GPU; {build}")
        name = "cuda:0"
        device_class = devices.accelerator_class("gpu", [torch.cuda.get_device_name(0)])
    else:
        name, device_class = "cpu", devices.cpu_class()
    return Placement("torch", device, device_class, 1, [name], enter=lambda: keras.device(name))


def gather_replicas(placement: Placement, value: float) -> list[float]:
    """One process, one replica: ``[value]``."""
    return [float(value)]


def sync_statistics(placement: Placement, model) -> None:
    """One process, one replica: nothing to average."""


def jit_compile(mode: str):
    """The ``model.compile(jit_compile=...)`` value for ``--compile`` on/off/auto (auto: Keras's default, off)."""
    if mode not in COMPILE_MODES:
        raise UsageError(f"--compile {mode!r} is invalid; valid: {', '.join(COMPILE_MODES)}")
    return {"on": True, "off": False, "auto": "auto"}[mode]


def seed(value: int, *, deterministic: bool = False, tf_data: bool = True) -> None:
    """Seed Python, NumPy, torch and Keras (and TensorFlow for tf.data unless ``tf_data`` is False:
    ``bench.backends.keras_seed``); with ``deterministic``, torch's deterministic algorithms."""
    import torch

    keras_seed(value, tf_data=tf_data)
    if deterministic:
        torch.use_deterministic_algorithms(True)


def _sync(placement: Placement) -> None:
    import torch

    if placement.device == "gpu":
        torch.cuda.synchronize()


def resident_step(mode: str, model, placement: Placement, x, y):
    """(step, sync): Keras's torch train (predict) function on batches placed on the device once;
    sync waits for the GPU and reads one value back."""
    import keras
    import torch

    with placement.scope():
        xs = keras.ops.convert_to_tensor(x)
        ys = keras.ops.convert_to_tensor(y)

    def read(value) -> float:
        _sync(placement)
        return float(value.detach().reshape(-1)[0].float().cpu()) if isinstance(value, torch.Tensor) else float(value)

    if mode == "train":
        data = (xs, ys)
        model._symbolic_build(data_batch=data)  # optimizer and metric variables, as train_on_batch does
        model.make_train_function()
        model.train()  # torch.nn.Module mode, as fit sets it
        return (lambda: model.train_function([data])), (lambda logs: read(logs["loss"]))
    model.make_predict_function()
    model.eval()
    return (lambda: model.predict_function([(xs,)])), read


def matmul(placement: Placement, dtype: str, n: int, chain: int):
    """(call, sync): ``chain`` dependent ``n x n`` matmuls reduced to a scalar."""
    import math

    import torch

    where = placement.devices[0]
    gen = torch.Generator(device="cpu").manual_seed(0)
    kind = getattr(torch, dtype)
    a = torch.randn((n, n), generator=gen).to(where, kind)
    # entries ~ N(0, 1/n) keep the chained product's scale steady, so fp16 does not overflow
    b = (torch.randn((n, n), generator=gen) / math.sqrt(n)).to(where, kind)

    @torch.no_grad()
    def call():
        c = a
        for _ in range(chain):
            c = c @ b
        return c.float().sum()

    def sync(out):
        _sync(placement)
        return float(out.cpu())

    return call, sync


def reset_peak_memory(placement: Placement) -> bool:
    import torch

    if placement.device != "gpu":
        return False
    torch.cuda.reset_peak_memory_stats()
    return True


def peak_memory(placement: Placement) -> dict | None:
    import torch

    if placement.device != "gpu":
        return None
    return {
        "kind": "device",
        "bytes": int(torch.cuda.max_memory_allocated()),
        "source": "torch.cuda.max_memory_allocated (reset per benchmark)",
    }


def out_of_memory(e: BaseException) -> str | None:
    """A one-line description when ``e`` is an out-of-memory error (CUDA or host), else None."""
    name = type(e).__name__
    if isinstance(e, MemoryError) or name == "OutOfMemoryError" or re.search(r"CUDA out of memory", str(e)):
        return f"out of memory: {first_line(e)}"
    return None
