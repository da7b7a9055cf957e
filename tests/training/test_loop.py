"""Training end to end on tfds mock data: a few steps and the result document, the weight decay read
from the model, NaN detection; slow: every recipe for a step, the minutes budget on a fake clock,
graph mode's determinism, and resume after the process is killed mid-run."""

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import results
from bench.regression import accuracy
from bench.regression.rules import Verdict
from bench.training import budget, recipes
from bench.training.loop import fail_on_disagreement, name_options, run_id, train, weight_decay
from bench.training.options import Options

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _restore_globals():
    yield
    import keras

    keras.mixed_precision.set_global_policy("float32")
    from tensorflow.python.framework import config as tf_config  # no public switch back

    tf_config.disable_op_determinism()


def quiet(_msg):
    pass


def _check(result, path, r, *, steps, examples):
    assert result["status"] == "ok", result["error"]
    assert result["dataset"] == f"mock_{r.dataset}" and "mock" in path.name
    assert result["steps_run"] == steps and result["test_examples"] == examples and math.isfinite(result["top1"])
    assert result["config"]["recipe"]["model"] == r.model and result["config"]["plan"]["total_steps"] == steps
    assert result["machine_info"]["tensorflow"] and "id" in result["commit_info"]
    assert len(result["curve"]) == 1 and result["curve"][0]["epoch"] == 1
    written = json.loads(path.read_text())
    assert written["top1"] == result["top1"] and written["schema"] == 2 and written["fingerprint"]
    results.check_training(written, str(path))  # what the gate reads of it
    assert not (path.parent / ".checkpoints" / path.stem).exists()  # a finished run leaves no checkpoint
    # mock results never meet a real baseline
    (finding,) = accuracy.gate([str(path)], str(REPO / "tests/regression/fixtures/accuracy/baselines_ok.json"))
    assert finding.verdict is Verdict.NO_BASELINE


def test_a_few_steps_on_mock_data_write_the_result_document(tmp_path):
    """The CI recipe, eager, two steps: the document the gate reads."""
    name = "smoke_resnet20_cifar10_jpeg"
    r = recipes.get(name)
    result, path = train(
        name,
        Options(
            budget="steps=2",
            mock=8,
            overrides=("batch_size=4",),
            seed=7,
            out=str(tmp_path),
            deterministic="off",
            eager=True,
        ),
        log=quiet,
    )
    _check(result, path, r, steps=2, examples=8)
    assert (result["kind"], result["budget"], result["budget_requested"], result["seed"]) == (
        "bench.train",
        "steps=2",
        "steps=2",
        7,
    )
    assert result["modified"] == ["batch_size=4"] and "-mod" in path.stem and result["stopped_by"] == "steps"
    config = result["config"]
    assert config["recipe"]["batch_size"] == 4 and "weight_decay" not in config["recipe"]
    assert config["weight_decay"] == {"l2": 1e-4, "layers": 21}  # resnet20's 19 convs + 2 projection shortcuts
    assert config["plan"]["steps_per_epoch"] == 2 and config["normalization"]["kind"] == "featurewise"
    assert config["strategy"]["replicas"] == 1 and config["precision"] == "float32" and config["eager"]
    assert result["curve"][0]["loss"] > 0 and result["top1_no_tta"] is not None and result["images_per_s"] > 0
    assert result["wall_time_s"] >= result["train_time_s"] > 0 and result["processes"] == 1


@pytest.mark.slow  # two runs: ~90 s on 2 busy cores
def test_a_run_with_other_numerics_options_never_writes_over_a_finished_one(tmp_path):
    """Another --mock N in the same --out: a result of its own, beside the first (never over it)."""
    opts = Options(budget="steps=1", mock=4, overrides=("batch_size=4",), out=str(tmp_path), deterministic="off")
    opts = dataclasses.replace(opts, eager=True)
    first, path = train("smoke_resnet20_cifar10_jpeg", opts, log=quiet)
    more, more_path = train("smoke_resnet20_cifar10_jpeg", dataclasses.replace(opts, mock=8), log=quiet)
    assert "-mock4-" in path.name and "-mock8-" in more_path.name and more["status"] == "ok"
    assert json.loads(path.read_text())["datetime"] == first["datetime"]  # the first result is still the first run's
    assert len(list(tmp_path.glob("*.json"))) == 2


def _base_options(**changes) -> Options:
    return Options(**{"budget": "epochs=3", "seed": 400, **changes})


