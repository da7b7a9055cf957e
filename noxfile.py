"""Sessions: `nox -s unit` (tests), `nox -s lint`, `nox -s bench -- --device cpu|gpu|tpu` (throughput),
`nox -s ab -- BASE [HEAD]`, `nox -s merge` (sharded sweeps), `nox -s train`, `nox -s gate`, `nox -s smoke` (CI's accuracy gate), `nox -s nightly` and `nox -s pythons`."""

from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path

import nox

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench.backends import BACKENDS  # noqa: E402  (plain data: imports no framework)
from bench.commands import throughput as throughput_command  # noqa: E402  (its options: plain data, like these)
from bench.training import options as train_options  # noqa: E402  (train's options; bench.commands.train imports NumPy)
from bench.training.recipes import RECIPES  # noqa: E402  (plain data: imports nothing outside the standard library)

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["unit"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"  # the one CI runs
PYTHONS = ("3.11", "3.12", "3.13")  # supported (pyproject's requires-python); `nox -s pythons` tests each
DEVICES = ("cpu", "gpu", "tpu")
# uv installs no bytecode unless told (pip compiles by default): where PYTHONDONTWRITEBYTECODE is set, as
# on CI's machine, every process then compiled TensorFlow's sources again (import tensorflow: 22.7 s of
# CPU instead of 9.3 s, in every test's child process); compiling once at install costs about 30 s
COMPILED = {"UV_COMPILE_BYTECODE": "1"}
# The tests in two pytest-xdist workers, a test file to each at a time (module fixtures, such as parity's
# references and its jax child, run once): in one process they wait on children (imports, command-line
# runs) much of the time, 1.13 of 2 cores busy (README: the times). More workers were not tried: each
# holds TensorFlow and its models (1-2 GB), and a slow test starts 2-3 TensorFlow processes of its own
PARALLEL = ("-n", "auto", "--maxprocesses", "2", "--dist", "loadfile")
UNIT_ARGS = ("tests", "-q", "-m", "not slow and not nightly", "--durations=15")  # --durations: where CI's time goes
# tensorflow-tpu's libtpu wheels are served from Google's own index, not PyPI.
TPU_FIND_LINKS = "https://storage.googleapis.com/libtpu-tf-releases/index.html"


class _Refused(argparse.ArgumentParser):
    """A parser whose mistakes are raised (``session.error`` prints them as one line) instead of exiting."""

    def error(self, message: str):
        raise ValueError(message)


def _command_args(session: nox.Session, command: str, args: list[str], **defaults) -> argparse.Namespace:
    """`args` read as `python -m bench COMMAND` reads them, by its own options (argparse: the last of a
    repeated option wins, an unambiguous abbreviation counts, nothing after `--` is the command's), so
    that a session installs what the command will run on; a mistake the command would refuse is one line."""
    parser = _Refused(prog=f"python -m bench {command}", add_help=False)
    if command == "throughput":
        throughput_command.add_arguments(parser)
    else:  # train (and fingerprint): the recipe, then the train options
        parser.add_argument("recipe")
        train_options.add_arguments(parser)
    parser.set_defaults(**defaults)  # the session's own, where it has one
    try:
        return parser.parse_known_args(args)[0]
    except ValueError as e:
        session.error(f"{parser.prog}: {e}")


def _extras(device: str, backends: str) -> list[str]:
    """pyproject extras for `device` and the comma-separated Keras `backends`: TensorFlow's build for
    the device (also for tf.data, which every backend's training reads), jax's CPU or CUDA build, torch."""
    extras = [device]
    for backend in (b.strip() for b in backends.split(",") if b.strip()):
        if backend == "jax":
            extras.append("jax-cuda" if device == "gpu" else "jax")
        elif backend == "torch":
            extras.append("torch")
        elif backend != "tensorflow":
            raise ValueError(f"--backend {backend!r} is invalid; valid: {', '.join(BACKENDS)}")
    return extras


def _install(session: nox.Session, device: str = "cpu", *, backends: str = "tensorflow") -> None:
    """Install the harness with the TensorFlow build `device` needs and the backends' frameworks (pytest and
    pytest-benchmark come with the harness: throughput runs on them)."""
    if device not in DEVICES:
        session.error(f"--device {device!r} is invalid; valid: {', '.join(DEVICES)}")
    try:
        extras = _extras(device, backends)
    except ValueError as e:
        session.error(str(e))
    extra_args = ["--find-links", TPU_FIND_LINKS] if device == "tpu" else []
    session.install("-e", f".[{','.join(extras)}]", *extra_args, env=COMPILED)


def _parallel(args: list[str]) -> list[str]:
    """pytest-xdist's options for ``args``, unless they choose their own (``-n 0`` runs in this process)."""
    chosen = any(a.startswith(("-n", "--numprocesses")) or a.endswith("no:xdist") for a in args)
    return [] if chosen else list(PARALLEL)


def _unit(session: nox.Session) -> None:
    _install(session, backends="tensorflow,jax")  # the parity tests compare jax with tensorflow
    session.install("--group", "test", env=COMPILED)  # pytest-xdist
    args = session.posargs or list(UNIT_ARGS)
    session.run("pytest", *args, *_parallel(args), env={"TF_CPP_MIN_LOG_LEVEL": "2"})


@nox.session(python=PYTHON)
def unit(session: nox.Session) -> None:
    """Unit checks of every model and of the harness: fast, no data, no accelerator (`-- -m slow` for the rest)."""
    _unit(session)


@nox.session(python=PYTHONS, default=False)
def pythons(session: nox.Session) -> None:
    """The unit suite on every supported Python (the nightly workflow runs it; CI runs `unit` on one)."""
    _unit(session)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check (configured in pyproject.toml)."""
    session.install("--group", "lint") if session.venv_backend == "uv" else session.install("ruff==0.17.6")
    session.run("ruff", "check", *session.posargs)
    session.run("ruff", "format", "--check", *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Throughput benchmarks (pytest-benchmark); `-- --device gpu --models 'resnet*'` etc."""
    args = _command_args(session, "throughput", list(session.posargs))
    _install(session, args.device, backends=args.backend)
    session.run("python", "-m", "bench", "throughput", *session.posargs, env={"TF_CPP_MIN_LOG_LEVEL": "2"})


@nox.session(python=PYTHON, default=False)
def ab(session: nox.Session) -> None:
    """A/B throughput of two sides in alternating processes: `-- git:origin/main [HEAD] [--models ...]`."""
    _install(session)  # pytest-benchmark (a dependency): the processes of the current side run the suite here
    session.run(
        "python", "-m", "bench", "ab", *(session.posargs or ("git:origin/main",)), env={"TF_CPP_MIN_LOG_LEVEL": "2"}
    )


@nox.session(python=PYTHON, default=False)
def merge(session: nox.Session) -> None:
    """Join the shards of a sharded throughput sweep (`bench -- --shard i/N`): `-- SHARDS... --out merged.json`."""
    _install(session)
    session.run("python", "-m", "bench", "merge", *session.posargs)


@nox.session(python=PYTHON, default=False)
def report(session: nox.Session) -> None:
    """Plot saved throughput results: `-- results/throughput/*.json --out throughput.png`."""
    _install(session)
    session.run("python", "-m", "bench", "report", *(session.posargs or sorted(glob.glob("results/throughput/*.json"))))


@nox.session(python=PYTHON, default=False)
def train(session: nox.Session) -> None:
    """Train a recipe under a budget: `-- RECIPE --budget epochs=N --seed S --device D`."""
    args = _command_args(session, "train", list(session.posargs or ("smoke_resnet20_cifar10_jpeg",)))
    _install(session, args.device, backends=args.backend)
    session.run(
        "python",
        "-m",
        "bench",
        "train",
        *(session.posargs or ("smoke_resnet20_cifar10_jpeg",)),
        env={"TF_CPP_MIN_LOG_LEVEL": "2"},
    )


@nox.session(python=PYTHON, default=False)
def gate(session: nox.Session) -> None:
    """Gate training results against baselines.json: `-- results/*.json`."""
    _install(session)
    session.run("python", "-m", "bench", "gate", *(session.posargs or ("results/train",)))


def _stamps(out: str) -> dict[Path, tuple[int, int]]:
    """Each result file (JSON) in ``out`` with its inode and modification time."""
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in Path(out).glob("*.json")}


