"""bench.training.evaluation: precise batch-norm statistics, the weight average, and which variant
becomes the result's top-1; end to end, the variants do not change what is trained."""

import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from bench.errors import UsageError
from bench.training import evaluation, recipes
from bench.training.loop import train
from bench.training.options import Options


def _model():
    keras.utils.set_random_seed(0)
    x = keras.Input((4,))
    y = keras.layers.BatchNormalization(name="bn")(x)
    return keras.Model(x, keras.layers.Dense(3, activation="softmax")(y))


def _batches(n=3, size=16):
    rng = np.random.default_rng(0)
    xs = [rng.normal(loc=i, scale=1 + i, size=(size, 4)).astype("float32") for i in range(n)]
    ys = [rng.integers(0, 3, size=size) for _ in range(n)]
    return xs, tf.data.Dataset.from_tensor_slices((np.concatenate(xs), np.concatenate(ys))).batch(size)


def test_precise_statistics_are_the_plain_average_over_batches():
    model = _model()
    xs, ds = _batches()
    layer = model.get_layer("bn")
    assert evaluation.recompute_bn(model, ds, 3) == 3
    np.testing.assert_allclose(layer.moving_mean.numpy(), np.mean([x.mean(0) for x in xs], 0), rtol=1e-5)
    np.testing.assert_allclose(layer.moving_variance.numpy(), np.mean([x.var(0) for x in xs], 0), rtol=1e-4)
    assert layer.momentum == 0.99  # restored
    assert evaluation.recompute_bn(model, ds, 10) == 3  # a shorter dataset: what it has


def test_every_variant_asked_for_is_recorded_and_the_chosen_one_is_the_result():
    model = _model()
    _, ds = _batches()
    recipe = types.SimpleNamespace(ema_momentum=None, precise_bn_batches=2, tta=(), evaluation="precise_bn")
    out = evaluation.final(model, recipe, ds, ds)
    assert set(out["evaluations"]) == {"moving_bn", "precise_bn"} and out["evaluation"] == "precise_bn"
    assert (
        out["top1"] == out["evaluations"]["precise_bn"]["top1"] and out["evaluations"]["precise_bn"]["bn_batches"] == 2
    )
    assert out["evaluations"]["moving_bn"]["loss"] != out["evaluations"]["precise_bn"]["loss"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"evaluation": "swa"}, "evaluation 'swa' is invalid"),
        ({"precise_bn_batches": -1}, "precise_bn_batches -1 is invalid"),
        ({"ema_momentum": 1.0}, "ema_momentum 1.0 is invalid"),
        ({"evaluation": "precise_bn", "precise_bn_batches": 0}, "needs precise_bn_batches > 0"),
        ({"evaluation": "ema"}, "needs ema_momentum"),
    ],
)
def test_incoherent_evaluation_settings_are_refused(change, message):
    with pytest.raises(UsageError, match=message):
        recipes.with_overrides(
            recipes.get("smoke_resnet20_cifar10_jpeg"), [f"{k}={v!r}".replace("'", '"') for k, v in change.items()]
        )


@pytest.mark.slow
def test_the_variants_leave_training_unchanged_end_to_end(tmp_path):
    """Two mock runs of the same seed: with the weight average and precise statistics on, the
    moving-average evaluation is the plain run's to the last digit (op determinism)."""
    name = "smoke_resnet20_cifar10_jpeg"
    common = dict(budget="steps=3", mock=32, seed=5, deterministic="on")
    off = ("batch_size=8", "precise_bn_batches=0", "evaluation=moving_bn")  # the recipe with no variant
    plain, _ = train(name, Options(**common, overrides=off, out=str(tmp_path / "a")), log=lambda m: None)
    both, _ = train(
        name,
        Options(
            **common,
            overrides=("batch_size=8", "precise_bn_batches=2", "ema_momentum=0.9", "evaluation=ema"),
            out=str(tmp_path / "b"),
        ),
        log=lambda m: None,
    )
    assert set(both["evaluations"]) == {"moving_bn", "precise_bn", "ema"} and both["evaluation"] == "ema"
    assert (
        both["evaluations"]["moving_bn"]["loss"] == plain["loss"]
        and both["evaluations"]["moving_bn"]["top1"] == plain["top1"]
    )
    assert both["top1"] == both["evaluations"]["ema"]["top1"] and both["loss"] != plain["loss"]
    assert both["fingerprint"]["digest"] != plain["fingerprint"]["digest"]
    assert both["fingerprint"]["recipe"]["ema_momentum"] == 0.9


def test_the_evaluation_records_which_images_it_got_right_in_order():
    from bench.results import decode_correct

    model = _model()
    _, ds = _batches()
    out = evaluation.evaluate(model, ds)
    right = decode_correct(out["correct"], out["test_examples"])
    labels = np.concatenate([y for _, y in ds.as_numpy_iterator()])
    expected = np.argmax(model.predict(ds.map(lambda x, y: x), verbose=0), axis=1) == labels
    np.testing.assert_array_equal(right, expected)
    assert 100.0 * right.mean() == pytest.approx(out["top1"], abs=1e-3)
    reordered = ds.unbatch().skip(1).concatenate(ds.unbatch().take(1)).batch(16)
    assert evaluation.evaluate(model, reordered)["labels_sha256"] != out["labels_sha256"]  # the order is recorded
