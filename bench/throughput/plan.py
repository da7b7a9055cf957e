"""The throughput plan: the suite's options, declared once, and their resolution into benchmark cases.

``OPTIONS`` feeds both entry points (``python -m bench throughput`` and ``pytest bench/throughput/suite``);
``resolve`` checks every value once and expands the comma-separated axes into ``Case``s. With no
options: resnet20, train and inference, batch 128, fp32, no XLA, synthetic data, on the CPU, on
the tensorflow backend, written to ``results/throughput/<time>-cpu.json``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from bench import backends
from bench.devices import AUTO_BATCH, COMPILE_MODES, PRECISIONS, check_device
from bench.errors import UsageError, first_line
from bench.io import FileClaim, distinct_outputs, fill_template, png_file, writable_file
from bench.throughput import shard as sharding
from bench.throughput.workload import DATA, MODES, Case

SUITE_DIR = Path(__file__).resolve().parent / "suite"  # the pytest-benchmark suite
DEFAULT_OUT = "results/throughput/{time}-{device}.json"
ISOLATE = ("model", "case", "none")  # --isolate: what runs in a child process of its own (bench.throughput.isolate)

# flag -> argparse/pytest keyword arguments; lists are comma-separated strings
OPTIONS: dict[str, dict] = {
    "--backend": dict(
        default=backends.DEFAULT_BACKEND,
        help=f"Keras backends, comma-separated: {', '.join(backends.BACKENDS)}; each runs in its own process (default: %(default)s)",
    ),
    "--device": dict(default="cpu", help="cpu, gpu (one, or mirrored over all visible) or tpu (default: %(default)s)"),
    "--tpu": dict(
        default=None, help="TPU name or grpc:// address for TPUClusterResolver (default: $TPU_NAME, else 'local')"
    ),
    "--models": dict(default="resnet20", help="model names or globs, comma-separated (default: %(default)s)"),
    "--mode": dict(default="train,infer", help="train, infer, or both as train,infer (default: %(default)s)"),
    "--batch-size": dict(
        default="auto",
        help="global batch sizes, comma-separated; 'auto': per input size and device (default: %(default)s)",
    ),
    "--precision": dict(default="fp32", help=f"{', '.join(PRECISIONS)}; comma-separated (default: %(default)s)"),
    "--xla": dict(
        default=None,
        help="tensorflow and jax: on, off or auto (Keras's choice); comma-separated (default: off on tensorflow, on on jax)",
    ),
    "--compile": dict(
        default=None, help="torch: torch.compile on, off or auto (Keras's choice); comma-separated (default: off)"
    ),
    "--data": dict(
        default="synthetic",
        help="synthetic (device-resident batches) or real (CIFAR-10 JPEG tf.data pipeline) (default: %(default)s)",
    ),
    "--rounds": dict(default=10, type=int, help="timed rounds per benchmark (default: %(default)s)"),
    "--warmup-rounds": dict(default=2, type=int, help="untimed rounds after compilation (default: %(default)s)"),
    "--max-rounds": dict(default=20, type=int, help="rounds allowed when the spread is high (default: %(default)s)"),
    "--max-cv": dict(
        default=0.05,
        type=float,
        help="coefficient of variation above which more rounds run and the result is marked noisy (default: %(default)s)",
    ),
    "--round-seconds": dict(
        default=1.0, type=float, help="target length of a round; sets steps per round (default: %(default)s)"
    ),
    "--steps": dict(default=None, type=int, help="steps per round (default: from --round-seconds)"),
    "--cpu-replicas": dict(
        default=1,
        type=int,
        help="split the CPU into N logical devices and mirror over them (tests the multi-device path)",
    ),
    "--seed": dict(default=0, type=int, help="seed for weights and synthetic data (default: %(default)s)"),
    "--isolate": dict(
        default="model",
        help="child processes: one per model (its cases), one per case, or none (in this process); a child that "
        "dies (killed for memory, a crash in native code) is its case's error and the sweep goes on (default: %(default)s)",
    ),
    "--data-archive": dict(default=None, help="CIFAR-10 JPEG archive for --data real (default: bench.training.data's)"),
    "--bench-out": dict(
        default=DEFAULT_OUT, help="result JSON, written atomically; '' for none (default: %(default)s)"
    ),
    "--plot": dict(default=None, help="also write a PNG of images/s per model and precision here"),
    "--pytest-table": dict(
        action="store_true", default=False, help="also print pytest-benchmark's own table (seconds per round)"
    ),
    "--shard": dict(
        default=None,
        help="i/N: run the i-th of N shares of the plan (numbered from 1), split by estimated cost (MACs x batch); "
        "join the N results with python -m bench merge",
    ),
    # -- one job over several workers (bench.throughput.workers, bench.cluster)
    "--workers": dict(
        default=1,
        type=int,
        help="time each case across N workers of one job on this machine (loopback), and one worker at the "
        "per-worker batch first: the job's images/s, per worker, and the scaling efficiency (default: %(default)s)",
    ),
    "--cluster": dict(
        default=None,
        help="this process is one worker of a multi-host job: every worker's HOST:PORT, worker 0 (which writes) "
        "first; 'auto' on jax (TPU pod slice, Slurm, Open MPI); TF_CONFIG in the environment does the same",
    ),
    "--task-index": dict(default=None, type=int, help="which worker of --cluster this process is"),
    "--worker-timeout": dict(
        default=60.0,
        type=float,
        help="a worker silent for S seconds fails the job; workers get 5 x S to join (default: %(default)s)",
    ),
}


def dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def _split(text: str) -> list[str]:
    return [p.strip() for p in str(text).split(",") if p.strip()]


@dataclasses.dataclass(frozen=True)
class ThroughputPlan:
    """The suite's resolved options: what will run, and how."""

    backends: tuple[str, ...]
    device: str
    tpu: str | None
    cases: tuple[Case, ...]
    rounds: int
    warmup_rounds: int
    max_rounds: int
    max_cv: float
    round_seconds: float
    steps: int | None
    cpu_replicas: int
    seed: int
    data_archive: str | None
    bench_out: str
    plot: str | None
    pytest_table: bool = False
    isolate: str = "none"
    shard: sharding.Shard | None = None  # with --shard: this share of the whole plan (``cases`` are its cases)
    workers: int = 1  # --workers: the launcher's; a worker's own job is ``cluster``
    cluster: object = None  # bench.cluster.Cluster: this process is one worker of a multi-worker job

    def to_dict(self) -> dict:
        """The resolved options, ``cases`` as ids (the shard is the result's ``harness.shard``)."""
        d = dataclasses.asdict(self)
        d.pop("shard")
        d["cases"] = [c.id for c in self.cases]
        d["cluster"] = None if self.cluster is None else self.cluster.record()
        return d

    def identity(self) -> dict:
        """What decides what is measured and how: the options and the cases, not where results go."""
        return {k: v for k, v in self.to_dict().items() if k not in sharding.RUNNER_OPTIONS}