def _train_and_gate(session: nox.Session, trains: list[tuple[str, ...]], out: str, env: dict) -> None:
    """Run each of ``trains`` (train command lines whose results go to ``out``), then gate exactly the
    results they wrote: new files in ``out``, or files they replaced (a result is renamed into place),
    never one an earlier session left there. A train that wrote none fails the session (one line)."""
    before = _stamps(out)
    for argv in trains:
        if session.run(*argv, env=env) is None:  # --install-only: nox ran nothing
            return
    written = [str(p) for p, stamp in sorted(_stamps(out).items()) if before.get(p) != stamp]
    if len(written) < len(trains):
        session.error(f"{len(trains)} training run(s) wrote {len(written)} result(s) in {out}: nothing to gate")
    session.run("python", "-m", "bench", "gate", *written, env=env)


@nox.session(python=PYTHON, default=False)
def smoke(session: nox.Session) -> None:
    """CI's accuracy gate: check the smoke recipe's fingerprint against its baseline (seconds: a changed
    recipe, model or data fails before training), train it on the CIFAR-10 JPEG copy, then gate the
    result it wrote (in results/smoke, or the --out given)."""
    args = _command_args(session, "train", ["smoke_resnet20_cifar10_jpeg", *session.posargs], out="results/smoke")
    _install(session, args.device, backends=args.backend)  # what the options given train on
    env = {"TF_CPP_MIN_LOG_LEVEL": "2"}
    session.run(
        "python", "-m", "bench", "fingerprint", "smoke_resnet20_cifar10_jpeg", "--check", *session.posargs, env=env
    )
    train = ("python", "-m", "bench", "train", "smoke_resnet20_cifar10_jpeg", "--out", args.out, *session.posargs)
    _train_and_gate(session, [train], args.out, env)  # the last --out is the one train uses


@nox.session(python=PYTHON, default=False)
def nightly(session: nox.Session) -> None:
    """The articles' recipes at their full budget on an accelerator, gated: `-- --device gpu` (or tpu; gpu
    unless told otherwise: the device installed for is the one trained on). Results: results/nightly, or
    the --out given."""
    args = _command_args(session, "train", ["recipe", *session.posargs], device="gpu", out="results/nightly")
    _install(session, args.device, backends=args.backend)
    trains = [
        ("python", "-m", "bench", "train", recipe, "--budget", "full", "--device", args.device, "--out", args.out)
        + tuple(session.posargs)
        for recipe in (name for name, r in RECIPES.items() if r.reported)  # those with the article's figure
    ]
    _train_and_gate(session, trains, args.out, {"TF_CPP_MIN_LOG_LEVEL": "2"})