@pytest.mark.parametrize(
    "changes, word",
    [
        ({"mock": 32}, "mock32"),
        ({"precision": "mixed_bf16"}, "mixed_bf16"),
        ({"deterministic": "off"}, "nondeterministic"),
        ({"steps_per_execution": 8}, "spe8"),
        ({"cpu_replicas": 2}, "replicas2"),
        ({"eager": True}, "eager"),
    ],
)
def test_options_that_change_the_numbers_name_the_result(changes, word):
    """A run with another numerics option writes a result (and a checkpoint) of its own name, so a
    finished run is never written over by a different one; a default run keeps the name it had."""
    r = recipes.get("smoke_resnet20_cifar10_jpeg")
    b = budget.Budget.parse("epochs=3", full=r.full())

    def name(opts):
        deterministic = r.deterministic if opts.deterministic == "recipe" else opts.deterministic == "on"
        return run_id(r.name, r.dataset, b, "cpu", 400, (), name_options(opts, deterministic, r.deterministic))

    default = name(_base_options())
    assert default == "smoke_resnet20_cifar10_jpeg-cifar10_jpeg-epochs3-cpu-seed400"  # the committed reports' names
    assert (REPO / "reports/accuracy/smoke-baseline" / f"{default}.json").exists()
    assert name(_base_options(deterministic="on")) == default  # what the recipe does anyway
    assert name(_base_options(**changes)) == f"{default}-{word}"
    workers = run_id(r.name, r.dataset, b, "cpu", 400, (), name_options(_base_options(), True, True, workers=2))
    assert workers == f"{default}-workers2"  # a job's result never writes over one process's


def test_a_job_whose_workers_disagree_is_written_as_failed():
    job = {"workers": 2, "weights_sha256": "ab" * 32, "workers_agree": False}
    result = fail_on_disagreement({"status": "ok", "error": None, "cluster": job})
    assert result["status"] == "failed" and "2 workers ended with different weights" in result["error"]
    nan = {"status": "failed", "error": "loss became nan", "cluster": job}
    assert fail_on_disagreement(dict(nan)) == nan  # the first failure stays
    agree = {"status": "ok", "error": None, "cluster": {**job, "workers_agree": True}}
    assert fail_on_disagreement(dict(agree)) == agree
    assert fail_on_disagreement({"status": "ok", "error": None})["status"] == "ok"  # one process


@pytest.mark.parametrize(
    "mock, overrides, match",
    [
        (8, (), "batch size 128 exceeds the 8 training examples"),  # refused by the data
        (32, ("batch_size=8", "model_overrides.shortcut=Z"), r"resnet20: shortcut='Z' is invalid"),  # by the builder
        (
            32,
            ("batch_size=8", "model_overrides.weight_decay=-1"),
            r"model_overrides .* invalid for resnet20: .*l2",
        ),  # Keras
        (32, ("batch_size=8", "optimizer.bogus=1"), r"optimizer .* is invalid: .*not recognized"),  # by Keras
    ],
    ids=["data", "model", "model-keras", "optimizer"],
)
def test_fresh_with_a_refused_input_keeps_the_checkpoint(tmp_path, mock, overrides, match):
    """--fresh deletes the old checkpoint only once the inputs work (the data read, the model and its
    optimizer built), so a mistyped command loses nothing."""
    from bench.errors import UsageError
    from models import ModelArgumentError

    r = recipes.get("smoke_resnet20_cifar10_jpeg")
    opts = Options(budget="steps=6", mock=mock, overrides=overrides, out=str(tmp_path), fresh=True, eager=True)
    b = budget.Budget.parse("steps=6", full=r.full())
    opts_words = name_options(opts, r.deterministic, r.deterministic)
    rid = run_id(r.name, f"mock_{r.dataset}", b, "cpu", 0, overrides, opts_words)
    ckpt = tmp_path / ".checkpoints" / rid
    ckpt.mkdir(parents=True)
    (ckpt / "state.json").write_text(json.dumps({"curve": [{"epoch": 1}], "elapsed_s": 5.0, "processes": 1}))
    with pytest.raises((UsageError, ModelArgumentError), match=match):
        train(r.name, opts, log=quiet)
    assert json.loads((ckpt / "state.json").read_text())["curve"] == [{"epoch": 1}]


def test_a_fingerprint_reads_and_deletes_no_checkpoint(tmp_path):
    """``fingerprint`` takes train's options, --fresh too, but trains nothing: a checkpoint in --out,
    even one of other options, is neither refused nor deleted."""
    from bench.training.loop import fingerprint_of

    r = recipes.get("smoke_resnet20_cifar10_jpeg")
    opts = Options(budget="steps=6", mock=256, out=str(tmp_path), fresh=True)
    b = budget.Budget.parse("steps=6", full=r.full())
    rid = run_id(r.name, f"mock_{r.dataset}", b, "cpu", 0, (), name_options(opts, r.deterministic, r.deterministic))
    state = tmp_path / ".checkpoints" / rid / "state.json"
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"curve": [{"epoch": 1}], "identity": {"--precision": "mixed_bfloat16"}}))
    assert fingerprint_of(r.name, opts)["fingerprint"]["digest"]
    assert json.loads(state.read_text())["curve"] == [{"epoch": 1}]


