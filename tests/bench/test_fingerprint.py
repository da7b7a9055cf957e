"""bench.fingerprint: what a model's fingerprint holds and how two are told apart in words."""

import keras
import pytest

import models
from bench import fingerprint


@pytest.fixture(scope="module")
def resnet20():
    return fingerprint.model_part(models.create("resnet20", input_shape=(32, 32, 3), classes=10))


def _model_fp(model_part, **env):
    return {
        "recipe": {},
        "model": model_part,
        "data": {},
        "environment": {"keras": keras.__version__, **env},
    }


def test_the_model_part_groups_layers_that_share_a_configuration(resnet20):
    layers = [name for g in resnet20["groups"] for name in g["layers"]]
    assert len(layers) == len(set(layers)) > 60 and resnet20["params"] == 274442
    assert len(resnet20["groups"]) < 20  # ResNet-20's 71 layers share a handful of configurations
    bn = [g for g in resnet20["groups"] if g["config"]["class"] == "BatchNormalization"]
    assert bn and all("name" not in g["config"] for g in bn)
    assert any(len(v) == 2 for v in resnet20["inputs"].values())  # the additions of the residual blocks


def test_one_changed_layer_is_named_with_its_old_and_new_value(resnet20):
    changed = models.create("resnet20", input_shape=(32, 32, 3), classes=10)
    layer = next(la for la in changed.layers if isinstance(la, keras.layers.BatchNormalization))
    layer.momentum = 0.5
    found = fingerprint.differences(_model_fp(resnet20), _model_fp(fingerprint.model_part(changed)))
    assert found == {"model": [f"{layer.name} momentum 0.99 -> 0.5"]}


def test_a_different_architecture_is_a_model_change(resnet20):
    other = fingerprint.model_part(models.create("resnet32", input_shape=(32, 32, 3), classes=10))
    found = fingerprint.differences(_model_fp(resnet20), _model_fp(other), limit=2)
    assert set(found) == {"model"} and found["model"][-1].startswith("and ")
    assert fingerprint.digest(_model_fp(resnet20)) != fingerprint.digest(_model_fp(other))


def test_versions_are_their_own_part_and_not_in_the_digest(resnet20):
    a, b = _model_fp(resnet20), _model_fp(resnet20, tensorflow="9.9")
    assert fingerprint.differences(a, b) == {"environment": ["tensorflow (none) -> 9.9"]}
    assert fingerprint.digest(a) == fingerprint.digest(b)


def test_a_fingerprint_reads_back_from_json_unchanged():
    fp = fingerprint.with_digest({"recipe": {"tta": ("flip",)}, "model": {}, "data": {}, "environment": {}})
    assert fp["recipe"]["tta"] == ["flip"] and fp["digest"] == fingerprint.digest(fp)
