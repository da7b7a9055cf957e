"""CIFAR ResNets (He et al. 2015, sec. 4.2) as article 003 builds them: 6n+2 layers of basic blocks.

The article keeps conv biases and projects with a 1x1 stride-2 conv when it subsamples (the
paper's option B); the paper's own CIFAR nets use option A (a parameter-free identity that
subsamples and zero-pads channels) and no conv bias: ``shortcut="A", use_bias=False``.
"""

from __future__ import annotations

import keras
from keras import layers, regularizers

from models.layers import KERAS_APPLICATIONS_BN_EPSILON, check_args, classifier, conv_bn_act, table_row
from models.registry import ModelArgumentError, register_model

# depth -> n, the number of basic blocks per stage (depth = 6n + 2); another depth is another row
DEPTHS = {20: 3, 32: 5, 44: 7, 56: 9, 110: 18}
# (filters, stride of the stage's first block) for the three stages on 32, 16 and 8 pixel maps
STAGES = ((16, 1), (32, 2), (64, 2))
BN_EPSILON = KERAS_APPLICATIONS_BN_EPSILON
WEIGHT_DECAY = 1e-4  # L2 on every conv kernel (not the classifier's)
SHORTCUTS = ("A", "B")
PAPER = dict(shortcut="A", use_bias=False)


@keras.saving.register_keras_serializable(package="models")
class ChannelPad(layers.Layer):
    """Option A's shortcut: zero channels appended so the identity matches a wider block."""

    def __init__(self, extra: int, **kwargs):
        super().__init__(**kwargs)
        self.extra = extra

    def call(self, x):
        return keras.ops.pad(x, [[0, 0], [0, 0], [0, 0], [0, self.extra]])

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + self.extra)

    def get_config(self):
        return {**super().get_config(), "extra": self.extra}


def basic_block(x, filters: int, stride: int, *, shortcut: str, name: str, **conv):
    """conv3x3-BN-ReLU, conv3x3-BN, plus the shortcut, then ReLU."""
    y = conv_bn_act(x, filters, 3, strides=stride, name=f"{name}_1", **conv)
    y = conv_bn_act(y, filters, 3, activation=None, name=f"{name}_2", **conv)
    if stride != 1 or x.shape[-1] != filters:
        if shortcut == "B":
            x = conv_bn_act(x, filters, 1, strides=stride, batch_norm=False, activation=None, name=f"{name}_0", **conv)
        else:
            x = layers.MaxPooling2D(1, strides=stride, name=f"{name}_0_subsample")(x)
            x = ChannelPad(filters - x.shape[-1], name=f"{name}_0_pad")(x)
    x = layers.Add(name=f"{name}_add")([x, y])
    return layers.Activation("relu", name=f"{name}_out")(x)


def cifar_resnet(
    depth: int,
    *,
    input_shape=(32, 32, 3),
    classes: int = 10,
    shortcut: str = "B",
    use_bias: bool = True,
    weight_decay: float = WEIGHT_DECAY,
    classifier_activation: str | None = "softmax",
    name: str | None = None,
) -> keras.Model:
    """A 6n+2-layer CIFAR ResNet; ``depth`` must be a row of ``DEPTHS``, which gives its n."""
    name = name or f"resnet{depth}"
    n = table_row(DEPTHS, depth, name=name, rule="6n+2")
    if shortcut not in SHORTCUTS:
        raise ModelArgumentError(f"{name}: shortcut={shortcut!r} is invalid; valid: {', '.join(SHORTCUTS)}")
    input_shape = check_args(input_shape, classes, min_size=4, name=name)
    conv = dict(
        use_bias=use_bias,
        kernel_initializer="he_normal",
        bn_epsilon=BN_EPSILON,
        kernel_regularizer=regularizers.L2(weight_decay) if weight_decay else None,
    )

    inputs = keras.Input(shape=input_shape, name="input")
    x = conv_bn_act(inputs, STAGES[0][0], 3, name="conv1", **conv)
    for stage, (filters, stride) in enumerate(STAGES, start=2):
        for block in range(1, n + 1):
            x = basic_block(
                x, filters, stride if block == 1 else 1, shortcut=shortcut, name=f"conv{stage}_block{block}", **conv
            )
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = classifier(x, classes, activation=classifier_activation, kernel_initializer="he_normal")
    return keras.Model(inputs, outputs, name=name)


# Exact counts are the article's variant's; SPEC quotes 20, 56 and 110, and the count is linear in n
# (97,888 per block of all three stages), which gives 32 and 44. paper_params is the paper's figure
# for its option-A variant (PAPER), to two significant figures: half a unit of the last digit.
_META = dict(
    family="cifar_resnet",
    source="article 003 (He et al. 2015, sec. 4.2)",
    dataset="cifar10",
    input_shape=(32, 32, 3),
    classes=10,
    weight_decay=WEIGHT_DECAY,
    paper_overrides=PAPER,
    builder=cifar_resnet,
)


@register_model(**_META, params=274_442, trainable=273_066, paper_params=0.27e6, paper_params_tol=0.005e6)
def resnet20(**overrides) -> keras.Model:
    """ResNet-20 for CIFAR: article 003's option-B shortcuts with conv bias."""
    return cifar_resnet(20, **overrides)


@register_model(**_META, params=470_218, trainable=467_946, paper_params=0.46e6, paper_params_tol=0.005e6)
def resnet32(**overrides) -> keras.Model:
    """ResNet-32 for CIFAR: article 003's option-B shortcuts with conv bias."""
    return cifar_resnet(32, **overrides)


@register_model(**_META, params=665_994, trainable=662_826, paper_params=0.66e6, paper_params_tol=0.005e6)
def resnet44(**overrides) -> keras.Model:
    """ResNet-44 for CIFAR: article 003's option-B shortcuts with conv bias."""
    return cifar_resnet(44, **overrides)


@register_model(**_META, params=861_770, trainable=857_706, paper_params=0.85e6, paper_params_tol=0.005e6)
def resnet56(**overrides) -> keras.Model:
    """ResNet-56 for CIFAR: article 003's option-B shortcuts with conv bias."""
    return cifar_resnet(56, **overrides)


@register_model(**_META, params=1_742_762, trainable=1_734_666, paper_params=1.7e6, paper_params_tol=0.05e6)
def resnet110(**overrides) -> keras.Model:
    """ResNet-110 for CIFAR: article 003's option-B shortcuts with conv bias."""
    return cifar_resnet(110, **overrides)