def backend_list(text: str) -> list[str]:
    """The backends ``--backend`` names, in order, each once (checked by ``resolve``)."""
    return list(dict.fromkeys(_split(text)))


def _choose(flag: str, text: str, valid) -> list[str]:
    values = _split(text)
    bad = [v for v in values if v not in valid]
    if bad or not values:
        raise UsageError(f"{flag} {text!r} is invalid; valid: {', '.join(valid)} (comma-separated)")
    return list(dict.fromkeys(values))


def resolve(opts: dict) -> ThroughputPlan:
    """A ``ThroughputPlan`` from option values keyed by dest (argparse namespace or pytest options)."""
    chosen = tuple(_choose("--backend", opts.get("backend", backends.DEFAULT_BACKEND), backends.BACKENDS))
    device = check_device(opts["device"])
    shard = sharding.parse(opts.get("shard"))
    axes = {
        "mode": _choose("--mode", opts["mode"], MODES),
        "precision": _choose("--precision", opts["precision"], tuple(PRECISIONS)),
        "data": _choose("--data", opts["data"], DATA),
    }
    batch_text = _split(opts["batch_size"])
    if not batch_text or not all(b == "auto" or (b.isdecimal() and int(b) > 0) for b in batch_text):
        raise UsageError(
            f"--batch-size {opts['batch_size']!r} is invalid; expected positive integers or 'auto', comma-separated"
        )
    _check_rounds(opts, device)
    isolate = opts.get("isolate", "none")
    if isolate not in ISOLATE:
        raise UsageError(f"--isolate {isolate!r} is invalid; valid: {', '.join(ISOLATE)}")
    compile_modes = _compile_modes(chosen, opts.get("xla"), opts.get("compile"))
    _check_backends(chosen, device, axes, opts)
    if opts.get("tpu") is not None and device != "tpu":
        raise UsageError(f"--tpu {opts['tpu']!r} applies to --device tpu only, not --device {device}")
    if opts.get("data_archive") and "real" not in axes["data"]:
        raise UsageError(
            f"--data-archive {opts['data_archive']!r} applies to --data real only, not --data {opts['data']}"
        )
    archive = _archive(opts, axes)
    outputs = [(flag, out_path(opts[dest(flag)], device)) for flag in ("--bench-out", "--plot") if opts.get(dest(flag))]
    for flag, path in outputs:  # before any measurement: a bad path must not lose the sweep
        (png_file if flag == "--plot" else writable_file)(flag, path)
    distinct_outputs(outputs, [archive] if archive else [])  # never written over what the run reads
    _check_archive(opts, archive)
    from bench.throughput import workers as workers_mod

    job = workers_mod.check(opts, chosen, device, axes)
    names = _model_names(opts["models"])  # last: the model registry imports TensorFlow
    cases = tuple(
        c
        for backend in chosen
        for name in names
        for c in _cases(
            name,
            device,
            batch_text,
            axes | {"compile": compile_modes[backend], "backend": [backend]},
            opts["cpu_replicas"],
        )
    )
    plan = ThroughputPlan(
        backends=chosen,
        device=device,
        tpu=opts.get("tpu"),
        cases=cases,
        rounds=opts["rounds"],
        warmup_rounds=opts["warmup_rounds"],
        max_rounds=opts["max_rounds"],
        max_cv=opts["max_cv"],
        round_seconds=opts["round_seconds"],
        steps=opts["steps"],
        cpu_replicas=opts["cpu_replicas"],
        seed=opts["seed"],
        data_archive=opts.get("data_archive"),
        bench_out=opts.get("bench_out") or "",
        plot=opts.get("plot"),
        pytest_table=bool(opts.get("pytest_table")),
        isolate=isolate,
        workers=opts.get("workers", 1),
        cluster=job,
    )
    workers_mod.check_batches(plan)
    if shard is None:
        return plan
    macs = sharding.model_macs(c.model for c in cases)
    mine, record = sharding.select(cases, plan.identity(), *shard, macs)
    return dataclasses.replace(plan, cases=mine, shard=record)


