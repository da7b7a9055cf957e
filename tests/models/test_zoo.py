"""Checks generated from the registry: every registered model is covered the moment it is registered.

Expected figures come from each model's spec (the registry is their one source). Builds that take
seconds each on 2 CPU cores run under the ``slow`` marker: every check of a model over 10M
parameters, and the second builds (another input, a training step) of the deep CIFAR nets. The
exact parameter count of every CIFAR model stays in the fast set.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import models
from models.flops import count_macs

NAMES = models.list_models()
BIG = 10_000_000  # parameters
DEEP = ("preact_resnet164", "resnet110")  # hundreds of layers: a second build of either takes seconds


def big(name):
    return (models.get_spec(name).params or 0) > BIG


def cases(names, slow):
    """``names`` as pytest params, those for which ``slow(name)`` holds marked slow."""
    return [pytest.param(n, id=n, marks=[pytest.mark.slow] if slow(n) else []) for n in names]


def small_shape(spec):
    """A small input the network must also take: 32 px for ImageNet-sized nets, else half size."""
    h, w, c = spec.input_shape
    return (32, 32, c) if min(h, w) > 32 else (h // 2, w // 2, c)


def consumers(model):
    """Layer name -> the layers that take its output, from the public functional graph."""
    producer = {id(layer.output): layer.name for layer in model.layers}
    taken_by = {layer.name: [] for layer in model.layers}
    for layer in model.layers:
        for tensor in keras.tree.flatten(layer.input):
            taken_by[producer[id(tensor)]].append(layer)
    return taken_by


def n_weights(variables):
    return sum(int(np.prod(v.shape)) for v in variables)


@pytest.mark.parametrize("name", cases(NAMES, big))
def test_parameter_counts_match_the_source(name, build):
    spec = models.get_spec(name)
    if spec.params is None:
        pytest.skip(f"{name} has no quoted parameter count")
    model = build(name)
    assert model.count_params() == spec.params
    if spec.trainable is not None:
        assert n_weights(model.trainable_weights) == spec.trainable
    if spec.non_trainable is not None:
        assert n_weights(model.non_trainable_weights) == spec.non_trainable


@pytest.mark.parametrize("name", cases(NAMES, big))
def test_weight_decay_is_the_registered_one(name, build):
    spec = models.get_spec(name)
    regularizers = [
        r
        for layer in build(name).layers
        for r in (getattr(layer, "kernel_regularizer", None), getattr(layer, "depthwise_regularizer", None))
        if r
    ]
    if spec.weight_decay is None:
        assert not regularizers
    else:
        assert regularizers and all(
            isinstance(r, keras.regularizers.L2) and r.l2 == pytest.approx(spec.weight_decay) for r in regularizers
        )


@pytest.mark.parametrize("name", cases(NAMES, big))
def test_layer_and_weight_names_are_unique(name, build):
    model = build(name)
    names = [layer.name for layer in model.layers]
    assert len(names) == len(set(names))
    paths = [w.path for w in model.weights]
    assert len(paths) == len(set(paths))


@pytest.mark.parametrize("name", cases(NAMES, big))
def test_output_at_canonical_input(name, build):
    spec = models.get_spec(name)
    model = build(name)
    assert model.input_shape == (None, *spec.input_shape)
    x = np.random.default_rng(0).random((1, *spec.input_shape), dtype=np.float32)
    y = model(x, training=False).numpy()
    assert y.shape == (1, spec.classes)
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=1e-5)  # softmax head by default


@pytest.mark.parametrize("name", cases(NAMES, lambda n: big(n) or n in DEEP))
def test_output_at_small_input_and_other_classes(name, build):
    shape = small_shape(models.get_spec(name))
    model = build(name, input_shape=shape, classes=7, classifier_activation=None)
    y = model(np.ones((2, *shape), np.float32), training=False)
    assert tuple(y.shape) == (2, 7)


@pytest.mark.parametrize("name", cases([n for n in NAMES if models.get_spec(n).paper_params], big))
def test_paper_parameter_count_within_its_rounding(name, build):
    spec = models.get_spec(name)
    trainable = n_weights(build(name, **spec.paper_overrides).trainable_weights)
    assert abs(trainable - spec.paper_params) <= spec.paper_params_tol, (trainable, spec.paper_params)


@pytest.mark.parametrize("name", cases([n for n in NAMES if models.get_spec(n).paper_macs], big))
def test_macs_within_the_papers_figure(name, build):
    spec = models.get_spec(name)
    macs = count_macs(build(name, **spec.paper_overrides))
    assert abs(macs - spec.paper_macs) <= spec.macs_rtol * spec.paper_macs, f"{macs:.4g} vs paper {spec.paper_macs:.4g}"


@pytest.mark.parametrize("name", cases(NAMES, lambda n: big(n) or n in DEEP))
def test_one_training_step_is_finite_and_moves_every_weight(name, build):
    spec = models.get_spec(name)
    shape = small_shape(spec)
    model = build(name, input_shape=shape, classes=7, classifier_activation=None)
    rng = np.random.default_rng(1)
    x = tf.constant(rng.standard_normal((2, *shape), dtype=np.float32))
    y = tf.constant([1, 5])
    # every weight, BN moving statistics included: the model is the session's cached one
    initial = [v.numpy().copy() for v in model.weights]
    try:
        before = [v.numpy().copy() for v in model.trainable_weights]
        loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True)) + tf.add_n(model.losses or [tf.constant(0.0)])
        grads = tape.gradient(loss, model.trainable_weights)
        assert np.isfinite(float(loss))
        assert all(g is not None and np.all(np.isfinite(tf.convert_to_tensor(g).numpy())) for g in grads)
        tf.keras.optimizers.SGD(0.01).apply_gradients(zip(grads, model.trainable_weights))
        # A bias that feeds straight into batch norm has an exactly zero gradient in training mode (BN
        # subtracts the batch mean); every other weight must move.
        taken_by = consumers(model)
        inert = {
            id(layer.bias)
            for layer in model.layers
            if getattr(layer, "bias", None) is not None
            and taken_by[layer.name]
            and all(isinstance(c, keras.layers.BatchNormalization) for c in taken_by[layer.name])
        }
        stuck = [
            v.path
            for b, v in zip(before, model.trainable_weights)
            if np.array_equal(b, v.numpy()) and id(v) not in inert
        ]
        assert not stuck
    finally:
        for v, value in zip(model.weights, initial):
            v.assign(value)
