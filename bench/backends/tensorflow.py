"""The tensorflow backend: tf.distribute strategies, tf.function steps, XLA by ``--xla``.

One GPU gets a OneDeviceStrategy and several a MirroredStrategy; a TPU gets a TPUStrategy from
TPUClusterResolver; the CPU can be split into logical devices (``--cpu-replicas``) to test the
mirrored path without GPUs. One worker of a multi-worker job (``bench.cluster``) gets a
MultiWorkerMirroredStrategy over the cluster in ``TF_CONFIG``, its coordination service given the
job's heartbeat and join timeouts. The wait for the device is a read-back of the step's loss (or of one
output element), which blocks until the step has run.
"""

from __future__ import annotations

import os
import re

from bench import devices
from bench.backends import Placement
from bench.errors import UsageError, first_line

COMPILE_FLAG = "--xla"
COMPILE_MODES = devices.COMPILE_MODES
DEFAULT_COMPILE = "off"

# The TPU strategy is expensive to set up and its system may be initialised only once per
# process; keep the first one (per TPU name) for later callers.
_TPU_STRATEGIES: dict[str, object] = {}


def versions() -> dict:
    import tensorflow as tf

    build = tf.sysconfig.get_build_info()
    return {
        "tensorflow": tf.__version__,
        "cuda_version": build.get("cuda_version"),
        "cudnn_version": build.get("cudnn_version"),
    }


def accelerators() -> list[dict]:
    """Visible GPUs/TPUs with the names TensorFlow reports for them."""
    import tensorflow as tf

    found = []
    for kind in ("GPU", "TPU"):
        for dev in tf.config.list_physical_devices(kind):
            details = tf.config.experimental.get_device_details(dev) if kind == "GPU" else {}
            found.append(
                {
                    "kind": kind,
                    "name": dev.name,
                    "model": details.get("device_name", kind),
                    "compute_capability": details.get("compute_capability"),
                }
            )
    return found


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
    logical CPUs). gpu: one visible GPU, or MirroredStrategy over all visible ones. tpu:
    TPUClusterResolver(``tpu_name(tpu)``) and TPUStrategy. A device that is not there raises
    ``UsageError``. ``device`` was checked by the caller's options (``check_device``).
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


def device_class(device: str) -> str:
    """The stable key naming the hardware ``device`` runs on (see ``bench.devices``)."""
    import tensorflow as tf

    if device == "cpu":
        return devices.cpu_class()
    if device == "gpu":
        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            raise UsageError("--device gpu: no GPU found")
        names = [tf.config.experimental.get_device_details(g).get("device_name", "GPU") for g in gpus]
        return devices.accelerator_class("gpu", names)
    accel = os.environ.get("TPU_ACCELERATOR_TYPE")
    if accel:
        return f"tpu:{devices.squash(accel)}"
    cores = len(tf.config.list_logical_devices("TPU"))
    if not cores:
        raise UsageError("--device tpu: no TPU initialised; call strategy_for('tpu') first")
    return f"tpu:x{cores}"


def open(device: str, *, tpu: str | None = None, cpu_replicas: int = 1, cluster=None) -> Placement:  # noqa: A001
    """The strategy for ``device`` (the CPU split into ``cpu_replicas`` logical devices first); with
    ``cluster`` (a ``bench.cluster.Cluster``), this worker's MultiWorkerMirroredStrategy."""
    if cluster is not None:
        return _open_cluster(device, cluster)
    if cpu_replicas > 1:
        split_cpu(cpu_replicas)
    strategy = strategy_for(device, tpu=tpu)
    return Placement(
        backend="tensorflow",
        device=device,
        device_class=device_class(device),
        replicas=int(strategy.num_replicas_in_sync),
        devices=list(getattr(strategy.extended, "worker_devices", ()) or ()),
        enter=strategy.scope,
        strategy=strategy,
        kind=type(strategy).__name__,
    )


