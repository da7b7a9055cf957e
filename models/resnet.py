"""ImageNet ResNets (He et al. 2015, Table 1) as article 002 builds them, and keras.applications' v1.

v1 blocks, conv (with bias) -> BN -> ReLU, a 1x1 projection shortcut with BN wherever a block
changes the shape (the first block of every bottleneck stage, and of basic stages 3-5). The
article strides each stage's 3x3 conv (``stride_on="3x3"``, the placement later called v1.5);
the paper and keras.applications stride its first 1x1 (``stride_on="1x1"``): same parameters,
different outputs, and the paper's multiply-adds. keras.applications also pads its stem
symmetrically (``stem_padding="symmetric"``: ZeroPadding2D, then 'valid') and uses its own BN
epsilon where the article keeps tf.keras' default (models/layers.py has both). Layer names are
keras' (``conv1_conv``, ``conv2_block1_0_bn``), so keras.applications' ResNet50/101/152 weights
load by name.
"""

from __future__ import annotations

import keras
from keras import layers

from models.layers import (
    KERAS_APPLICATIONS_BN_EPSILON,
    TF_KERAS_DEFAULT_BN_EPSILON,
    check_args,
    classifier,
    conv_bn_act,
    table_row,
)
from models.registry import ModelArgumentError, register_model

# depth -> (block, blocks per stage conv2..conv5); stage widths 64-128-256-512 (bottleneck
# outputs are 4x that), stride 1 for conv2 (it follows the stem's max pool) and 2 for the rest.
DEPTHS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
WIDTHS = (64, 128, 256, 512)
STRIDES = (1, 2, 2, 2)
EXPANSION = {"basic": 1, "bottleneck": 4}
TOTAL_STRIDE = 32
STRIDE_ON = ("3x3", "1x1")
STEM_PADDINGS = ("same", "symmetric")
BN_EPSILON = TF_KERAS_DEFAULT_BN_EPSILON  # the article calls BatchNormalization()
WEIGHT_DECAY = None  # no regularizer in the model
PAPER = dict(stride_on="1x1")
KERAS = dict(stride_on="1x1", stem_padding="symmetric", bn_epsilon=KERAS_APPLICATIONS_BN_EPSILON)


def _shortcut(x, filters: int, stride: int, *, name: str, **conv):
    """Identity, or a 1x1 projection with BN where the block changes width or resolution."""
    if stride == 1 and x.shape[-1] == filters:
        return x
    return conv_bn_act(x, filters, 1, strides=stride, activation=None, name=f"{name}_0", **conv)


def basic_block(x, width: int, stride: int, *, stride_on: str, name: str, **conv):
    """3x3 -> 3x3 (the first strided; ``stride_on`` has no 1x1 to move to), plus the shortcut, ReLU."""
    shortcut = _shortcut(x, width, stride, name=name, **conv)
    y = conv_bn_act(x, width, 3, strides=stride, name=f"{name}_1", **conv)
    y = conv_bn_act(y, width, 3, activation=None, name=f"{name}_2", **conv)
    x = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.Activation("relu", name=f"{name}_out")(x)


def bottleneck_block(x, width: int, stride: int, *, stride_on: str, name: str, **conv):
    """1x1 reduce -> 3x3 -> 1x1 expand (4x), one of the first two strided, plus the shortcut, ReLU."""
    shortcut = _shortcut(x, width * EXPANSION["bottleneck"], stride, name=name, **conv)
    y = conv_bn_act(x, width, 1, strides=stride if stride_on == "1x1" else 1, name=f"{name}_1", **conv)
    y = conv_bn_act(y, width, 3, strides=stride if stride_on == "3x3" else 1, name=f"{name}_2", **conv)
    y = conv_bn_act(y, width * EXPANSION["bottleneck"], 1, activation=None, name=f"{name}_3", **conv)
    x = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.Activation("relu", name=f"{name}_out")(x)


BLOCKS = {"basic": basic_block, "bottleneck": bottleneck_block}