def test_weight_decay_is_read_from_the_layers():
    import keras
    from keras import layers, regularizers

    def l2():
        return regularizers.L2(1e-4)

    inner = keras.Sequential([keras.Input((6, 6, 4)), layers.Conv2D(4, 1, kernel_regularizer=l2())])  # a nested model
    x = keras.Input((8, 8, 4))
    y = layers.DepthwiseConv2D(3, depthwise_regularizer=l2())(x)
    y = layers.SeparableConv2D(4, 1, depthwise_regularizer=l2(), pointwise_regularizer=l2())(
        y
    )  # one layer: counted once
    y = layers.Flatten()(inner(y))
    assert weight_decay(keras.Model(x, layers.Dense(2)(y))) == {"l2": 1e-4, "layers": 3}
    mixed = keras.Model(x, layers.Dense(2, kernel_regularizer=regularizers.L2(5e-4))(y))
    assert weight_decay(mixed) == [{"l2": 1e-4, "layers": 3}, {"l2": 5e-4, "layers": 1}]
    assert weight_decay(keras.Sequential([keras.Input((4,)), layers.Dense(2)])) is None


# fashion_resnet50 stays in the unit suite (~18 s): Fashion-MNIST has no offline copy here, so mock
# data is the only place its recipe runs end to end before a real --data-dir run
IN_UNIT_SUITE = ("fashion_resnet50",)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=() if n in IN_UNIT_SUITE else pytest.mark.slow)  # the others: ~50 s on 2 cores
        for n in sorted(n for n in recipes.RECIPES if not n.startswith("smoke"))
    ],
)
def test_recipe_runs_a_step_end_to_end_on_mock_data(name, tmp_path):
    """Eager (no tracing: one step of a 164-layer net costs seconds, not a minute of graph building)."""
    r = recipes.get(name)
    result, path = train(
        name,
        Options(
            budget="steps=1", mock=2, overrides=("batch_size=2",), out=str(tmp_path), deterministic="off", eager=True
        ),
        log=quiet,
    )
    _check(result, path, r, steps=1, examples=2)
    if r.validate_each_epoch:
        assert result["curve"][0]["val_accuracy"] is not None


@pytest.mark.slow  # trains the smoke recipe twice in graph mode: ~55 s on 2 cores
def test_smoke_recipe_in_graph_mode_same_seed_same_result(tmp_path):
    """The CI recipe as CI runs it (compiled, op determinism): two runs of a seed agree exactly."""
    name = "smoke_resnet20_cifar10_jpeg"
    r = recipes.get(name)
    runs = []
    for sub in ("a", "b"):
        result, path = train(
            name,
            Options(
                budget="steps=2", mock=8, overrides=("batch_size=4",), seed=7, out=str(tmp_path / sub), plot=sub == "a"
            ),
            log=quiet,
        )
        _check(result, path, r, steps=2, examples=8)
        runs.append(result)
    a, b = runs
    assert a["config"]["deterministic"] and not a["config"]["eager"]
    assert a["loss"] == b["loss"] and a["curve"][0]["loss"] == b["curve"][0]["loss"]
    assert (tmp_path / "a" / path.name).with_suffix(".png").stat().st_size > 1000


def test_nan_loss_stops_the_run_and_records_a_failure(tmp_path):
    import keras
    import numpy as np

    class Poison(keras.callbacks.Callback):
        """After step 2, a NaN weight: the next loss is NaN, as with a diverging rate."""

        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                kernel = self.model.trainable_variables[0]
                kernel.assign(np.full(kernel.shape, np.nan, np.float32))

    result, path = train(
        "smoke_resnet20_cifar10_jpeg",
        Options(
            budget="epochs=2", mock=16, overrides=("batch_size=4",), out=str(tmp_path), deterministic="off", eager=True
        ),
        log=quiet,
        extra_callbacks=[Poison()],
    )
    assert result["status"] == "failed" and "loss became nan at epoch 1, step 3" in result["error"]
    assert result["top1"] is None and result["steps_run"] == 3 and result["stopped_by"] == "non-finite loss"
    assert json.loads(path.read_text())["status"] == "failed"
    assert not (tmp_path / ".checkpoints" / path.stem).exists()  # no NaN weights to resume from
    (finding,) = accuracy.gate([str(path)], str(REPO / "tests/regression/fixtures/accuracy/baselines_ok.json"))
    assert finding.verdict is Verdict.ERROR and "nan" in finding.reason


