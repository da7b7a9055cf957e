"""Registered models against their keras.applications references, generated from the registry.

For every spec with ``reference`` set: weights copied by layer name from a freshly built
keras.applications model (``weights=None``, nothing downloaded) into
``spec.create(**spec.reference_overrides)`` must give the same logits on the same batch. The
reference's batch-norm statistics and biases are randomised first, so that a mismatched epsilon,
a swapped BN or a missing bias shows in the outputs. Inputs are 32x32, the smallest
keras.applications accepts, to keep the file fast.
"""

from __future__ import annotations

import functools

import keras
import numpy as np
import pytest

import models
from models.reference import WeightTransferError, copy_weights, reference_model

SIZE = (32, 32, 3)
BATCH = 2
ATOL = 1e-4
MUST_HAVE_REFERENCE = {"vgg16", "vgg19", "resnet50", "resnet101", "resnet152", "mobilenet_keras"}
REFERENCED = [name for name in models.list_models() if models.get_spec(name).reference]
# resnet50 last, so that its cached reference is still there for the stride-placement test below
CASES = [pytest.param("mobilenet_keras", {"alpha": 0.5, "depth_multiplier": 2}, id="mobilenet_keras-alpha0.5-dm2")] + [
    pytest.param(name, {}, id=name) for name in sorted(REFERENCED, key=lambda n: n == "resnet50")
]


def _randomise(model: keras.Model, seed: int = 0) -> None:
    """Non-trivial BN statistics and biases (fresh ones are 0/1 and would hide mistakes)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.1, n), rng.normal(0, 0.1, n), rng.uniform(0.5, 1.5, n)])
        elif getattr(layer, "use_bias", False) and layer.weights:
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.normal(0, 0.1, bias.shape)])


def _batch(seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(BATCH, *SIZE)).astype("float32")


def _logits(model: keras.Model, x: np.ndarray) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(x, training=False))


@functools.lru_cache(maxsize=1)  # resnet50's is used twice; building the big ones dominates the file's time
def _reference(name: str, overrides: tuple) -> keras.Model:
    ref = reference_model(name, input_shape=SIZE, classifier_activation=None, **dict(overrides))
    _randomise(ref)
    return ref


def _pair(name: str, ours_overrides: dict, **overrides):
    """(reference, ours) at SIZE with logits out, reference randomised and copied into ours."""
    spec = models.get_spec(name)
    common = dict(input_shape=SIZE, classifier_activation=None, **overrides)
    ref = _reference(name, tuple(sorted(overrides.items())))
    ours = spec.create(**{**spec.reference_overrides, **ours_overrides, **common})
    assert copy_weights(ref, ours) == sum(1 for layer in ref.layers if layer.weights)
    return ref, ours


def test_every_keras_family_has_a_reference():
    assert MUST_HAVE_REFERENCE <= set(REFERENCED)


@pytest.mark.parametrize(("name", "overrides"), CASES)
def test_matches_keras_applications(name, overrides):
    ref, ours = _pair(name, {}, **overrides)
    assert ours.count_params() == ref.count_params()
    x = _batch()
    expected, got = _logits(ref, x), _logits(ours, x)
    assert expected.shape == got.shape == (BATCH, models.get_spec(name).classes)
    assert np.std(expected) > 1e-3, "degenerate reference outputs would make the comparison vacuous"
    np.testing.assert_allclose(got, expected, rtol=0, atol=ATOL)


def test_article_stride_placement_differs_from_keras():
    """resnet50's stride_on='3x3' (article 002) is a different network with the same weights."""
    ref, ours = _pair("resnet50", {"stride_on": "3x3"})
    assert ours.count_params() == ref.count_params() == models.get_spec("resnet50").params
    x = _batch()
    diff = np.max(np.abs(_logits(ours, x) - _logits(ref, x)))
    assert diff > 100 * ATOL, f"stride_on='3x3' gave the keras outputs (max abs diff {diff})"


def test_copy_weights_refuses_a_different_network():
    ref = reference_model("mobilenet_keras", input_shape=SIZE)
    article = models.create("mobilenet", input_shape=SIZE)  # conv biases, Dense head: no match
    with pytest.raises(WeightTransferError, match="conv_preds"):
        copy_weights(ref, article)
    with pytest.raises(WeightTransferError, match=r"weight shapes"):
        copy_weights(ref, models.create("mobilenet_keras", input_shape=SIZE, alpha=0.5))


def test_reference_model_never_downloads():
    with pytest.raises(models.ModelArgumentError, match="weights"):
        reference_model("resnet50", weights="imagenet")
    with pytest.raises(models.ModelArgumentError, match="no keras.applications reference"):
        reference_model("googlenet")
