"""MobileNet v1 (Howard et al. 2017): article 002's and keras.applications'.

Both are a strided 3x3 conv and 13 depthwise-separable blocks (3x3 depthwise -> BN -> act,
1x1 pointwise -> BN -> act). Article 002 keeps the conv biases, uses ReLU and ends in
GAP -> Dense. keras.applications.MobileNet drops the biases, uses ReLU6, zero-pads
bottom/right before each strided depthwise conv (the same as 'same' on even maps, not on odd
ones) and ends in GAP -> Dropout -> 1x1 conv ``conv_preds``. Layer names are keras'
(``conv1``, ``conv_dw_1``, ``conv_pw_1_bn``) in both, so keras weights load by name.
"""

from __future__ import annotations

import math

import keras
from keras import layers

from models.layers import TF_KERAS_DEFAULT_BN_EPSILON, check_args, classifier, conv_bn_act
from models.registry import ModelArgumentError, register_model

STEM_FILTERS = 32
# One row per depthwise-separable block: (pointwise filters, stride of the depthwise conv)
BLOCKS = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
)
TOTAL_STRIDE = 32
BN_EPSILON = TF_KERAS_DEFAULT_BN_EPSILON  # both the article and keras.applications name no epsilon
WEIGHT_DECAY = None  # neither has a regularizer
ACTIVATIONS = ("relu", "relu6")
HEADS = ("dense", "conv")
STRIDED_PADDINGS = ("same", "explicit")
KERAS = dict(use_bias=False, activation="relu6", head="conv", dropout=1e-3, strided_padding="explicit")


def separable_block(x, filters: int, stride: int, *, block: int, depth_multiplier: int, strided_padding: str, **conv):
    """3x3 depthwise conv -> BN -> act, 1x1 pointwise conv -> BN -> act (keras' block_id names)."""
    padding = "same"
    if stride != 1 and strided_padding == "explicit":
        x = layers.ZeroPadding2D(((0, 1), (0, 1)), name=f"conv_pad_{block}")(x)
        padding = "valid"
    x = conv_bn_act(
        x,
        x.shape[-1] * depth_multiplier,
        3,
        strides=stride,
        padding=padding,
        depthwise=True,
        depth_multiplier=depth_multiplier,
        name=f"conv_dw_{block}",
        conv_name=f"conv_dw_{block}",
        **conv,
    )
    return conv_bn_act(x, filters, 1, name=f"conv_pw_{block}", conv_name=f"conv_pw_{block}", **conv)


def mobilenet_v1(
    *,
    input_shape=(224, 224, 3),
    classes: int = 1000,
    classifier_activation: str | None = "softmax",
    name: str = "mobilenet",
    alpha: float = 1.0,
    depth_multiplier: int = 1,
    use_bias: bool = True,
    activation: str = "relu",
    head: str = "dense",
    dropout: float = 0.0,
    strided_padding: str = "same",
) -> keras.Model:
    """MobileNet v1; ``alpha`` scales every width (``int(filters * alpha)``, as keras does),
    ``depth_multiplier`` the depthwise channels. ``head``: ``"dense"`` (GAP -> Dense, the
    article's) or ``"conv"`` (keras': GAP -> 1x1 conv ``conv_preds``); ``dropout`` goes before
    either. ``strided_padding``: ``"same"`` or keras' ``"explicit"`` bottom/right zero padding.
    """
    input_shape = check_args(input_shape, classes, min_size=TOTAL_STRIDE, name=name)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 1 / STEM_FILTERS <= alpha < math.inf:
        raise ModelArgumentError(
            f"{name}: alpha={alpha!r} is invalid; expected a width multiplier >= 1/{STEM_FILTERS} (e.g. 0.25, 0.5, 0.75, 1.0)"
        )
    if isinstance(depth_multiplier, bool) or not isinstance(depth_multiplier, int) or depth_multiplier < 1:
        raise ModelArgumentError(f"{name}: depth_multiplier={depth_multiplier!r} is invalid; expected a positive int")
    for option, value, valid in (
        ("activation", activation, ACTIVATIONS),
        ("head", head, HEADS),
        ("strided_padding", strided_padding, STRIDED_PADDINGS),
    ):
        if value not in valid:
            raise ModelArgumentError(f"{name}: {option}={value!r} is invalid; valid: {', '.join(valid)}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ModelArgumentError(f"{name}: dropout={dropout!r} is invalid; expected a rate in [0, 1)")
    conv = dict(use_bias=use_bias, activation=activation, bn_epsilon=BN_EPSILON)

    inputs = keras.Input(shape=input_shape, name="input")
    x = conv_bn_act(inputs, int(STEM_FILTERS * alpha), 3, strides=2, name="conv1", conv_name="conv1", **conv)
    for block, (filters, stride) in enumerate(BLOCKS, start=1):
        x = separable_block(
            x,
            int(filters * alpha),
            stride,
            block=block,
            depth_multiplier=depth_multiplier,
            strided_padding=strided_padding,
            **conv,
        )
    if head == "dense":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout:
            x = layers.Dropout(dropout, name="dropout")(x)
        outputs = classifier(x, classes, activation=classifier_activation)
    else:
        x = layers.GlobalAveragePooling2D(keepdims=True, name="avg_pool")(x)
        x = layers.Dropout(dropout, name="dropout")(x)
        x = layers.Conv2D(classes, 1, name="conv_preds")(x)
        x = layers.Reshape((classes,), name="reshape")(x)
        outputs = layers.Activation(classifier_activation or "linear", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)


_META = dict(
    family="mobilenet",
    dataset="imagenet",
    input_shape=(224, 224, 3),
    classes=1000,
    weight_decay=WEIGHT_DECAY,
    paper_params=4.2e6,
    paper_params_tol=0.05e6,
    paper_macs=569e6,
    builder=mobilenet_v1,
)


@register_model(**_META, source="article 002 (Howard et al. 2017)", params=4_264_808, trainable=4_242_920)
def mobilenet(**overrides) -> keras.Model:
    """MobileNet v1 1.0-224 as article 002 builds it: conv biases, ReLU, GAP -> Dense."""
    return mobilenet_v1(**overrides)


@register_model(
    **_META,
    source="keras.applications.MobileNet (Howard et al. 2017)",
    params=4_253_864,
    trainable=4_231_976,
    reference="MobileNet",
)
def mobilenet_keras(**overrides) -> keras.Model:
    """MobileNet v1 as keras.applications builds it: no conv bias, ReLU6, dropout, 1x1-conv head."""
    return mobilenet_v1(**{**KERAS, **overrides})
