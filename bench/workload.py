"""What a throughput benchmark runs: one registered model's compiled train or inference step.

The step is the one ``model.fit`` / ``model.predict`` run: ``model.compile`` then Keras's own
``train_function`` / ``predict_function`` (forward, loss, backward and optimizer update for
training), called under the device's distribution strategy. Synthetic batches are placed on the
devices once, so the step measures the model and not the input; ``--data real`` feeds it from a
tf.data pipeline instead (``bench.pipeline``), through the distributed iterator ``fit`` uses.

Also here: the matmul reference (the device's practical FLOP/s in the benchmark's precision,
against which utilization is stated), peak memory, and out-of-memory detection.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import re
from pathlib import Path
from typing import Any, Callable

MODES = ("train", "infer")
DATA = ("synthetic", "real")
# Training costs about three forward passes (forward, backward w.r.t. activations and w.r.t.
# weights); one multiply-add is two FLOPs.
FLOPS_PER_MAC = {"train": 6, "infer": 2}


@dataclasses.dataclass(frozen=True)
class Case:
    """One benchmark: a model in a mode at a global batch size, precision, XLA setting and input."""

    model: str
    mode: str
    batch_size: int
    precision: str = "fp32"
    xla: str = "off"
    data: str = "synthetic"

    @property
    def id(self) -> str:
        """The benchmark's stable name (pytest id, baseline key suffix)."""
        return f"{self.model}-{self.mode}-bs{self.batch_size}-{self.precision}-xla_{self.xla}-{self.data}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Workload:
    """A compiled step ready to time: ``step()`` runs one, ``sync(out)`` reads its output back."""

    case: Case
    model: Any
    step: Callable[[], Any]
    sync: Callable[[Any], Any]
    images_per_step: int
    replicas: int
    macs_per_image: int | None
    synthetic_step: Callable[[], Any] | None = None  # for --data real: the same model on resident batches


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:240] if text else ''}".rstrip(": ")


def out_of_memory(e: BaseException) -> str | None:
    """A one-line description when ``e`` is an out-of-memory error (TF, XLA or host), else None."""
    import tensorflow as tf

    if isinstance(e, (tf.errors.ResourceExhaustedError, MemoryError)):
        return f"out of memory: {_first_line(e)}"
    if isinstance(e, tf.errors.OpError) and re.search(r"RESOURCE_EXHAUSTED|out of memory|OOM", str(e)):
        return f"out of memory: {_first_line(e)}"
    return None