def _archive(opts: dict, axes: dict) -> Path | None:
    """The CIFAR-10 JPEG archive a ``--data real`` run reads (``--data-archive``, else the default that
    ``bench.training.data.cifar10_jpeg_dir`` reads); None without real data."""
    if "real" not in axes["data"]:
        return None
    from bench.training.data import default_archive

    return Path(opts["data_archive"]).expanduser() if opts.get("data_archive") else default_archive()


def _check_archive(opts: dict, archive: Path | None) -> None:
    """A missing or corrupt archive as one line naming --data-archive, before any measurement rather
    than as a traceback in the first case. The default archive is not needed (nor checked) once its
    extracted copy is in the cache: that copy is what the run reads."""
    if archive is None:
        return
    from bench.training.data import check_archive, extracted

    if opts.get("data_archive") or extracted() is None:
        check_archive("--data-archive", archive)


def _compile_modes(chosen: tuple[str, ...], xla: str | None, torch_compile: str | None) -> dict[str, list[str]]:
    """Each backend's compilation modes: ``--xla`` for tensorflow and jax, ``--compile`` for torch,
    each backend's default where its flag was not given. A flag no chosen backend reads is an error."""
    given = {"--xla": xla, "--compile": torch_compile}
    for flag, text in given.items():
        if text is not None and not any(backends.load(b).COMPILE_FLAG == flag for b in chosen):
            readers = [b for b in backends.BACKENDS if backends.load(b).COMPILE_FLAG == flag]
            raise UsageError(f"{flag} {text!r} applies to --backend {' or '.join(readers)}, not {','.join(chosen)}")
    modes = {}
    for b in chosen:
        module = backends.load(b)
        text = given[module.COMPILE_FLAG]
        modes[b] = _choose(module.COMPILE_FLAG, text, COMPILE_MODES) if text is not None else [module.DEFAULT_COMPILE]
    return modes


def _check_backends(chosen: tuple[str, ...], device: str, axes: dict, opts: dict) -> None:
    """What only the tensorflow backend does here: real input (tf.data), split CPUs, torch on no TPU."""
    others = [b for b in chosen if b != "tensorflow"]
    if others and "real" in axes["data"]:
        raise UsageError(f"--data real feeds a tf.data pipeline on --backend tensorflow only, not {','.join(others)}")
    if others and opts["cpu_replicas"] > 1:
        raise UsageError(f"--cpu-replicas splits the CPU for tensorflow's MirroredStrategy; not for {','.join(others)}")
    if device == "tpu" and "torch" in chosen:
        raise UsageError("--device tpu runs on --backend tensorflow or jax, not torch")


def _model_names(text: str) -> list[str]:
    """Registered names for ``--models`` (``models.registry.select``); unknown ones are one line."""
    from models.registry import UnknownModelError, select

    try:
        return select(text)
    except UnknownModelError as e:
        raise UsageError(f"--models: {e.args[0]}") from None


