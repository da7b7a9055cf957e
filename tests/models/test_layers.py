import re

import keras
import pytest

from models import cifar_resnet, preact_resnet
from models.layers import KERAS_APPLICATIONS_BN_EPSILON, conv_bn_act
from models.registry import ModelArgumentError


def test_conv_bn_act_names_its_layers_as_keras_applications_does():
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, conv_bn_act(inputs, 4, 3, name="conv1", bn_epsilon=KERAS_APPLICATIONS_BN_EPSILON))
    assert [layer.name for layer in model.layers[1:]] == ["conv1_conv", "conv1_bn", "conv1_relu"]
    assert model.get_layer("conv1_bn").epsilon == KERAS_APPLICATIONS_BN_EPSILON


def test_batch_norm_needs_the_familys_epsilon():
    with pytest.raises(TypeError, match="bn_epsilon"):
        conv_bn_act(keras.Input((8, 8, 3)), 4, 3, name="conv1")
    conv_bn_act(keras.Input((8, 8, 3)), 4, 3, name="conv1", batch_norm=False)  # no BN, no epsilon


@pytest.mark.parametrize(
    ("family", "builder", "depth", "rule"),
    [
        (cifar_resnet, cifar_resnet.cifar_resnet, 8, "6n+2"),
        (preact_resnet, preact_resnet.preact_resnet, 11, "9n+2"),
    ],
)
def test_a_new_depth_is_a_new_row_of_the_table(family, builder, depth, rule, monkeypatch):
    valid = ", ".join(map(str, family.DEPTHS))
    with pytest.raises(
        ModelArgumentError, match=rf"depth={depth} is invalid; valid: {valid} \({re.escape(rule)} layers"
    ):
        builder(depth)
    monkeypatch.setitem(family.DEPTHS, depth, 1)  # one block per stage
    adds = [layer.name for layer in builder(depth).layers if layer.name.endswith("_add")]
    assert adds == ["conv2_block1_add", "conv3_block1_add", "conv4_block1_add"]
