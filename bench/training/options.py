"""The ``train`` command's options: one table, ``OPTIONS``, makes both the argparse flags
(``add_arguments``, for ``python -m bench train``) and the ``Options`` that ``bench.training.loop.train``
takes, defaults included. ``check`` validates every value once, before any data is read or model built.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from bench import cluster as cluster_mod
from bench.backends import BACKENDS, DEFAULT_BACKEND, check_backend
from bench.devices import DEVICES, PRECISIONS, check_device
from bench.errors import UsageError

DEFAULT_OUT = "results/train"
DETERMINISTIC = ("recipe", "on", "off")
MAX_SEED = 2**32 - 1  # NumPy's seeds, which keras.utils.set_random_seed sets too, stop here

# flag -> argparse keyword arguments; the Options field is ``dest`` (the flag without its dashes,
# unless the entry names one) and its default the entry's (a tuple for a list, False for a switch).
OPTIONS: dict[str, dict] = {
    "--budget": dict(default="full", help="epochs=N | steps=N | minutes=M | full (default: the recipe's full budget)"),
    "--seed": dict(default=0, type=int, help="random seed (default: %(default)s)"),
    "--backend": dict(
        default=DEFAULT_BACKEND,
        help=f"Keras backend: {' | '.join(BACKENDS)} (default: %(default)s); the data pipeline is tf.data on each",
    ),
    "--device": dict(default="cpu", help=f"{' | '.join(DEVICES)} (default: %(default)s)"),
    "--tpu": dict(default=None, help="TPU name or address (default: $TPU_NAME or the TPU VM's own)"),
    "--cpu-replicas": dict(
        default=None,
        type=int,
        metavar="N",
        help="split the CPU into N logical devices and mirror over them (the multi-device path without GPUs)",
    ),
    "--precision": dict(default="fp32", help=f"{' | '.join(PRECISIONS)} (default: %(default)s)"),
    "--deterministic": dict(
        choices=list(DETERMINISTIC), default="recipe", help="op determinism (default: as the recipe says)"
    ),
    "--out": dict(
        default=DEFAULT_OUT, help="directory for the result JSON, checkpoints and logs (default: %(default)s)"
    ),
    "--data-dir": dict(default=None, help="tfds data directory (default: $TFDS_DATA_DIR; gs:// paths work)"),
    "--manual-dir": dict(
        default=None, help="directory holding the original dataset archives for offline tfds preparation"
    ),
    "--archive": dict(
        default=None, help="cifar10_jpeg archive (default: $CIFAR10_JPEG_ARCHIVE or ../shared/data/cifar10-jpeg.tar.gz)"
    ),
    "--cache-dir": dict(
        default=None, help="where cifar10_jpeg is extracted (default: $BENCH_CACHE_DIR or ~/.cache/cnn-bench)"
    ),
    "--mock": dict(
        default=None,
        type=int,
        metavar="N",
        help="train on N tfds mock examples per split instead of the real data (results are named mock_<dataset>)",
    ),
    "--set": dict(
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe field (schedule.base=0.01); the result is marked modified",
    ),
    "--steps-per-execution": dict(default=1, type=int, help="steps per compiled call (TPUs like 32+)"),
    "--eager": dict(action="store_true", help="run eagerly, without tf.function (debugging; tests' few steps)"),
    "--fresh": dict(action="store_true", help="ignore an existing checkpoint and start over"),
    "--plot": dict(action="store_true", help="also write the learning curve as a PNG next to the JSON"),
    # -- one job over several workers (bench.cluster); TF_CONFIG in the environment works as --cluster does
    "--workers": dict(
        default=1,
        type=int,
        metavar="N",
        help="start N workers of this run on this machine (loopback) and train across them (default: %(default)s)",
    ),
    "--cluster": dict(
        default=None,
        metavar="HOST:PORT,...",
        help="this process is one worker of a multi-host run: every worker's address, worker 0 (the chief) first; "
        "'auto' on jax finds the cluster (TPU pod slice, Slurm, Open MPI)",
    ),
    "--task-index": dict(default=None, type=int, metavar="I", help="which worker of --cluster this process is"),
    "--worker-timeout": dict(
        default=cluster_mod.DEFAULT_TIMEOUT_S,
        type=float,
        metavar="S",
        help="a worker silent for S seconds fails the run on the others; workers get 5 x S to join (default: %(default)s)",
    ),
}
CLUSTER_FLAGS = ("--workers", "--cluster", "--task-index", "--worker-timeout")


def dest(flag: str) -> str:
    return OPTIONS[flag].get("dest") or flag.lstrip("-").replace("-", "_")


def _field(flag: str) -> tuple[str, type, dataclasses.Field]:
    spec = OPTIONS[flag]
    if spec.get("action") == "store_true":
        return dest(flag), bool, dataclasses.field(default=False)
    if spec.get("action") == "append":
        return dest(flag), tuple, dataclasses.field(default=tuple(spec["default"]))
    kind = spec.get("type", str)
    return dest(flag), kind if spec["default"] is not None else kind | None, dataclasses.field(default=spec["default"])


def _from_args(cls, args: argparse.Namespace):
    """The Options of a parsed command line (``--set`` lists become tuples)."""
    values = {dest(flag): getattr(args, dest(flag)) for flag in OPTIONS}
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


Options = dataclasses.make_dataclass(
    "Options",
    [_field(flag) for flag in OPTIONS],
    frozen=True,
    namespace={"from_args": classmethod(_from_args), "__module__": __name__},
)
Options.__doc__ = "One training run's options: a field for each of ``OPTIONS``' flags, with its default."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add a flag for each option (``OPTIONS``' order is the help's)."""
    for flag, spec in OPTIONS.items():
        parser.add_argument(flag, **spec)