MAX_SEED = 2**32 - 1
MAX_ROUND_SECONDS = 3600.0


def _check_rounds(opts: dict, device: str) -> None:
    for flag, low, high in (
        ("--rounds", 2, None),
        ("--warmup-rounds", 0, None),
        ("--cpu-replicas", 1, os.cpu_count() or 1),
        ("--seed", 0, MAX_SEED),
    ):
        value = opts[dest(flag)]
        if value < low or (high is not None and value > high):
            raise UsageError(
                f"{flag} {value} is invalid; expected {low} to {high}"
                if high
                else f"{flag} {value} is invalid; expected >= {low}"
            )
    if opts["max_rounds"] < opts["rounds"]:
        raise UsageError(f"--max-rounds {opts['max_rounds']} is below --rounds {opts['rounds']}")
    if opts["steps"] is not None and opts["steps"] < 1:
        raise UsageError(f"--steps {opts['steps']} is invalid; expected >= 1")
    for flag, high in (("--round-seconds", MAX_ROUND_SECONDS), ("--max-cv", 1.0)):
        value = opts[dest(flag)]
        if not 0 < value <= high:  # NaN and Inf fail too
            raise UsageError(f"{flag} {value} is invalid; expected a number above 0 and up to {high:g}")
    if opts["cpu_replicas"] > 1 and device != "cpu":
        raise UsageError("--cpu-replicas applies to --device cpu only")


def _cases(name: str, device: str, batch_text: list[str], axes: dict, replicas: int = 1) -> list[Case]:
    """``name``'s cases: every mode x batch size x precision x compilation x data on each backend
    (``auto`` batch by input size and device)."""
    import models

    small = max(models.get_spec(name).input_shape[:2]) <= 64
    auto = AUTO_BATCH[device][0 if small else 1]
    sizes = list(dict.fromkeys(auto if b == "auto" else int(b) for b in batch_text))
    for bs in sizes:
        if bs % replicas:
            raise UsageError(
                f"--batch-size {bs} is invalid with --cpu-replicas {replicas}; each replica takes an equal share"
            )
    return [
        Case(name, mode, bs, precision, compile_mode, data, backend)
        for backend in axes["backend"]
        for mode in axes["mode"]
        for bs in sizes
        for precision in axes["precision"]
        for compile_mode in axes["compile"]
        for data in axes["data"]
    ]


def out_path(template: str, device: str) -> Path | None:
    """The result file for this run; ``{time}`` and ``{device}`` are filled in."""
    return fill_template(template, device=device) if template else None


def out_file(template: str, device: str) -> FileClaim | None:
    """The result file for this run as every writer of it writes (``FileClaim``): when ``template``
    holds ``{time}``, a name no other run (started in the same second) has written; None for ''."""
    return FileClaim(template, device=device) if template else None


def plot_file(plan: ThroughputPlan, results: FileClaim | None) -> FileClaim:
    """``--plot``'s file, claimed as the result file is (``out_file``): its ``{time}`` is the run's, the
    result file's stamp, so the figure and the results it shows share a name's time."""
    return FileClaim(plan.plot, stamp=None if results is None else results.stamp, device=plan.device)


# pytest options after -- with which pytest-benchmark measures nothing: refused before any work
MEASURES_NOTHING = {
    "collectonly": "--collect-only",
    "benchmark_disable": "--benchmark-disable",
    "benchmark_skip": "--benchmark-skip",
}
NOTHING_MEASURED = "nothing was measured: no case recorded a result or an error"


def check_pytest_args(args: list[str]) -> None:
    """pytest's arguments (after ``--``) parsed as pytest will parse them, before any child starts: a
    usage error (an unknown option, a missing value) or an option with which nothing is measured
    (``MEASURES_NOTHING``) is one line (``UsageError``). Parsing imports no framework."""
    if not args:
        return
    import pytest
    from _pytest.config import _prepareconfig  # pytest's own parsing (plugins and the suite's options loaded)

    try:
        config = _prepareconfig(["--capture=no", str(SUITE_DIR), *args])  # no: parsing captures nothing
    except pytest.UsageError as e:
        said = [line.split("error:", 1)[1].strip() for line in str(e).splitlines() if "error:" in line]
        raise UsageError(f"pytest arguments after -- are invalid: {said[0] if said else first_line(e)}") from None
    try:
        given = [flag for name, flag in MEASURES_NOTHING.items() if getattr(config.option, name, False)]
    finally:
        config._ensure_unconfigure()
    if given:
        raise UsageError(
            f"{given[0]} after -- makes pytest measure nothing, so a throughput run could record no result; "
            "drop it (choose cases with --models, --mode, or -k)"
        )