def _distributed_batch(strategy, tensors):
    """``tensors`` (the global batch) split across the strategy's replicas and placed on their devices."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensors(tensors)
    return next(iter(strategy.experimental_distribute_dataset(ds)))


def build(case: Case, strategy, *, jit_compile, seed: int = 0, data_options: dict | None = None,
          model_fn: Callable[[], Any] | None = None) -> Workload:
    """Build and compile ``case``'s model under ``strategy`` (the precision policy must already be set).
    The first call of ``step()`` traces and compiles; time it apart. ``model_fn`` builds another
    network in place of the registered one (same input shape and classes), e.g. a keras.applications
    model to compare with."""
    import keras
    import numpy as np
    import tensorflow as tf

    import models
    from bench.errors import UsageError

    if case.mode not in MODES:
        raise UsageError(f"--mode {case.mode!r} is invalid; valid: {', '.join(MODES)}")
    if case.data not in DATA:
        raise UsageError(f"--data {case.data!r} is invalid; valid: {', '.join(DATA)}")
    replicas = int(strategy.num_replicas_in_sync)
    if case.batch_size < 1 or case.batch_size % replicas:
        raise UsageError(f"--batch-size {case.batch_size} must be a positive multiple of the {replicas} replicas")
    spec = models.get_spec(case.model)
    with strategy.scope():
        model = model_fn() if model_fn else models.create(case.model)
        model.compile(
            optimizer=keras.optimizers.SGD(learning_rate=0.01, momentum=0.9),
            loss=keras.losses.SparseCategoricalCrossentropy(),
            jit_compile=jit_compile,
        )
    try:
        from models.flops import count_macs

        macs = int(count_macs(model))
    except ImportError:
        macs = None
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((case.batch_size, *spec.input_shape), dtype=np.float32)
    y = rng.integers(0, spec.classes, size=(case.batch_size,), dtype=np.int64)

    if case.mode == "train":
        model.make_train_function()
        resident = _distributed_batch(strategy, (x, y))
        synthetic = lambda: model.train_function([resident])  # noqa: E731  one fit step on device-resident data
        sync = lambda logs: float(logs["loss"])  # noqa: E731
    else:
        model.make_predict_function()
        resident = _distributed_batch(strategy, (x,))
        synthetic = lambda: model.predict_function([resident])  # noqa: E731
        sync = lambda out: np.asarray(keras.ops.convert_to_numpy(out)).ravel()[:1]  # noqa: E731

    step, real_synthetic = synthetic, None
    if case.data == "real":
        from bench.pipeline import real_dataset

        ds = real_dataset(spec.input_shape, case.batch_size, seed=seed, **(data_options or {}))
        iterator = iter(strategy.experimental_distribute_dataset(ds))
        if case.mode == "train":
            step = lambda: model.train_function(iterator)  # noqa: E731  fit's own path through the iterator
        else:
            step = lambda: model.predict_function([next(iterator)])  # noqa: E731  predict's
        real_synthetic = synthetic
    return Workload(case, model, step, sync, case.batch_size, replicas, macs, real_synthetic)


def release(workload: Workload | None) -> None:
    """Drop a workload's model and Keras's global state so the next benchmark starts clean."""
    import keras

    if workload is not None:
        workload.model = workload.step = workload.synthetic_step = None
    keras.backend.clear_session()
    gc.collect()


# ---------------------------------------------------------------------------------------------
# The matmul reference: what the device's matrix units deliver in practice at this precision.


def matmul_reference(strategy, dtype: str, *, n: int | None = None, chain: int = 4, rounds: int = 5,
                     target_round_s: float = 0.25) -> dict:
    """FLOP/s of square ``n x n`` matmuls in ``dtype`` on every replica at once (best round).

    ``n`` defaults to 1024 on CPUs and 4096 on accelerators. Each call chains ``chain`` dependent
    matmuls (so none can be skipped) and reduces the result to a scalar read back to the host.
    """
    import numpy as np
    import tensorflow as tf

    from bench.timing import steps_for, time_call

    on_cpu = all("CPU" in d.upper() for d in getattr(strategy.extended, "worker_devices", ["CPU"]))
    n = n or (1024 if on_cpu else 4096)
    rng = np.random.default_rng(0)
    a = tf.constant(rng.standard_normal((n, n), dtype=np.float32), dtype=dtype)
    # entries ~ N(0, 1/n) keep the chained product's scale steady, so fp16 does not overflow
    b = tf.constant(rng.standard_normal((n, n), dtype=np.float32) / math.sqrt(n), dtype=dtype)
    values = strategy.experimental_distribute_values_from_function(lambda ctx: (tf.identity(a), tf.identity(b)))

    def body(ab):
        c, m = ab
        for _ in range(chain):
            c = tf.matmul(c, m)
        return tf.reduce_sum(tf.cast(c, tf.float32))

    @tf.function
    def call(ab):
        return strategy.run(body, args=(ab,))

    def sync(out):
        return [float(v) for v in strategy.experimental_local_results(out)]

    sync(call(values))  # trace and compile
    one = time_call(lambda: sync(call(values)))
    reps = steps_for(one, target_round_s, hi=50)

    def run_round():
        out = None
        for _ in range(reps):
            out = call(values)
        return sync(out)

    times = [time_call(run_round) for _ in range(rounds)]
    flops = 2.0 * n ** 3 * chain * reps * int(strategy.num_replicas_in_sync)
    rates = [flops / t for t in times]
    return {"dtype": dtype, "n": n, "chain": chain, "calls_per_round": reps,
            "replicas": int(strategy.num_replicas_in_sync), "flops_per_s": max(rates), "samples": rates}


# ---------------------------------------------------------------------------------------------
# Peak memory: the GPU/TPU allocator's own count, or the process's resident set on the CPU.


def _accelerators() -> list[str]:
    import tensorflow as tf

    return [d.name.split("device:")[-1] for kind in ("GPU", "TPU") for d in tf.config.list_logical_devices(kind)]


def reset_peak_memory() -> None:
    """Start a new peak: reset the allocators' statistics, or the kernel's RSS high-water mark."""
    import tensorflow as tf

    devices = _accelerators()
    for dev in devices:
        try:
            tf.config.experimental.reset_memory_stats(dev)
        except (ValueError, tf.errors.OpError):
            pass
    if not devices:
        try:  # Linux: writing 5 to clear_refs resets VmHWM, the peak resident set size
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass


def peak_memory() -> dict:
    """``{"kind": "device"|"rss", "bytes": ..., "source": ...}``; bytes None when unavailable."""
    import tensorflow as tf

    devices = _accelerators()
    if devices:
        total, found = 0, False
        for dev in devices:
            try:
                total += int(tf.config.experimental.get_memory_info(dev)["peak"])
                found = True
            except (ValueError, KeyError, tf.errors.OpError):
                pass
        return {"kind": "device", "bytes": total if found else None,
                "source": f"tf.config.experimental.get_memory_info over {', '.join(devices)}"}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return {"kind": "rss", "bytes": int(line.split()[1]) * 1024, "source": "VmHWM (/proc/self/status)"}
    except OSError:
        pass
    import resource

    return {"kind": "rss", "bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "source": "ru_maxrss (process lifetime)"}
