"""GoogLeNet / Inception v1 (Szegedy et al. 2014) as article 002 builds it.

Convolutions with bias and ReLU and no batch norm; no local response normalisation and no
auxiliary classifiers. The article's second stem pool is 'valid', so the inception 3 stage runs
on 27x27 maps where the paper's runs on 28x28; the other pools are 'same'.
"""

from __future__ import annotations

import keras
from keras import layers

from models.layers import check_args, classifier, conv_bn_act
from models.registry import ModelArgumentError, register_model

# Inception modules per stage, stage -> one 6-tuple per module (a, b, c, ...):
# (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj), the columns of the paper's Table 1.
# A 3x3/2 max pool ('same') comes between stages.
INCEPTION = {
    3: ((64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64)),
    4: (
        (192, 96, 208, 16, 48, 64),
        (160, 112, 224, 24, 64, 64),
        (128, 128, 256, 24, 64, 64),
        (112, 144, 288, 32, 64, 64),
        (256, 160, 320, 32, 128, 128),
    ),
    5: ((256, 160, 320, 32, 128, 128), (384, 192, 384, 48, 128, 128)),
}
DROPOUT = 0.4
TOTAL_STRIDE = 32
WEIGHT_DECAY = None  # no regularizer in the model


def inception_module(x, f: tuple[int, int, int, int, int, int], *, name: str):
    """Four parallel branches (1x1; 1x1->3x3; 1x1->5x5; 3x3 max pool->1x1), concatenated."""
    conv = dict(batch_norm=False)
    b1 = conv_bn_act(x, f[0], 1, name=f"{name}_1x1", **conv)
    b2 = conv_bn_act(x, f[1], 1, name=f"{name}_3x3_reduce", **conv)
    b2 = conv_bn_act(b2, f[2], 3, name=f"{name}_3x3", **conv)
    b3 = conv_bn_act(x, f[3], 1, name=f"{name}_5x5_reduce", **conv)
    b3 = conv_bn_act(b3, f[4], 5, name=f"{name}_5x5", **conv)
    b4 = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    b4 = conv_bn_act(b4, f[5], 1, name=f"{name}_pool_proj", **conv)
    return layers.Concatenate(name=f"{name}_concat")([b1, b2, b3, b4])


def googlenet_v1(
    *,
    input_shape=(224, 224, 3),
    classes: int = 1000,
    classifier_activation: str | None = "softmax",
    name: str = "googlenet",
    dropout: float = DROPOUT,
) -> keras.Model:
    """GoogLeNet without LRN or auxiliary heads; ``dropout`` before the classifier (0.4)."""
    input_shape = check_args(input_shape, classes, min_size=TOTAL_STRIDE, name=name)
    if not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ModelArgumentError(f"{name}: dropout={dropout!r} is invalid; expected a rate in [0, 1)")

    inputs = keras.Input(shape=input_shape, name="input")
    x = conv_bn_act(inputs, 64, 7, strides=2, batch_norm=False, name="conv1")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    x = conv_bn_act(x, 64, 1, batch_norm=False, name="conv2_reduce")
    x = conv_bn_act(x, 192, 3, batch_norm=False, name="conv2")
    x = layers.MaxPooling2D(3, strides=2, padding="valid", name="pool2")(x)
    for stage, modules in INCEPTION.items():
        if stage != min(INCEPTION):
            x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"pool{stage - 1}")(x)
        for letter, filters in zip("abcdefgh", modules):
            x = inception_module(x, filters, name=f"inception{stage}{letter}")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = classifier(x, classes, activation=classifier_activation)
    return keras.Model(inputs, outputs, name=name)


@register_model(
    family="googlenet",
    source="article 002 (Szegedy et al. 2014)",
    dataset="imagenet",
    input_shape=(224, 224, 3),
    classes=1000,
    weight_decay=WEIGHT_DECAY,
    params=6_998_552,
    trainable=6_998_552,
    paper_macs=1.5e9,
    builder=googlenet_v1,
)
def googlenet(**overrides) -> keras.Model:
    """GoogLeNet (Inception v1): article 002's, no LRN, no auxiliary classifiers."""
    return googlenet_v1(**overrides)
