"""Pre-activation bottleneck ResNets for CIFAR (He et al. 2016, "Identity Mappings"), as article 004 builds them.

Each unit is BN-ReLU-conv1x1, BN-ReLU-conv3x3, BN-ReLU-conv1x1 with an identity shortcut; the first
unit of a stage applies BN-ReLU once and starts both its residual branch and a 1x1 projection
shortcut from that activation. Depth is 9n+2 (n units per stage): 164 and 1001 are the paper's.
"""

from __future__ import annotations

import keras
from keras import layers, regularizers

from models.layers import KERAS_APPLICATIONS_BN_EPSILON, check_args, classifier, conv_bn_act, table_row
from models.registry import register_model

# depth -> n, the number of bottleneck units per stage (depth = 9n + 2): the paper's two depths
DEPTHS = {164: 18, 1001: 111}
# (output filters, stride of the first unit); the bottleneck convs are filters // 4 wide
STAGES = ((64, 1), (128, 2), (256, 2))
STEM_FILTERS = 16
BN_EPSILON = KERAS_APPLICATIONS_BN_EPSILON
WEIGHT_DECAY = 1e-4  # L2 on every conv kernel and the classifier's


def _bn_relu(x, name: str):
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def preact_unit(x, filters: int, stride: int, *, first: bool, name: str, **conv):
    """One pre-activation bottleneck unit; ``first`` projects the shortcut from the shared activation."""
    plain = dict(batch_norm=False, activation=None, **conv)
    preact = _bn_relu(x, f"{name}_preact")
    shortcut = conv_bn_act(preact, filters, 1, strides=stride, name=f"{name}_0", **plain) if first else x
    y = conv_bn_act(preact, filters // 4, 1, strides=stride, name=f"{name}_1", **plain)
    y = conv_bn_act(_bn_relu(y, f"{name}_2_pre"), filters // 4, 3, name=f"{name}_2", **plain)
    y = conv_bn_act(_bn_relu(y, f"{name}_3_pre"), filters, 1, name=f"{name}_3", **plain)
    return layers.Add(name=f"{name}_add")([shortcut, y])


def preact_resnet(
    depth: int = 164,
    *,
    input_shape=(32, 32, 3),
    classes: int = 10,
    weight_decay: float = WEIGHT_DECAY,
    classifier_activation: str | None = "softmax",
    name: str | None = None,
) -> keras.Model:
    """A pre-activation bottleneck ResNet of ``depth`` = 9n+2 layers; ``depth`` must be a row of ``DEPTHS``."""
    name = name or f"preact_resnet{depth}"
    n = table_row(DEPTHS, depth, name=name, rule="9n+2")
    input_shape = check_args(input_shape, classes, min_size=4, name=name)
    reg = regularizers.L2(weight_decay) if weight_decay else None
    conv = dict(use_bias=False, kernel_initializer="he_normal", kernel_regularizer=reg)

    inputs = keras.Input(shape=input_shape, name="input")
    x = conv_bn_act(inputs, STEM_FILTERS, 3, batch_norm=False, activation=None, name="conv1", **conv)
    for stage, (filters, stride) in enumerate(STAGES, start=2):
        for unit in range(1, n + 1):
            x = preact_unit(
                x, filters, stride if unit == 1 else 1, first=unit == 1, name=f"conv{stage}_block{unit}", **conv
            )
    x = _bn_relu(x, "post")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = classifier(x, classes, activation=classifier_activation, kernel_regularizer=reg)
    return keras.Model(inputs, outputs, name=name)


@register_model(
    family="preact_resnet",
    source="article 004 (He et al. 2016)",
    dataset="cifar10",
    input_shape=(32, 32, 3),
    classes=10,
    weight_decay=WEIGHT_DECAY,
    params=1_727_482,
    trainable=1_703_258,
    paper_params=1.7e6,
    paper_params_tol=0.05e6,
    builder=preact_resnet,
)
def preact_resnet164(**overrides) -> keras.Model:
    """Pre-activation ResNet-164 of bottleneck units, article 004."""
    return preact_resnet(164, **overrides)
