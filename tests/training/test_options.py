"""The train command's options: one table makes the flags and the Options defaults, and every bad
value is a one-line error (exit 2) before any data is read or model built."""

import argparse

import pytest

from bench.__main__ import main
from bench.errors import UsageError
from bench.training import options
from bench.training.options import OPTIONS, Options


def parser():
    p = argparse.ArgumentParser()
    options.add_arguments(p)
    return p


def test_flags_and_options_defaults_come_from_one_table():
    assert Options.from_args(parser().parse_args([])) == Options()
    assert [f.name for f in Options.__dataclass_fields__.values()] == [options.dest(flag) for flag in OPTIONS]
    assert (Options().budget, Options().seed, Options().out, Options().overrides, Options().eager) == (
        "full",
        0,
        "results/train",
        (),
        False,
    )


def test_every_flag_reaches_its_field():
    args = [
        "--budget",
        "steps=3",
        "--seed",
        "4",
        "--device",
        "tpu",
        "--tpu",
        "t1",
        "--cpu-replicas",
        "2",
        "--precision",
        "mixed_bf16",
        "--deterministic",
        "on",
        "--out",
        "o",
        "--data-dir",
        "d",
        "--manual-dir",
        "m",
        "--archive",
        "a",
        "--cache-dir",
        "c",
        "--mock",
        "5",
        "--set",
        "x=1",
        "--set",
        "y=2",
        "--steps-per-execution",
        "8",
        "--eager",
        "--fresh",
        "--plot",
    ]
    got = Options.from_args(parser().parse_args(args))
    assert got == Options(
        budget="steps=3",
        seed=4,
        device="tpu",
        tpu="t1",
        cpu_replicas=2,
        precision="mixed_bf16",
        deterministic="on",
        out="o",
        data_dir="d",
        manual_dir="m",
        archive="a",
        cache_dir="c",
        mock=5,
        overrides=("x=1", "y=2"),
        steps_per_execution=8,
        eager=True,
        fresh=True,
        plot=True,
    )
    assert Options.from_args(parser().parse_args([])).overrides == ()  # the --set default list is not shared


def test_defaults_pass_the_check():
    assert options.check(Options()) == Options()
    assert options.check(Options(device="tpu", tpu="local", mock=1, cpu_replicas=None, seed=options.MAX_SEED))


@pytest.fixture
def no_training(monkeypatch):
    """Anything past validation (devices, data, model) fails the test."""
    from bench.backends import tensorflow
    from bench.training import data, loop

    def started(*a, **k):
        raise AssertionError("training started: the bad value was not caught up front")

    for owner, name in (
        (tensorflow, "open"),
        (tensorflow, "seed"),
        (data, "pipelines"),
        (loop, "_build_model"),
        (loop, "_fit"),
    ):
        monkeypatch.setattr(owner, name, started)


