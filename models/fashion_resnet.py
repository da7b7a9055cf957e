"""Article 000's ResNet-50 for Fashion-MNIST, rewritten from a subclassed model as a functional one.

It departs from the paper's ResNet-50 in ways that are kept because the article's accuracy was
measured on them: a 'valid' 7x7/2 stem conv; bottleneck blocks whose convs keep their bias and
whose projection shortcut (only where widths differ, i.e. the very first block) has no BN;
downsampling not inside a block but by a bare 1x1/2 conv between stages, so every later block is
an identity block; and a Dense(1000, ReLU) before the classifier. On 28x28 inputs the maps go
11 -> 6 -> 3 -> 2 -> 1.
"""

from __future__ import annotations

import keras
from keras import layers

from models.layers import TF_KERAS_DEFAULT_BN_EPSILON, check_args, classifier, conv_bn_act
from models.registry import ModelArgumentError, register_model

# One row per stage conv2..conv5: (output width, blocks, whether a bare 1x1/2 conv to that width
# precedes the stage). The bottleneck inside each block is a quarter of the output width.
STAGES = ((256, 3, False), (512, 4, True), (1024, 6, True), (2048, 3, True))
STEM_FILTERS = 64
HIDDEN_UNITS = 1000
BN_EPSILON = TF_KERAS_DEFAULT_BN_EPSILON  # the article calls BatchNormalization()
WEIGHT_DECAY = None  # the article's model has no regularizer
MIN_SIZE = 7  # the 'valid' 7x7 stem conv; everything after it is 'same'


def residual_block(x, filters: int, *, name: str, **conv):
    """1x1 -> 3x3 -> 1x1 (width ``filters // 4``) with BN, plus identity or a bare 1x1 projection."""
    width = filters // 4
    y = conv_bn_act(x, width, 1, name=f"{name}_1", **conv)
    y = conv_bn_act(y, width, 3, name=f"{name}_2", **conv)
    y = conv_bn_act(y, filters, 1, activation=None, name=f"{name}_3", **conv)
    if x.shape[-1] != filters:
        x = conv_bn_act(x, filters, 1, batch_norm=False, activation=None, name=f"{name}_0", **conv)
    x = layers.Add(name=f"{name}_add")([y, x])
    return layers.Activation("relu", name=f"{name}_out")(x)


def fashion_resnet(
    *,
    input_shape=(28, 28, 1),
    classes: int = 10,
    classifier_activation: str | None = "softmax",
    name: str = "fashion_resnet50",
    hidden_units: int = HIDDEN_UNITS,
) -> keras.Model:
    """Article 000's ResNet-50; ``hidden_units`` is the width of the ReLU Dense before the classifier."""
    input_shape = check_args(input_shape, classes, min_size=MIN_SIZE, name=name)
    if isinstance(hidden_units, bool) or not isinstance(hidden_units, int) or hidden_units < 1:
        raise ModelArgumentError(f"{name}: hidden_units={hidden_units!r} is invalid; expected a positive int")
    conv = dict(bn_epsilon=BN_EPSILON)

    inputs = keras.Input(shape=input_shape, name="input")
    x = conv_bn_act(inputs, STEM_FILTERS, 7, strides=2, padding="valid", name="conv1", **conv)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1_pool")(x)
    for stage, (filters, blocks, downsample) in enumerate(STAGES, start=2):
        if downsample:
            x = conv_bn_act(
                x,
                filters,
                1,
                strides=2,
                padding="valid",
                batch_norm=False,
                activation=None,
                name=f"conv{stage}_down",
                **conv,
            )
        for block in range(1, blocks + 1):
            x = residual_block(x, filters, name=f"conv{stage}_block{block}", **conv)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Dense(hidden_units, activation="relu", name="fc1")(x)
    outputs = classifier(x, classes, activation=classifier_activation)
    return keras.Model(inputs, outputs, name=name)


@register_model(
    family="fashion_resnet",
    source="article 000 (He et al. 2015, ResNet-50)",
    dataset="fashion_mnist",
    input_shape=(28, 28, 1),
    classes=10,
    weight_decay=WEIGHT_DECAY,
    params=26_313_218,
    trainable=26_267_778,
    builder=fashion_resnet,
)
def fashion_resnet50(**overrides) -> keras.Model:
    """Article 000's subclassed ResNet-50 for Fashion-MNIST, as a functional model."""
    return fashion_resnet(**overrides)
