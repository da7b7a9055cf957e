"""The jax backend: one device from ``jax.devices``, Keras's jitted train and predict steps, XLA by ``--xla``.

The step is the one ``fit`` (``predict``) runs on jax: Keras's ``train_function(state, iterator)``
over the model's state (trainable, non-trainable, optimizer and metric variables), which returns
the new state; the state is threaded from step to step as ``fit`` does. The wait for the device
is ``jax.block_until_ready`` on the step's output. With ``--xla off`` Keras runs the step
un-jitted (op by op): that is what it means on jax, and it is slow.

One worker of a multi-worker job (``bench.cluster``) calls ``jax.distributed.initialize`` with the
job's timeouts (CPU collectives over gloo), then places the work with
``keras.distribution.DataParallel`` over every device of the job: Keras shards the tf.data input by
process and keeps the weights replicated.
"""

from __future__ import annotations

import contextlib
import re

from bench import devices
from bench.backends import Placement, keras_seed
from bench.errors import UsageError, first_line

COMPILE_FLAG = "--xla"
COMPILE_MODES = devices.COMPILE_MODES
DEFAULT_COMPILE = "on"  # Keras's own default on jax: an un-jitted jax step is not what users run


def versions() -> dict:
    import jax
    import jaxlib

    return {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "jax_default_backend": jax.default_backend()}


def accelerators() -> list[dict]:
    import jax

    found = []
    for dev in jax.devices():
        if dev.platform != "cpu":
            found.append({"kind": dev.platform.upper(), "name": str(dev), "model": dev.device_kind})
    return found


def open(device: str, *, tpu: str | None = None, cpu_replicas: int = 1, cluster=None) -> Placement:  # noqa: A001
    """The first jax device of ``device``'s platform; a missing one is a one-line ``UsageError``. With
    ``cluster`` (a ``bench.cluster.Cluster``), every device of the job under DataParallel."""
    import jax
    import keras

    if cpu_replicas > 1:
        raise UsageError("--cpu-replicas is tensorflow's (MirroredStrategy over logical CPUs); on jax use 1")
    platform = {"cpu": "cpu", "gpu": "gpu", "tpu": "tpu"}[devices.check_device(device)]
    if cluster is not None:
        return _open_cluster(device, platform, cluster)
    try:
        found = jax.devices(platform)
    except RuntimeError as e:
        hint = " (install jax's CUDA build: nox -s bench -- --backend jax --device gpu)" if device == "gpu" else ""
        raise UsageError(
            f"--device {device}: jax {jax.__version__} finds no {device.upper()}{hint}: {first_line(e, limit=160)}"
        ) from None
    dev = found[0]
    name = f"{device}:{dev.id}"
    device_class = devices.cpu_class() if device == "cpu" else devices.accelerator_class(device, [dev.device_kind])
    return Placement("jax", device, device_class, 1, [str(dev)], enter=lambda: keras.device(name))


def _open_cluster(device: str, platform: str, cluster) -> Placement:
    """Join the job through jax.distributed (before any other jax call), then DataParallel over its devices."""
    import math

    import jax
    import keras

    from bench.backends import cluster_class
    from bench.cluster import joining
    from bench.errors import WorkerLost

    if platform == "cpu":
        jax.config.update("jax_cpu_collectives_implementation", "gloo")  # jax's CPU collectives across processes
    seconds = lambda s: max(1, math.ceil(s))
    kwargs = dict(  # jax aborts the process at its initialization timeout: ``joining`` ends it first, in one line
        initialization_timeout=seconds(cluster.join_timeout_s) + 60,
        heartbeat_timeout_seconds=seconds(cluster.timeout_s),
        shutdown_timeout_seconds=seconds(cluster.timeout_s),
    )
    if not cluster.auto:
        kwargs.update(
            coordinator_address=cluster.coordinator, num_processes=cluster.count, process_id=cluster.task_index
        )
    try:
        if not jax.distributed.is_initialized():
            with joining(cluster, every_worker_listens=False):
                jax.distributed.initialize(**kwargs)
    except (RuntimeError, ValueError) as e:  # jaxlib's errors: no cluster found, or a worker that never came
        if cluster.auto:
            raise UsageError(
                f"--cluster auto: jax.distributed found no cluster here (TPU pod slice, Slurm, Open MPI): {first_line(e, limit=160)}"
            ) from None
        raise WorkerLost(
            f"the job's {cluster.count} workers did not all join within {cluster.join_timeout_s:g} s "
            f"(5 x --worker-timeout; this is worker {cluster.task_index}): {first_line(e, limit=160)}"
        ) from None
    cluster = cluster.joined(jax.process_index(), jax.process_count())
    try:
        found = jax.devices(platform)
    except RuntimeError as e:
        raise UsageError(
            f"--device {device}: jax finds no {device.upper()} on this worker: {first_line(e, limit=160)}"
        ) from None
    distribution = keras.distribution.DataParallel(devices=found)
    keras.distribution.set_distribution(distribution)  # models built from now on are replicated over the job
    local = jax.local_devices(backend=platform)[0]
    device_class = devices.cpu_class() if device == "cpu" else devices.accelerator_class(device, [local.device_kind])
    return Placement(
        "jax",
        device,
        cluster_class(device_class, cluster.count),
        len(found),
        [str(d) for d in found],
        enter=distribution.scope,
        strategy=distribution,
        kind="keras.distribution.DataParallel",
        cluster=cluster,
    )


