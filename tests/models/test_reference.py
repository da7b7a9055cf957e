"""Registered models against their keras.applications references, generated from the registry.

For every spec with ``reference`` set: weights copied by layer name from a freshly built
keras.applications model (``weights=None``, nothing downloaded) into
``spec.create(**spec.reference_overrides)`` must give the same logits on the same batch. The
reference's weights are made non-trivial first (see ``_randomise``), so that a mismatched BN
epsilon, a swapped layer, a missing bias or a ReLU in place of a ReLU6 shows in the outputs.
Inputs are 32x32, the smallest keras.applications accepts, to keep the file fast. The smallest
referenced model of each family runs in the fast set; its larger siblings (resnet101, vgg19 ...)
repeat the same blocks more times and run under the ``slow`` marker.
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
# list_models' natural order puts each family's smallest depth first
FIRST_OF_FAMILY = {models.get_spec(name).family: name for name in reversed(REFERENCED)}.values()
EXTRA = [  # options and an odd input size (keras pads strided depthwise convs bottom/right only)
    pytest.param(
        "mobilenet_keras",
        {"alpha": 0.5, "depth_multiplier": 2, "input_shape": (35, 35, 3)},
        id="mobilenet_keras-alpha0.5-dm2-35px",
    ),
]
# resnet50 last, so that its cached reference is still there for the stride-placement test below
CASES = EXTRA + [
    pytest.param(name, {}, id=name, marks=[] if name in FIRST_OF_FAMILY else [pytest.mark.slow])
    for name in sorted(REFERENCED, key=lambda n: n == "resnet50")
]


def _batch(shape=SIZE, n: int = BATCH, seed: int = 1) -> np.ndarray:
    # Spread wide enough that ReLU6 clips somewhere (a ReLU in its place must show).
    return np.random.default_rng(seed).normal(scale=10.0, size=(n, *shape)).astype("float32")


def _randomise(model: keras.Model, seed: int = 0) -> None:
    """Random BN scales/offsets and biases, then BN statistics measured on a batch.

    Fresh layers (gamma 1, beta 0, bias 0, statistics 0/1) would hide a swapped or missing
    weight. Statistics measured in one training-mode pass with momentum 0 keep activations at
    unit scale, so that the logits depend on the input: with the fresh 0/1 statistics the signal
    of a deep net decays below the offsets and the outputs go constant.
    """
    rng = np.random.default_rng(seed)
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in model.layers:
        if layer in norms:
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.1, beta.shape), mean, var])
        elif getattr(layer, "use_bias", False) and layer.weights:
            kernel, bias = layer.get_weights()
            if getattr(layer, "activation", None) is keras.activations.relu:
                # He scale for a layer with its own ReLU (VGG has no BN to keep the signal up)
                kernel = kernel * np.sqrt(sum(kernel.shape[-2:]) / kernel.shape[-2])
            layer.set_weights([kernel, rng.normal(0, 0.01, bias.shape)])
    momenta = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.0
    model(_batch(model.input_shape[1:], n=8, seed=seed + 100), training=True)
    for layer, momentum in zip(norms, momenta):
        layer.momentum = momentum


def _logits(model: keras.Model, x: np.ndarray) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(x, training=False))


@functools.lru_cache(maxsize=1)  # resnet50's is used twice; building the big ones dominates the file's time
def _reference(name: str, options: tuple) -> keras.Model:
    ref = reference_model(name, **dict(options))
    _randomise(ref)
    return ref


def _pair(name: str, ours_overrides: dict, **overrides):
    """(reference, ours, batch): logits out, the reference's weights copied into ours."""
    spec = models.get_spec(name)
    options = {"input_shape": SIZE, "classifier_activation": None, **overrides}
    ref = _reference(name, tuple(sorted(options.items())))
    ours = spec.create(**{**spec.reference_overrides, **ours_overrides, **options})
    assert copy_weights(ref, ours) == sum(1 for layer in ref.layers if layer.weights)
    return ref, ours, _batch(options["input_shape"])


def test_every_keras_family_has_a_reference():
    assert MUST_HAVE_REFERENCE <= set(REFERENCED)


@pytest.mark.parametrize(("name", "overrides"), CASES)
def test_matches_keras_applications(name, overrides):
    ref, ours, x = _pair(name, {}, **overrides)
    assert ours.count_params() == ref.count_params()
    expected, got = _logits(ref, x), _logits(ours, x)
    assert expected.shape == got.shape == (BATCH, models.get_spec(name).classes)
    assert np.median(np.std(expected, axis=0)) > 100 * ATOL, (
        "logits that ignore the input would make the comparison vacuous"
    )
    np.testing.assert_allclose(got, expected, rtol=0, atol=ATOL)


def test_article_stride_placement_differs_from_keras():
    """resnet50's stride_on='3x3' (article 002) is a different network with the same weights."""
    ref, ours, x = _pair("resnet50", {"stride_on": "3x3"})
    assert ours.count_params() == ref.count_params() == models.get_spec("resnet50").params
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
