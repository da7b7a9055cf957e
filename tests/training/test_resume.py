"""Resume end to end on tfds mock data, in one process (a new pipeline and model per call, as a new
process builds them): a run interrupted after its first epoch and resumed gives the uninterrupted
run's numbers exactly under op determinism; a resume with other numerics options is refused, and
an unreadable checkpoint is one line that suggests --fresh."""

import dataclasses
import shutil

import keras
import pytest

from bench.errors import UsageError
from bench.training.loop import train
from bench.training.options import Options

RECIPE = "smoke_resnet20_cifar10_jpeg"
OPTS = Options(budget="epochs=2", mock=32, overrides=("batch_size=8",), seed=3, deterministic="on", eager=True)


@pytest.fixture(autouse=True)
def _restore_globals():
    yield
    keras.mixed_precision.set_global_policy("float32")
    from tensorflow.python.framework import config as tf_config  # no public switch back

    tf_config.disable_op_determinism()


class Interrupt(keras.callbacks.Callback):
    """Stops the process as a kill would, once epoch 1's checkpoint is written."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt


def _train(out, **changes):
    return train(RECIPE, dataclasses.replace(OPTS, out=str(out), **changes), log=lambda _msg: None)


def test_a_resumed_run_is_the_uninterrupted_run(tmp_path):
    whole, _ = _train(tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        train(
            RECIPE,
            dataclasses.replace(OPTS, out=str(tmp_path / "cut")),
            log=lambda _m: None,
            extra_callbacks=[Interrupt()],
        )
    (ckpt,) = (tmp_path / "cut" / ".checkpoints").iterdir()

    for change, flag in (({"deterministic": "off"}, "--deterministic"), ({"precision": "mixed_bf16"}, "--precision")):
        with pytest.raises(UsageError, match=f"{flag}.*--fresh"):
            _train(tmp_path / "cut", **change)

    torn = tmp_path / "torn" / ".checkpoints" / ckpt.name
    shutil.copytree(ckpt, torn)
    (torn / "backup" / "latest.weights.h5").write_bytes(b"\x89HDF\r\n torn")
    with pytest.raises(UsageError, match="unreadable.*--fresh"):
        _train(tmp_path / "torn")

    resumed, _ = _train(tmp_path / "cut")
    assert resumed["resumed_from_epoch"] == 1 and resumed["processes"] == 2
    assert [r["loss"] for r in resumed["curve"]] == [r["loss"] for r in whole["curve"]]
    assert (resumed["top1"], resumed["loss"]) == (whole["top1"], whole["loss"])