def multi_worker_strategy(resolver, options):
    """tf.distribute.MultiWorkerMirroredStrategy as Keras 3's ``fit`` and train step call it. Keras
    reduces a whole batch structure in one ``strategy.reduce`` call (``_maybe_symbolic_build``) and
    each step's scalar logs along axis 0 (``reduce_per_replica``): MultiWorkerMirroredStrategy
    refuses both across workers (keras-team/keras#20585, tensorflow/tensorflow#72388). This
    subclass's ``reduce`` takes a structure value by value, and a scalar along no axis: the same
    reductions, each a collective every worker joins, so every worker reads the job's loss."""
    import tensorflow as tf

    class _MultiWorkerMirrored(tf.distribute.MultiWorkerMirroredStrategy):
        def reduce(self, reduce_op, value, axis):
            def one(v):
                local = v.values[0] if isinstance(v, tf.distribute.DistributedValues) else v
                rank = getattr(getattr(local, "shape", None), "rank", None)
                return tf.distribute.MultiWorkerMirroredStrategy.reduce(
                    self, reduce_op, v, axis=None if rank == 0 else axis
                )

            return tf.nest.map_structure(one, value)

    return _MultiWorkerMirrored(cluster_resolver=resolver, communication_options=options)


def _open_cluster(device: str, cluster) -> Placement:
    """Join the job: TF_CONFIG written (or kept), the coordination service configured with the job's
    timeouts before MultiWorkerMirroredStrategy starts it (it leaves a configured one alone), the
    strategy made; every worker must arrive within the join timeout."""
    import tensorflow as tf
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.distribute import multi_worker_util
    from tensorflow.python.eager import context

    from bench.backends import cluster_class
    from bench.cluster import joining
    from bench.errors import WorkerLost

    if cluster.auto:
        raise UsageError(
            "--cluster auto is jax's (jax.distributed finds TPU pod slices, Slurm, Open MPI); on tensorflow give "
            "--cluster HOST:PORT,... --task-index I, or TF_CONFIG"
        )
    if device == "tpu":
        raise UsageError(
            "--device tpu: a TPU pod slice is one TPUStrategy (--tpu NAME, no --cluster) on tensorflow, or --cluster auto on jax"
        )
    os.environ["TF_CONFIG"] = cluster.tf_config_json()
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    spec = resolver.cluster_spec()
    ms = lambda s: int(s * 1000)
    context.context().configure_coordination_service(
        service_type="standalone",
        service_leader=multi_worker_util.coordination_leader(spec),
        heartbeat_timeout_in_ms=ms(cluster.timeout_s),
        cluster_register_timeout_in_ms=ms(cluster.join_timeout_s),
        shutdown_barrier_timeout_in_ms=ms(cluster.timeout_s),
        coordinated_jobs=[
            coordination_config_pb2.CoordinatedJob(name=job, num_tasks=spec.num_tasks(job))
            for job in ("chief", "worker")
            if job in spec.jobs
        ],
    )
    try:
        with joining(cluster, every_worker_listens=True):  # the strategy waits for every worker, unbounded
            strategy = multi_worker_strategy(resolver, tf.distribute.experimental.CommunicationOptions())
            strategy.gather(strategy.experimental_distribute_values_from_function(lambda _: tf.zeros([1])), axis=0)
    except tf.errors.OpError as e:  # one gone already
        raise WorkerLost(
            f"the job's {cluster.count} workers did not all join within {cluster.join_timeout_s:g} s "
            f"(5 x --worker-timeout; this is worker {cluster.task_index}): {first_line(e, limit=160)}"
        ) from None
    kind = "GPU" if device == "gpu" and tf.config.list_physical_devices("GPU") else "CPU"
    if device == "gpu" and kind != "GPU":
        raise UsageError("--device gpu: no GPU found on this worker")
    return Placement(
        backend="tensorflow",
        device=device,
        device_class=cluster_class(device_class(device), cluster.count),
        replicas=int(strategy.num_replicas_in_sync),
        devices=list(strategy.extended.worker_devices),
        enter=strategy.scope,
        strategy=strategy,
        kind="MultiWorkerMirroredStrategy",
        cluster=cluster,
    )


def gather_replicas(placement: Placement, value: float) -> list[float]:
    """``value`` from every replica of the job (``strategy.gather``: a collective), in replica order."""
    import tensorflow as tf

    strategy = placement.strategy
    values = strategy.experimental_distribute_values_from_function(lambda _: tf.constant([float(value)], tf.float32))
    return [float(v) for v in strategy.gather(values, axis=0).numpy()]


def sync_statistics(placement: Placement, model) -> None:
    """Average the model's float non-trainable variables (batch norm's moving statistics) over the
    job's replicas (a collective). Keras 3 makes them with aggregation "none", so under tf.distribute
    each replica keeps the statistics of its own share of the batch; averaged, every worker holds the
    same weights (the moving mean is then exactly the average over workers, as a linear recurrence)."""
    import tensorflow as tf

    strategy = placement.strategy
    variables = [v for v in model.non_trainable_variables if v.dtype.startswith("float")]
    if not variables:
        return

    @tf.function
    def means():
        local = strategy.run(lambda: [tf.identity(v.value) for v in variables])  # each replica's own copies
        return strategy.reduce(tf.distribute.ReduceOp.MEAN, local, axis=None)

    for v, mean in zip(variables, means()):
        v.assign(mean)