@pytest.mark.slow  # two epochs of fit and the evaluation; the callback's own test covers the logic fast
def test_minutes_budget_stops_at_the_deadline_on_a_fake_clock(tmp_path):
    import keras

    now = [0.0]
    seen = []

    class Tick(keras.callbacks.Callback):
        """Each step takes 10 fake seconds; records the rate the schedule set for it."""

        def on_train_batch_begin(self, batch, logs=None):
            seen.append(float(self.model.optimizer.learning_rate.numpy()))
            now[0] += 10.0

    result, _ = train(
        "smoke_resnet20_cifar10_jpeg",
        Options(
            budget="minutes=1", mock=16, overrides=("batch_size=4",), out=str(tmp_path), deterministic="off", eager=True
        ),
        clock=lambda: now[0],
        log=quiet,
        extra_callbacks=[Tick()],
    )
    # 4 steps an epoch, 3 epochs at most (the recipe's full budget); 60 s / 10 s = 6 steps
    assert result["status"] == "ok" and result["stopped_by"] == "deadline" and result["steps_run"] == 6
    assert result["budget"] == "minutes=1" and [r["epoch"] for r in result["curve"]] == [1, 2]
    schedule = recipes.get("smoke_resnet20_cifar10_jpeg").schedule
    assert seen == pytest.approx([budget.lr_at(schedule, k / 6) for k in range(6)])  # the rate follows the clock


@pytest.mark.slow  # two fresh Python processes importing TensorFlow: ~45 s on 2 cores
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_resume_after_the_process_is_killed(tmp_path, how):
    """Kill -9 (or SIGTERM, which ends the run in one line, 143) during epoch 2; the same command
    resumes from the epoch-1 checkpoint and finishes the budget without repeating an epoch."""
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "bench",
        "train",
        "smoke_resnet20_cifar10_jpeg",
        "--mock",
        "96",
        "--set",
        "batch_size=8",
        "--budget",
        "epochs=3",
        "--seed",
        "3",
        "--deterministic",
        "off",
        "--eager",
        "--out",
        str(out),
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    states = list((out / ".checkpoints").glob("*/state.json")) if (out / ".checkpoints").exists() else []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        states = list(out.glob(".checkpoints/*/state.json"))
        if states and json.loads(states[0].read_text())["curve"]:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed: " + proc.stdout.read().decode()[-2000:]
    proc.send_signal(how)
    status, output = proc.wait(timeout=60), proc.stdout.read().decode()
    if how == signal.SIGTERM:
        assert status == 128 + signal.SIGTERM, output[-2000:]
        assert output.strip().splitlines()[-1].startswith("terminated (SIGTERM): the same command resumes from")
    else:
        assert status == -signal.SIGKILL
    killed_state = json.loads(states[0].read_text())
    assert [r["epoch"] for r in killed_state["curve"]] == [1]
    assert not list(out.glob("*.json"))  # no result from the killed process

    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resumed from the checkpoint after epoch 1" in done.stderr
    (path,) = out.glob("*.json")
    result = json.loads(path.read_text())
    assert [r["epoch"] for r in result["curve"]] == [1, 2, 3]
    assert result["resumed_from_epoch"] == 1 and result["processes"] == 2
    assert result["curve"][0] == killed_state["curve"][0]  # epoch 1 was not run again
    assert result["steps_run"] == 3 * 12  # the optimizer's step count came back with the checkpoint


def test_two_steps_on_jax_from_the_tf_data_pipeline(tmp_path):
    """``train --backend jax``: Keras on jax fits from the same tf.data pipeline (a process of its
    own: Keras fixes its backend at import); the result names the backend, and its baseline key
    does too, so a jax run never gates against tensorflow's numbers."""
    import json
    import os
    import subprocess
    import sys

    from bench.regression.accuracy import key_of

    pytest.importorskip("jax")
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"} | {"JAX_PLATFORMS": "cpu"}
    args = ["train", "smoke_resnet20_cifar10_jpeg", "--backend", "jax", "--mock", "8", "--budget", "steps=2"]
    args += ["--set", "batch_size=4", "--out", str(tmp_path)]
    run = subprocess.run([sys.executable, "-m", "bench", *args], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    (path,) = tmp_path.glob("*.json")
    result = json.loads(path.read_text())
    assert result["backend"] == "jax" and result["machine_info"]["backend"] == "jax" and result["machine_info"]["jax"]
    assert result["config"]["strategy"]["strategy"] == "keras.device" and "-cpu-jax-" in path.name
    assert result["status"] == "ok" and 0.0 <= result["top1"] <= 100.0 and result["loss"] > 0
    assert key_of(result).endswith("|cpu@jax") and key_of({**result, "backend": None}).endswith("|cpu@tensorflow")
