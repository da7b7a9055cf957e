"""VGG-16 and VGG-19 (Simonyan & Zisserman 2014) as article 002 builds them.

3x3 'same' convolutions with bias and ReLU in five stages, a 2x2/2 max pool after each, then
Flatten and two 4096-wide Dense layers. Layer names are keras.applications' (``block1_conv1``,
``fc1``, ``predictions``), so its VGG16/VGG19 weights load by name. The article pools with
'same' padding where keras pools 'valid': the two agree on every input divisible by 32.
"""

from __future__ import annotations

import keras
from keras import layers

from models.layers import check_args, classifier, table_row
from models.registry import register_model

# depth -> (filters, number of 3x3 convs) per stage; every stage ends in a 2x2/2 max pool
DEPTHS = {
    16: ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)),
    19: ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4)),
}
FC_UNITS = 4096
WEIGHT_DECAY = None  # no regularizer in the model


def vgg_stage(x, filters: int, convs: int, *, name: str):
    """``convs`` 3x3 conv+ReLU layers (one layer each, as in keras.applications), then a max pool."""
    for i in range(1, convs + 1):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"{name}_conv{i}")(x)
    return layers.MaxPooling2D(2, strides=2, padding="same", name=f"{name}_pool")(x)


def vgg(
    depth: int,
    *,
    input_shape=(224, 224, 3),
    classes: int = 1000,
    classifier_activation: str | None = "softmax",
    name: str | None = None,
) -> keras.Model:
    """A VGG network of ``depth`` weight layers (16 or 19) with its fully connected head."""
    name = name or f"vgg{depth}"
    stages = table_row(DEPTHS, depth, name=name)
    # Five 'same' pools: any size works, but below 32 the last stages pool a 1x1 map.
    input_shape = check_args(input_shape, classes, min_size=32, name=name)

    inputs = keras.Input(shape=input_shape, name="input")
    x = inputs
    for stage, (filters, convs) in enumerate(stages, start=1):
        x = vgg_stage(x, filters, convs, name=f"block{stage}")
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(FC_UNITS, activation="relu", name="fc1")(x)
    x = layers.Dense(FC_UNITS, activation="relu", name="fc2")(x)
    outputs = classifier(x, classes, activation=classifier_activation)
    return keras.Model(inputs, outputs, name=name)


_META = dict(
    family="vgg",
    source="article 002 (Simonyan & Zisserman 2014)",
    dataset="imagenet",
    input_shape=(224, 224, 3),
    classes=1000,
    weight_decay=WEIGHT_DECAY,
    builder=vgg,
)


@register_model(
    **_META,
    params=138_357_544,
    trainable=138_357_544,
    paper_params=138e6,
    paper_params_tol=0.5e6,
    paper_macs=15.5e9,
    reference="VGG16",
)
def vgg16(**overrides) -> keras.Model:
    """VGG-16 (configuration D): 13 convs + 3 FC, = keras.applications.VGG16."""
    return vgg(16, **overrides)


@register_model(
    **_META,
    params=143_667_240,
    trainable=143_667_240,
    paper_params=144e6,
    paper_params_tol=0.5e6,
    reference="VGG19",
)
def vgg19(**overrides) -> keras.Model:
    """VGG-19 (configuration E): 16 convs + 3 FC, = keras.applications.VGG19."""
    return vgg(19, **overrides)