def jit_compile(mode: str | bool):
    """The ``model.compile(jit_compile=...)`` value for ``--xla`` on/off/auto (auto: Keras's
    default, XLA on GPUs but not on CPUs or under a distribution strategy). TensorFlow's
    auto-clustering is set to match, so tf.functions outside Keras agree."""
    import tensorflow as tf

    if isinstance(mode, str):
        if mode not in COMPILE_MODES:
            raise UsageError(f"--xla {mode!r} is invalid; valid: {', '.join(COMPILE_MODES)}")
        if mode == "auto":
            tf.config.optimizer.set_jit(False)
            return "auto"
        mode = mode == "on"
    tf.config.optimizer.set_jit(bool(mode))
    return bool(mode)


def seed(value: int, *, deterministic: bool = False, tf_data: bool = True) -> None:
    """Seed Python, NumPy, TensorFlow and Keras; with ``deterministic``, also make TensorFlow's
    ops deterministic (slower; some GPU ops then raise instead of running nondeterministically).
    ``tf_data`` is the other backends' (TensorFlow is this backend)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(int(value))
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def distributed_batch(strategy, tensors):
    """``tensors`` (the global batch) split across the strategy's replicas and placed on their devices."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensors(tensors)
    return next(iter(strategy.experimental_distribute_dataset(ds)))


def resident_step(mode: str, model, placement: Placement, x, y):
    """(step, sync): one fit (or predict) step on device-resident batches, and the read-back that waits for it."""
    import keras
    import numpy as np

    strategy = placement.strategy
    if mode == "train":
        model.make_train_function()
        resident = distributed_batch(strategy, (x, y))
        return (lambda: model.train_function([resident])), (lambda logs: float(logs["loss"]))
    model.make_predict_function()
    resident = distributed_batch(strategy, (x,))
    return (lambda: model.predict_function([resident])), (
        lambda out: np.asarray(keras.ops.convert_to_numpy(out)).ravel()[:1]
    )


def matmul(placement: Placement, dtype: str, n: int, chain: int):
    """(call, sync): ``chain`` dependent ``n x n`` matmuls on every replica, reduced to a scalar."""
    import math

    import numpy as np
    import tensorflow as tf

    strategy = placement.strategy
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

    return (lambda: call(values)), lambda out: [float(v) for v in strategy.experimental_local_results(out)]


def _accelerator_names() -> list[str]:
    import tensorflow as tf

    return [d.name.split("device:")[-1] for kind in ("GPU", "TPU") for d in tf.config.list_logical_devices(kind)]


def reset_peak_memory(placement: Placement) -> bool:
    """Reset the accelerators' allocator peaks; False when there is none (the caller uses the RSS)."""
    import tensorflow as tf

    names = _accelerator_names() if placement.device != "cpu" else []
    for dev in names:
        try:
            tf.config.experimental.reset_memory_stats(dev)
        except (ValueError, tf.errors.OpError):
            pass
    return bool(names)


def peak_memory(placement: Placement) -> dict | None:
    """The accelerators' allocator peak, ``{"kind": "device", "bytes", "source"}``; None on the CPU."""
    import tensorflow as tf

    names = _accelerator_names() if placement.device != "cpu" else []
    if not names:
        return None
    total, found = 0, False
    for dev in names:
        try:
            total += int(tf.config.experimental.get_memory_info(dev)["peak"])
            found = True
        except (ValueError, KeyError, tf.errors.OpError):
            pass
    return {
        "kind": "device",
        "bytes": total if found else None,
        "source": f"tf.config.experimental.get_memory_info over {', '.join(names)}",
    }


def out_of_memory(e: BaseException) -> str | None:
    """A one-line description when ``e`` is an out-of-memory error (TF, XLA or host), else None."""
    import tensorflow as tf

    if isinstance(e, (tf.errors.ResourceExhaustedError, MemoryError)):
        return f"out of memory: {first_line(e)}"
    if isinstance(e, tf.errors.OpError) and re.search(r"RESOURCE_EXHAUSTED|out of memory|OOM", str(e)):
        return f"out of memory: {first_line(e)}"
    return None