def _at_least_one(flag: str, value: int | None, what: str) -> None:
    if value is not None and value < 1:
        raise UsageError(f"{flag} {value} is invalid; expected {what}")


def check(opts: Options) -> Options:
    """``opts`` if every value is valid, else a one-line ``UsageError`` naming the value and what is
    valid. ``--budget`` is checked where it is resolved against the recipe (``Budget.parse``) and
    ``--set`` where it is applied (``recipes.with_overrides``): both before any data or model."""
    check_backend(opts.backend)
    check_device(opts.device)
    if not str(opts.out).strip():  # '' would train into the current directory
        raise UsageError(f"--out {opts.out!r} is empty; expected a directory")
    if opts.backend != "tensorflow" and opts.cpu_replicas is not None:
        raise UsageError(
            f"--cpu-replicas splits the CPU for tensorflow's MirroredStrategy; not for --backend {opts.backend}"
        )
    if opts.backend == "torch" and opts.steps_per_execution != 1:
        raise UsageError(f"--steps-per-execution {opts.steps_per_execution}: Keras on torch runs 1 step per call")
    if opts.precision not in PRECISIONS:
        raise UsageError(f"--precision {opts.precision!r} is invalid; valid: {', '.join(PRECISIONS)}")
    if opts.deterministic not in DETERMINISTIC:
        raise UsageError(f"--deterministic {opts.deterministic!r} is invalid; valid: {', '.join(DETERMINISTIC)}")
    if not 0 <= opts.seed <= MAX_SEED:
        raise UsageError(f"--seed {opts.seed} is invalid; expected 0 to {MAX_SEED}")
    _at_least_one("--cpu-replicas", opts.cpu_replicas, "a number of logical CPUs >= 1")
    if opts.cpu_replicas is not None and opts.device != "cpu":
        raise UsageError(f"--cpu-replicas applies to --device cpu only, not --device {opts.device}")
    if opts.tpu is not None and opts.device != "tpu":
        raise UsageError(f"--tpu {opts.tpu!r} applies to --device tpu only, not --device {opts.device}")
    _at_least_one("--mock", opts.mock, "a positive number of examples")
    _at_least_one("--steps-per-execution", opts.steps_per_execution, "a positive number of steps")
    if opts.cpu_replicas is not None and opts.cpu_replicas > (os.cpu_count() or 1):
        raise UsageError(f"--cpu-replicas {opts.cpu_replicas} is invalid; this machine has {os.cpu_count()} CPU(s)")
    for flag, path in (
        ("--out", opts.out),
        ("--data-dir", opts.data_dir),
        ("--manual-dir", opts.manual_dir),
        ("--cache-dir", opts.cache_dir),
    ):
        if path is not None and Path(path).exists() and not Path(path).is_dir():
            raise UsageError(f"{flag} {str(path)!r} is not a directory")
    cluster_of(opts, environ={})  # the flags; TF_CONFIG is read where the run is set up
    if opts.archive is not None:  # mock data reads no archive: only its name is checked then
        from bench.training.data import CIFAR10_JPEG_SHA256, check_archive

        check_archive("--archive", opts.archive, sha256=None if opts.mock else CIFAR10_JPEG_SHA256)
    return opts


def cluster_of(opts: Options, environ=None):
    """This process's ``bench.cluster.Cluster`` from ``--cluster``/``--task-index`` or ``TF_CONFIG`` in
    ``environ`` (None for one process, and for the ``--workers`` launcher), checked against the
    other options: a one-line ``UsageError`` for what a multi-worker run cannot do."""
    found = cluster_mod.resolve(
        opts.cluster, opts.task_index, timeout_s=opts.worker_timeout, workers=opts.workers, environ=environ
    )
    if found is None and opts.workers == 1:
        return None
    what = f"--workers {opts.workers}" if found is None else found.source
    cluster_mod.check_job(what, backend=opts.backend, device=opts.device, cpu_replicas=opts.cpu_replicas is not None)
    return found


def argv(opts: Options, *, without=CLUSTER_FLAGS) -> list[str]:
    """The command-line flags that give ``opts`` (defaults left out), less the flags in ``without``:
    what each worker started by ``--workers`` is given, with its own ``--cluster``."""
    out: list[str] = []
    for flag, spec in OPTIONS.items():
        value = getattr(opts, dest(flag))
        if flag in without or value == Options.__dataclass_fields__[dest(flag)].default:
            continue
        if spec.get("action") == "store_true":
            out.append(flag)
        elif spec.get("action") == "append":
            for item in value:
                out += [flag, str(item)]
        else:
            out += [flag, str(value)]
    return out
