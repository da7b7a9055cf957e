import dataclasses
import re

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
        assert spec.weight_decay is None or spec.weight_decay > 0, name


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
    with pytest.raises(UnknownModelError, match="; valid: fashion_resnet50, "):
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


@pytest.mark.parametrize(
    "name, overrides, bad",
    [
        ("resnet20", dict(bogus=1), "bogus"),
        ("resnet20", dict(depth=56), "depth"),  # fixed by the name: resnet56 is another model
        ("resnet50", dict(shortcut="A"), "shortcut"),  # another family's option
        ("vgg16", dict(classes=5, dropout=0.5), "dropout"),
    ],
)
def test_an_override_that_is_no_option_names_it_and_the_valid_ones(name, overrides, bad):
    valid = ", ".join(models.get_spec(name).options)
    with pytest.raises(
        ModelArgumentError, match=re.escape(f"{name}: {bad!r} is not an option of this model; valid: {valid}")
    ):
        models.create(name, **overrides)


def test_every_model_names_its_builder_whose_keyword_arguments_are_its_options():
    for name in models.list_models():
        spec = models.get_spec(name)
        assert spec.builder is not None, name
        assert {"input_shape", "classes", "classifier_activation", "name"} <= set(spec.options), name
        spec.check_overrides(dict.fromkeys(spec.options))  # every option passes the check


def test_a_model_registered_without_a_builder_leaves_its_overrides_to_it():
    spec = dataclasses.replace(models.get_spec("resnet20"), builder=None)
    assert spec.options is None
    spec.check_overrides({"anything": 1})


def test_non_trainable_is_derived_and_a_wrong_one_is_refused():
    assert (
        models.get_spec("resnet20").non_trainable
        == models.get_spec("resnet20").params - models.get_spec("resnet20").trainable
    )
    with pytest.raises(ValueError, match="non_trainable=5 but params - trainable = 2"):
        register_model(
            family="x",
            source="x",
            dataset="x",
            input_shape=(8, 8, 1),
            classes=2,
            params=10,
            trainable=8,
            non_trainable=5,
        )(lambda **kw: None)


def test_select_reads_names_and_globs_in_order_each_once_and_refuses_what_names_nothing():
    from models.registry import select

    assert select("resnet56, resnet2*,resnet56") == ["resnet56", "resnet20"]
    for text, words in [
        ("zz*", "'zz*' matches no registered model; valid: "),
        ("resnet57", "unknown model 'resnet57'; did you mean resnet56"),
        (" , ", "' , ' matches no registered model"),
    ]:
        with pytest.raises(UnknownModelError, match=re.escape(words)):
            select(text)