def resnet_v1(
    depth: int,
    *,
    input_shape=(224, 224, 3),
    classes: int = 1000,
    classifier_activation: str | None = "softmax",
    name: str | None = None,
    stride_on: str = "3x3",
    stem_padding: str = "same",
    bn_epsilon: float = BN_EPSILON,
) -> keras.Model:
    """An ImageNet ResNet of ``depth`` 18, 34, 50, 101 or 152.

    ``stride_on``: which conv of a downsampling bottleneck block strides, ``"3x3"`` (article 002)
    or ``"1x1"`` (paper, keras.applications). ``stem_padding``: ``"same"`` for the 7x7/2 conv and
    3x3/2 pool (article) or ``"symmetric"`` explicit zero padding (keras.applications).
    """
    name = name or f"resnet{depth}"
    kind, repeats = table_row(DEPTHS, depth, name=name)
    for option, value, valid in (("stride_on", stride_on, STRIDE_ON), ("stem_padding", stem_padding, STEM_PADDINGS)):
        if value not in valid:
            raise ModelArgumentError(f"{name}: {option}={value!r} is invalid; valid: {', '.join(valid)}")
    if isinstance(bn_epsilon, bool) or not isinstance(bn_epsilon, (int, float)) or not bn_epsilon > 0:
        raise ModelArgumentError(f"{name}: bn_epsilon={bn_epsilon!r} is invalid; expected a positive float")
    input_shape = check_args(input_shape, classes, min_size=TOTAL_STRIDE, name=name)
    conv = dict(bn_epsilon=bn_epsilon)

    inputs = keras.Input(shape=input_shape, name="input")
    x = inputs
    if stem_padding == "symmetric":
        x = layers.ZeroPadding2D(3, name="conv1_pad")(x)
    x = conv_bn_act(
        x, 64, 7, strides=2, padding="valid" if stem_padding == "symmetric" else "same", name="conv1", **conv
    )
    if stem_padding == "symmetric":
        x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
    x = layers.MaxPooling2D(
        3, strides=2, padding="valid" if stem_padding == "symmetric" else "same", name="pool1_pool"
    )(x)
    for stage, (width, stride, blocks) in enumerate(zip(WIDTHS, STRIDES, repeats), start=2):
        for block in range(1, blocks + 1):
            x = BLOCKS[kind](
                x, width, stride if block == 1 else 1, stride_on=stride_on, name=f"conv{stage}_block{block}", **conv
            )
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = classifier(x, classes, activation=classifier_activation)
    return keras.Model(inputs, outputs, name=name)


# Exact counts at 224x224x3 and 1000 classes, counted on the built models; 50/101/152 equal
# keras.applications'. The paper quotes 11.7M and 21.8M for 18 and 34, and the multiply-adds.
_META = dict(
    family="resnet",
    source="article 002 (He et al. 2015, Table 1)",
    dataset="imagenet",
    input_shape=(224, 224, 3),
    classes=1000,
    weight_decay=WEIGHT_DECAY,
    paper_overrides=PAPER,
    builder=resnet_v1,
)


@register_model(
    **_META,
    params=11_703_912,
    trainable=11_694_312,
    paper_macs=1.8e9,
    paper_params=11.7e6,
    paper_params_tol=0.05e6,
)
def resnet18(**overrides) -> keras.Model:
    """ResNet-18 for ImageNet, basic blocks: conv bias, projection only where the shape changes."""
    return resnet_v1(18, **overrides)


@register_model(
    **_META,
    params=21_823_208,
    trainable=21_806_184,
    paper_macs=3.6e9,
    paper_params=21.8e6,
    paper_params_tol=0.05e6,
)
def resnet34(**overrides) -> keras.Model:
    """ResNet-34 for ImageNet, basic blocks: conv bias, projection only where the shape changes."""
    return resnet_v1(34, **overrides)


@register_model(
    **_META,
    params=25_636_712,
    trainable=25_583_592,
    paper_macs=3.8e9,
    reference="ResNet50",
    reference_overrides=KERAS,
)
def resnet50(**overrides) -> keras.Model:
    """ResNet-50 for ImageNet, bottleneck blocks: article 002's strided 3x3 ('v1.5'); stride_on='1x1' for the paper's v1."""
    return resnet_v1(50, **overrides)


@register_model(
    **_META,
    params=44_707_176,
    trainable=44_601_832,
    paper_macs=7.6e9,
    reference="ResNet101",
    reference_overrides=KERAS,
)
def resnet101(**overrides) -> keras.Model:
    """ResNet-101 for ImageNet, bottleneck blocks: article 002's strided 3x3 ('v1.5'); stride_on='1x1' for the paper's v1."""
    return resnet_v1(101, **overrides)


@register_model(
    **_META,
    params=60_419_944,
    trainable=60_268_520,
    paper_macs=11.3e9,
    reference="ResNet152",
    reference_overrides=KERAS,
)
def resnet152(**overrides) -> keras.Model:
    """ResNet-152 for ImageNet, bottleneck blocks: article 002's strided 3x3 ('v1.5'); stride_on='1x1' for the paper's v1."""
    return resnet_v1(152, **overrides)