RECIPE = "smoke_resnet20_cifar10_jpeg"
# flag, its bad arguments, what the one error line says
USAGE_ERRORS = [
    ("recipe", [], "recipe 'resnet56_cifar' is unknown; did you mean resnet56_cifar10"),
    ("--budget", ["--budget", "hours=1"], "--budget 'hours=1' is invalid; expected epochs=N"),
    ("--budget", ["--budget", "epochs=0"], "--budget 'epochs=0' is invalid; expected a positive number up to 1e+12"),
    ("--seed", ["--seed", "-1"], "--seed -1 is invalid; expected 0 to 4294967295"),
    ("--backend", ["--backend", "mxnet"], "--backend 'mxnet' is invalid; valid: tensorflow, jax, torch"),
    (
        "--backend",
        ["--backend", "jax", "--cpu-replicas", "2"],
        "--cpu-replicas splits the CPU for tensorflow's MirroredStrategy; not for --backend jax",
    ),
    (
        "--backend",
        ["--backend", "torch", "--steps-per-execution", "4"],
        "--steps-per-execution 4: Keras on torch runs 1 step per call",
    ),
    ("--device", ["--device", "quantum"], "--device 'quantum' is invalid; valid: cpu, gpu, tpu"),
    ("--tpu", ["--tpu", "v4"], "--tpu 'v4' applies to --device tpu only, not --device cpu"),
    ("--cpu-replicas", ["--cpu-replicas", "0"], "--cpu-replicas 0 is invalid; expected a number of logical CPUs >= 1"),
    (
        "--cpu-replicas",
        ["--cpu-replicas", "2", "--device", "gpu"],
        "--cpu-replicas applies to --device cpu only, not --device gpu",
    ),
    ("--precision", ["--precision", "fp64"], "--precision 'fp64' is invalid; valid: fp32, mixed_bf16, mixed_fp16"),
    ("--out", ["--out", "{file}"], "--out '{file}' is not a directory"),
    ("--out", ["--out", ""], "--out '' is empty; expected a directory"),
    ("--data-dir", ["--data-dir", "{file}"], "--data-dir '{file}' is not a directory"),
    (
        "--data-dir",
        ["--data-dir", "{dir}"],
        "--data-dir '{dir}': recipe 'smoke_resnet20_cifar10_jpeg' trains on cifar10_jpeg",
    ),
    ("--manual-dir", ["--manual-dir", "{dir}"], "--manual-dir '{dir}': recipe 'smoke_resnet20_cifar10_jpeg' trains on"),
    ("--manual-dir", ["--manual-dir", "{file}"], "--manual-dir '{file}' is not a directory"),
    ("--archive", ["--archive", "{dir}"], "--archive '{dir}' is not a file"),
    ("--cache-dir", ["--cache-dir", "{file}"], "--cache-dir '{file}' is not a directory"),
    ("--mock", ["--mock", "0"], "--mock 0 is invalid; expected a positive number of examples"),
    ("--set", ["--set", "nope=1"], "--set 'nope=1': recipe has no field 'nope'"),
    ("--set", ["--set", "batch_size"], "--set 'batch_size' is invalid; expected KEY=VALUE"),
    ("--set", ["--set", "model=resnet999"], "unknown model 'resnet999'; did you mean"),  # before the data
    (
        "--set",
        ["--set", "model_overrides.depth=56"],  # before the data, too
        "resnet20: 'depth' is not an option of this model; valid: input_shape, classes, shortcut,",
    ),
    (
        "--set",
        ["--set", "model_overrides.classes=5"],
        "model_overrides.classes=5: a trained model's classes is its dataset's (cifar10_jpeg); valid keys: shortcut,",
    ),
    (
        "--steps-per-execution",
        ["--steps-per-execution", "0"],
        "--steps-per-execution 0 is invalid; expected a positive number of steps",
    ),
    (
        "--steps-per-execution",
        ["--budget", "steps=3", "--steps-per-execution", "2"],
        "--steps-per-execution 2 does not divide --budget steps=3 (3 steps); expected a divisor of 3",
    ),
    # one run over several workers (bench.cluster)
    ("--workers", ["--workers", "0"], "--workers 0 is invalid; expected 1 to 1024 worker processes on this machine"),
    ("--workers", ["--workers", "2", "--backend", "torch"], "--workers 2: a multi-worker job is tensorflow's"),
    ("--workers", ["--workers", "5"], "--workers 5 does not divide the batch size 128"),
    ("--cluster", ["--cluster", "h:1,h"], "--cluster: 'h' is not HOST:PORT"),
    (
        "--cluster",
        ["--cluster", "h:1,h:2", "--task-index", "0", "--cpu-replicas", "2"],
        "--cpu-replicas with --cluster",
    ),
    ("--task-index", ["--cluster", "h:1,h:2", "--task-index", "-1"], "--task-index -1 is invalid; --cluster names"),
    ("--worker-timeout", ["--worker-timeout", "inf"], "--worker-timeout inf is invalid; expected seconds above 0"),
]
# values argparse itself refuses (type, choices, a switch given a value): exit 2, its message last
PARSE_ERRORS = [
    ("--seed", ["--seed", "x"], "argument --seed: invalid int value: 'x'"),
    ("--cpu-replicas", ["--cpu-replicas", "two"], "argument --cpu-replicas: invalid int value: 'two'"),
    ("--deterministic", ["--deterministic", "maybe"], "argument --deterministic: invalid choice: 'maybe'"),
    ("--mock", ["--mock", "1.5"], "argument --mock: invalid int value: '1.5'"),
    ("--steps-per-execution", ["--steps-per-execution", "x"], "argument --steps-per-execution: invalid int value: 'x'"),
    ("--eager", ["--eager=yes"], "argument --eager: ignored explicit argument 'yes'"),
    ("--fresh", ["--fresh=1"], "argument --fresh: ignored explicit argument '1'"),
    ("--plot", ["--plot=no"], "argument --plot: ignored explicit argument 'no'"),
    ("--workers", ["--workers", "2.5"], "argument --workers: invalid int value: '2.5'"),
    ("--task-index", ["--task-index", "one"], "argument --task-index: invalid int value: 'one'"),
    ("--worker-timeout", ["--worker-timeout", "soon"], "argument --worker-timeout: invalid float value: 'soon'"),
]


