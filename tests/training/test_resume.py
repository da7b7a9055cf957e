"""Resume end to end on tfds mock data, in one process (a new pipeline and model per call, as a new
process builds them): a run interrupted after its first epoch, between an epoch's weights and its
training state, or during its final evaluation, and resumed, gives the
uninterrupted run's numbers exactly under op determinism; a resume with other numerics options is
refused, and an unreadable checkpoint or training state is one line that suggests --fresh."""

import dataclasses
import json
import shutil

import keras
import pytest

from bench.errors import UsageError
from bench.training import callbacks
from bench.training.loop import train
from bench.training.options import Options

RECIPE = "smoke_resnet20_cifar10_jpeg"
OPTS = Options(budget="epochs=2", mock=32, overrides=("batch_size=8",), seed=3, deterministic="on", eager=True)


def _restore():
    keras.mixed_precision.set_global_policy("float32")
    from tensorflow.python.framework import config as tf_config  # no public switch back

    tf_config.disable_op_determinism()


@pytest.fixture(autouse=True)
def _restore_globals():
    yield
    _restore()


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """The uninterrupted run that every resumed one must reproduce."""
    result, _ = _train(tmp_path_factory.mktemp("whole"))
    _restore()
    return result


class Interrupt(keras.callbacks.Callback):
    """Stops the process as a kill would, once epoch 1's checkpoint is written."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt


class InterruptTheEvaluation(keras.callbacks.Callback):
    """Stops the process as a kill during the final evaluation would: training is over, its last
    checkpoint and state are written, and there is no result yet."""

    def on_train_end(self, logs=None):
        raise KeyboardInterrupt


def _train(out, extra_callbacks=(), **changes):
    opts = dataclasses.replace(OPTS, out=str(out), **changes)
    return train(RECIPE, opts, log=lambda _msg: None, extra_callbacks=extra_callbacks)


def _same_numbers(resumed, whole):
    assert [r["loss"] for r in resumed["curve"]] == [r["loss"] for r in whole["curve"]]
    assert (resumed["top1"], resumed["loss"]) == (whole["top1"], whole["loss"])
    assert resumed["evaluations"] == whole["evaluations"]
    assert (resumed["epochs_run"], resumed["steps_run"]) == (whole["epochs_run"], whole["steps_run"])


def test_a_resumed_run_is_the_uninterrupted_run(tmp_path, whole, monkeypatch):
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / "cut", [Interrupt()])
    (ckpt,) = (tmp_path / "cut" / ".checkpoints").iterdir()

    # other numerics options name another run (loop.name_options); a checkpoint whose state says it was
    # trained with other values than its name's (written before they named it, or edited) is refused
    for flag, value in (("--deterministic", "off"), ("--precision", "mixed_bf16"), ("--mock", 16), ("--eager", "off")):
        other = tmp_path / f"other{flag}" / ".checkpoints" / ckpt.name
        shutil.copytree(ckpt, other)
        state = json.loads((other / "state.json").read_text())
        state["identity"][flag] = value
        (other / "state.json").write_text(json.dumps(state))
        with pytest.raises(UsageError, match=f"{flag}.*--fresh"):
            _train(other.parent.parent)

    torn = tmp_path / "torn" / ".checkpoints" / ckpt.name
    shutil.copytree(ckpt, torn)
    (torn / "backup" / "latest.weights.h5").write_bytes(b"\x89HDF\r\n torn")
    with pytest.raises(UsageError, match="unreadable.*--fresh"):
        _train(tmp_path / "torn")

    resumed, _ = _train(tmp_path / "cut")
    assert resumed["resumed_from_epoch"] == 1 and resumed["processes"] == 2
    _same_numbers(resumed, whole)


def test_a_corrupt_training_state_is_one_line_before_the_data_is_read(tmp_path, monkeypatch):
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path, [Interrupt()])
    (state,) = tmp_path.glob(".checkpoints/*/state.json")
    state.write_text(json.dumps({"curve": [1, 2], "elapsed_s": 5, "processes": 1, "identity": {}}))

    def no_data(*_args, **_kwargs):
        raise AssertionError("the data was read before the training state was checked")

    monkeypatch.setattr("bench.training.data.pipelines", no_data)
    with pytest.raises(UsageError, match="training state .* is unreadable .*--fresh"):
        _train(tmp_path)


def test_a_run_stopped_during_its_final_evaluation_resumes_to_the_same_result(tmp_path, whole):
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path, [InterruptTheEvaluation()])
    resumed, _ = _train(tmp_path)  # trains nothing: the checkpoint is the last epoch's
    _same_numbers(resumed, whole)  # precise BN reads the batches the uninterrupted run read
    assert resumed["resumed_from_epoch"] == 2 and resumed["processes"] == 2
    assert resumed["stopped_by"] == whole["stopped_by"] == "budget"  # epochs=2: its epochs, not a steps budget
    # the throughput the earlier process measured, over its steps after the first
    assert resumed["images_per_s"] > 0 and resumed["first_step_s"] > 0
    assert resumed["train_time_s"] == round(sum(r["train_s"] for r in resumed["curve"]), 3) > 0  # as recorded


def test_a_steps_run_stopped_during_its_final_evaluation_reads_the_same_precise_bn_batches(tmp_path):
    """A steps budget that ends inside an epoch repeats the training data: the precise-BN pass reads
    a pipeline of its own, not wherever the training stream (or a resumed process's) got to."""
    # 2 steps an epoch: training stops one batch into its second pass, and Keras's compiled iterator
    # reads ahead into the third
    changes = dict(budget="steps=3", overrides=("batch_size=16", "precise_bn_batches=6"), eager=False)
    whole, _ = _train(tmp_path / "whole", **changes)
    _restore()
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / "cut", [InterruptTheEvaluation()], **changes)
    resumed, _ = _train(tmp_path / "cut", **changes)
    assert resumed["processes"] == 2 and resumed["evaluations"]["precise_bn"]["bn_batches"] == 6
    _same_numbers(resumed, whole)