def gather_replicas(placement: Placement, value: float) -> list[float]:
    """``value`` from every process of the job (``multihost_utils.process_allgather``: a collective)."""
    import numpy as np
    from jax.experimental import multihost_utils

    if placement.cluster is None:
        return [float(value)]
    return [float(v) for v in np.asarray(multihost_utils.process_allgather(np.array([value], np.float32))).ravel()]


def sync_statistics(placement: Placement, model) -> None:
    """jax: nothing to do, the statistics are computed over the job's whole batch (one SPMD program)."""


def jit_compile(mode: str):
    """The ``model.compile(jit_compile=...)`` value for ``--xla`` on/off/auto (auto: Keras's default, jit)."""
    if mode not in COMPILE_MODES:
        raise UsageError(f"--xla {mode!r} is invalid; valid: {', '.join(COMPILE_MODES)}")
    return {"on": True, "off": False, "auto": "auto"}[mode]


def seed(value: int, *, deterministic: bool = False, tf_data: bool = True) -> None:
    """Seed Python, NumPy and Keras's jax generator (jax's own ops are deterministic on the CPU),
    and TensorFlow for tf.data unless ``tf_data`` is False (``bench.backends.keras_seed``)."""
    keras_seed(value, tf_data=tf_data)


def resident_step(mode: str, model, placement: Placement, x, y):
    """(step, sync): Keras's jax train (predict) function over state threaded from step to step,
    on batches placed on the device once; sync blocks until the output is ready and reads one value.
    In a multi-worker job the global batch is laid out over the job's devices (``x`` and ``y`` are
    the same on every worker) and the state is built under the job's distribution."""
    import jax
    import keras
    import numpy as np

    distribution = placement.strategy  # the job's keras.distribution.DataParallel; None in one process
    with placement.scope() if distribution is not None else contextlib.nullcontext():
        if distribution is not None:
            xs, ys = (keras.distribution.distribute_tensor(a, distribution.get_data_layout(a.shape)) for a in (x, y))
        else:
            with placement.scope():
                xs = keras.ops.convert_to_tensor(x)
                ys = keras.ops.convert_to_tensor(y)
        if mode == "train":
            data = (xs, ys, None)
            model._symbolic_build(data_batch=data)  # optimizer and metric variables, as train_on_batch does
            model.make_train_function()
            state = [
                model._get_jax_state(
                    trainable_variables=True,
                    non_trainable_variables=True,
                    optimizer_variables=True,
                    metrics_variables=True,
                )
            ]
        else:
            data = (xs,)
            model.make_predict_function()
            state = [model._get_jax_state(trainable_variables=True, non_trainable_variables=True)]
    if mode == "train":

        def step():
            logs, state[0] = model.train_function(state[0], iter([data]))
            return logs

        return step, lambda logs: float(jax.block_until_ready(logs["loss"]))

    def infer():
        out, state[0] = model.predict_function(state[0], iter([data]))
        return out

    if distribution is not None:  # the output spans the job: read this worker's own part
        return infer, lambda out: np.asarray(jax.block_until_ready(out).addressable_data(0)).ravel()[:1]
    return infer, lambda out: np.asarray(jax.block_until_ready(out)).ravel()[:1]


def matmul(placement: Placement, dtype: str, n: int, chain: int):
    """(call, sync): ``chain`` dependent ``n x n`` matmuls, jitted, reduced to a scalar."""
    import math

    import jax
    import jax.numpy as jnp
    import numpy as np

    dev = jax.local_devices(backend=placement.device)[0]  # this process's own (a job's others are not addressable)
    rng = np.random.default_rng(0)
    a = jax.device_put(jnp.asarray(rng.standard_normal((n, n), dtype=np.float32), dtype=dtype), dev)
    # entries ~ N(0, 1/n) keep the chained product's scale steady, so fp16 does not overflow
    b = jax.device_put(jnp.asarray(rng.standard_normal((n, n), dtype=np.float32) / math.sqrt(n), dtype=dtype), dev)

    @jax.jit
    def body(c, m):
        for _ in range(chain):
            c = c @ m
        return jnp.sum(c.astype(jnp.float32))

    return (lambda: body(a, b)), lambda out: float(jax.block_until_ready(out))


def _stats(placement: Placement) -> dict | None:
    import jax

    if placement.device == "cpu":
        return None
    try:
        return jax.local_devices(backend=placement.device)[0].memory_stats()
    except (RuntimeError, AttributeError):
        return None


def reset_peak_memory(placement: Placement) -> bool:
    """jax cannot reset its allocator's peak: False on the CPU (the caller uses the RSS), True where
    ``peak_memory`` reads the allocator (a peak since the process started)."""
    return bool(_stats(placement))


def peak_memory(placement: Placement) -> dict | None:
    found = _stats(placement)
    if not found or "peak_bytes_in_use" not in found:
        return None
    return {
        "kind": "device",
        "bytes": int(found["peak_bytes_in_use"]),
        "source": "jax Device.memory_stats()['peak_bytes_in_use'] (since the process started: jax cannot reset it)",
    }


def out_of_memory(e: BaseException) -> str | None:
    """A one-line description when ``e`` is an out-of-memory error (XLA's RESOURCE_EXHAUSTED or host), else None."""
    if isinstance(e, MemoryError) or re.search(r"RESOURCE_EXHAUSTED|[Oo]ut of memory", str(e)):
        return f"out of memory: {first_line(e)}"
    return None