def test_the_tables_walk_every_flag():
    assert {flag for flag, *_ in USAGE_ERRORS + PARSE_ERRORS} == set(OPTIONS) | {"recipe"}


@pytest.mark.parametrize("flag,argv,message", USAGE_ERRORS, ids=[f"{f}:{' '.join(a)}" for f, a, _ in USAGE_ERRORS])
def test_bad_value_is_one_line_and_exit_2_before_training(flag, argv, message, tmp_path, capsys, no_training):
    a_file, a_dir = tmp_path / "a_file", tmp_path / "a_dir"
    a_file.write_text("")
    a_dir.mkdir()
    fill = {"{file}": str(a_file), "{dir}": str(a_dir)}
    argv = [fill.get(a, a) for a in argv]
    recipe = "resnet56_cifar" if flag == "recipe" else RECIPE
    out = [] if flag == "--out" else ["--out", str(tmp_path / "out")]
    assert main(["train", recipe, "--mock", "4", *out, *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {message.format(file=a_file, dir=a_dir)}")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flag,argv,message", PARSE_ERRORS, ids=[f"{f}:{' '.join(a)}" for f, a, _ in PARSE_ERRORS])
def test_value_argparse_refuses_exits_2(flag, argv, message, capsys, no_training):
    with pytest.raises(SystemExit) as exit_:
        main(["train", RECIPE, *argv])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(f"python -m bench train: error: {message}")


def test_a_programmatic_run_is_checked_too(tmp_path, no_training):
    """``train`` itself checks its Options, not only the command line."""
    from bench.training.loop import train

    with pytest.raises(UsageError, match="--steps-per-execution 0 is invalid"):
        train(RECIPE, Options(steps_per_execution=0, mock=4, out=str(tmp_path)))


def test_a_worker_gets_the_options_of_the_run_less_its_place_in_the_job():
    """``--workers N`` starts each worker with the run's own flags (``options.argv``), and its own --cluster."""
    given = [
        "--budget",
        "steps=3",
        "--set",
        "x=1",
        "--set",
        "y=2",
        "--eager",
        "--workers",
        "2",
        "--worker-timeout",
        "9",
    ]
    opts = Options.from_args(parser().parse_args(given))
    assert options.argv(opts) == ["--budget", "steps=3", "--set", "x=1", "--set", "y=2", "--eager"]
    assert Options.from_args(parser().parse_args(options.argv(opts))) == Options(
        budget="steps=3", overrides=("x=1", "y=2"), eager=True
    )
    assert options.argv(opts, without=()) == [*options.argv(opts), "--workers", "2", "--worker-timeout", "9.0"]


def test_an_execution_that_does_not_divide_an_epoch_is_refused(tmp_path, monkeypatch):
    """An epoch's last execution would run past the epoch (a steps budget's repeated data) or be cut
    short by the end of the data and counted as whole: refused once the epoch's length is known."""
    from bench.training import loop

    monkeypatch.setattr(loop, "_build_model", lambda run: pytest.fail("the model was built"))
    opts = Options(budget="steps=6", steps_per_execution=3, mock=32, overrides=("batch_size=8",), out=str(tmp_path))
    with pytest.raises(
        UsageError, match=r"^--steps-per-execution 3 does not divide an epoch of mock_cifar10_jpeg \(4 steps\)"
    ):
        loop.train(RECIPE, opts)