@pytest.mark.parametrize("epoch", [1, 2])
def test_a_kill_between_an_epochs_weights_and_its_state_loses_no_epoch(tmp_path, whole, monkeypatch, epoch):
    """Killed after an epoch's weights were written and before its training state was: the resumed
    run falls back to the checkpoint the state has (none for epoch 1) and runs that epoch again, so
    its curve has every epoch once and its numbers are the uninterrupted run's."""
    save = callbacks.Backup._save_model

    def save_then_kill(self):
        save(self)
        if self._current_epoch == epoch:
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(callbacks.Backup, "_save_model", save_then_kill)
        with pytest.raises(KeyboardInterrupt):
            _train(tmp_path)
    resumed, _ = _train(tmp_path)
    assert [r["epoch"] for r in resumed["curve"]] == [1, 2]
    assert resumed["resumed_from_epoch"] == epoch - 1
    assert resumed["processes"] == (1 if epoch == 1 else 2)  # no state was saved before epoch 1's
    _same_numbers(resumed, whole)


def test_a_minutes_run_stopped_during_its_final_evaluation_takes_no_step_more(tmp_path):
    """The deadline ended training inside epoch 2; the resumed process evaluates the same weights
    (a fake clock: each step takes 10 s, so a minute is 6 steps)."""

    def run(out, extra=()):
        now = [0.0]

        class Tick(keras.callbacks.Callback):
            def on_train_batch_begin(self, batch, logs=None):
                now[0] += 10.0

        opts = dataclasses.replace(OPTS, out=str(out), budget="minutes=1")
        return train(RECIPE, opts, clock=lambda: now[0], log=lambda _msg: None, extra_callbacks=[Tick(), *extra])

    whole, _ = run(tmp_path / "whole")
    _restore()
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "cut", [InterruptTheEvaluation()])
    _restore()
    resumed, _ = run(tmp_path / "cut")
    assert whole["steps_run"] == 6 and whole["stopped_by"] == resumed["stopped_by"] == "deadline"
    assert resumed["resumed_from_epoch"] == 2 and resumed["processes"] == 2
    _same_numbers(resumed, whole)
