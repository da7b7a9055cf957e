import numpy as np
import pytest

import models
from models.registry import ModelArgumentError, UnknownModelError, register_model


def test_list_models_globs_and_natural_order():
    cifar = [n for n in models.list_models("resnet*") if models.get_spec(n).dataset == "cifar10"]
    assert cifar == ["resnet20", "resnet32", "resnet44", "resnet56", "resnet110"]
    assert models.list_models(["resnet20", "preact_*"]) == ["preact_resnet164", "resnet20"]
    assert models.list_models("nothing*") == []


def test_every_entry_records_its_provenance():
    for name in models.list_models():
        spec = models.get_spec(name)
        assert spec.source and spec.dataset and spec.family and spec.description, name
        assert len(spec.input_shape) == 3 and spec.classes > 0


def test_create_returns_a_fresh_model_each_time():
    a, b = models.create("resnet20"), models.create("resnet20")
    assert a is not b
    assert a.name == "resnet20"
    assert not all((wa.numpy() == wb.numpy()).all() for wa, wb in zip(a.weights, b.weights) if "kernel" in wa.path)


def test_overrides_reach_the_builder():
    model = models.create("resnet20", input_shape=(28, 28, 1), classes=3, name="tiny")
    assert model.input_shape == (None, 28, 28, 1) and model.output_shape == (None, 3) and model.name == "tiny"


def test_duplicate_name_is_an_error():
    def resnet20(**kw):
        raise AssertionError("never built")

    with pytest.raises(ValueError, match="'resnet20' is already registered"):
        register_model(family="x", source="x", dataset="x", input_shape=(8, 8, 1), classes=2)(resnet20)


def test_unknown_name_lists_close_matches():
    with pytest.raises(UnknownModelError, match=r"unknown model 'resnet57'; did you mean resnet56"):
        models.create("resnet57")
    with pytest.raises(UnknownModelError, match="known: "):
        models.get_spec("zzzz")


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(classes=-1), r"classes=-1 is invalid"),
        (dict(classes=2.5), r"classes=2.5 is invalid"),
        (dict(input_shape=(2, 2, 3)), r"input_shape=\(2, 2, 3\) is too small; .* at least 4"),
        (dict(input_shape=(32, 32)), r"input_shape=\(32, 32\) is invalid"),
        (dict(input_shape=(32, 0, 3)), r"input_shape=\(32, 0, 3\) is invalid"),
        (dict(shortcut="C"), r"shortcut='C' is invalid; valid: A, B"),
    ],
)
def test_bad_builder_arguments_name_the_value(overrides, match):
    with pytest.raises(ModelArgumentError, match=match):
        models.create("resnet20", **overrides)


def test_depth_is_validated():
    from models.cifar_resnet import cifar_resnet
    from models.preact_resnet import preact_resnet

    with pytest.raises(ModelArgumentError, match=r"depth=21 is invalid; expected 6n\+2"):
        cifar_resnet(21)
    with pytest.raises(ModelArgumentError, match=r"depth=165 is invalid; expected 9n\+2"):
        preact_resnet(165)


@pytest.mark.slow  # 3,000 layers: ~17 s to build on 2 cores
def test_preact_resnet1001_builds_with_the_expected_parameters():
    from models.preact_resnet import preact_resnet

    deep = preact_resnet(1001)
    assert sum(1 for layer in deep.layers if layer.__class__.__name__ == "Add") == 3 * 111
    # 1001 = 164 plus 93 more identity units per stage. One unit of width f holds f*f/4 + 9*(f/4)**2
    # + f/4*f conv weights and trainable BN gamma/beta for f + 2*f/4 channels:
    # 4,544 (f=64) + 17,792 (f=128) + 70,400 (f=256) = 92,736 trainable, and 1,344 moving statistics.
    trainable = sum(int(np.prod(w.shape)) for w in deep.trainable_weights)
    assert trainable == 1_703_258 + 93 * 92_736  # 10.33M; the paper's table says 10.2M
    assert deep.count_params() - trainable == 24_224 + 93 * 1_344


def test_option_a_shortcut_is_parameter_free():
    b = models.create("resnet20")
    a = models.create("resnet20", shortcut="A")
    projections = [layer for layer in b.layers if layer.name.endswith("_0_conv")]
    assert len(projections) == 2  # the two subsampling blocks
    assert b.count_params() - a.count_params() == sum(layer.count_params() for layer in projections)
