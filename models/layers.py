"""Building blocks shared by every family: argument checks, one conv-BN-activation helper, and the
two batch-norm epsilons the families choose between (each family's table names its own)."""

from __future__ import annotations

from collections.abc import Sequence

from keras import layers

from models.registry import ModelArgumentError

# keras.applications' ResNet50/101/152 pass epsilon=1.001e-5 to every BatchNormalization; their
# weights expect it.
KERAS_APPLICATIONS_BN_EPSILON = 1.001e-5
# tf.keras' (and Keras 3's) BatchNormalization() default: what a network gets that names no epsilon.
TF_KERAS_DEFAULT_BN_EPSILON = 1e-3


def check_args(input_shape: Sequence[int], classes: int, *, min_size: int, name: str) -> tuple[int, int, int]:
    """Validate the common builder arguments; returns ``input_shape`` as a tuple.

    ``min_size`` is the smallest height/width the network accepts (its total stride, or what its
    'valid' layers need). Errors name the bad value and what would be valid.
    """
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    if (
        shape is None
        or len(shape) != 3
        or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)
    ):
        raise ModelArgumentError(
            f"{name}: input_shape={input_shape!r} is invalid; expected (height, width, channels) of positive ints"
        )
    if min(shape[:2]) < min_size:
        raise ModelArgumentError(
            f"{name}: input_shape={shape!r} is too small; height and width must be at least {min_size} for this network"
        )
    if not isinstance(classes, int) or isinstance(classes, bool) or classes < 1:
        raise ModelArgumentError(f"{name}: classes={classes!r} is invalid; expected a positive int")
    return shape


def table_row(table: dict, depth, *, name: str, rule: str = ""):
    """The row of a family's ``DEPTHS`` table for ``depth``; any other depth names the valid ones.

    ``rule`` is the family's depth formula (``"6n+2"``), for families where another n is just
    another row.
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth not in table:
        hint = f" ({rule} layers: another n is a new row of DEPTHS)" if rule else ""
        raise ModelArgumentError(f"{name}: depth={depth!r} is invalid; valid: {', '.join(map(str, table))}{hint}")
    return table[depth]


def conv_bn_act(
    x,
    filters: int,
    kernel_size: int,
    *,
    name: str,
    strides: int = 1,
    padding: str = "same",
    use_bias: bool = True,
    batch_norm: bool = True,
    activation: str | None = "relu",
    kernel_initializer="glorot_uniform",
    kernel_regularizer=None,
    bn_epsilon: float | None = None,
    depthwise: bool = False,
    depth_multiplier: int = 1,
    conv_name: str | None = None,
):
    """Conv2D (or DepthwiseConv2D) -> optional BatchNormalization -> optional activation.

    Layers are named ``{name}_conv``, ``{name}_bn`` and ``{name}_{activation}``, as
    keras.applications names them, so weights can be transferred by layer name. ``conv_name``
    overrides the conv layer's name for families whose reference names it bare (keras
    MobileNet's ``conv_dw_1`` next to ``conv_dw_1_bn``). ``filters`` is ignored for a depthwise
    conv, which has ``depth_multiplier`` output channels per input channel. ``bn_epsilon`` is
    required with ``batch_norm``: the family's table says which of the two epsilons above it uses.
    """
    if batch_norm and bn_epsilon is None:
        raise TypeError(f"conv_bn_act({name!r}): batch_norm=True needs the family's bn_epsilon")
    conv_name = conv_name or f"{name}_conv"
    if depthwise:
        x = layers.DepthwiseConv2D(
            kernel_size,
            strides=strides,
            padding=padding,
            use_bias=use_bias,
            depth_multiplier=depth_multiplier,
            depthwise_initializer=kernel_initializer,
            depthwise_regularizer=kernel_regularizer,
            name=conv_name,
        )(x)
    else:
        x = layers.Conv2D(
            filters,
            kernel_size,
            strides=strides,
            padding=padding,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            kernel_regularizer=kernel_regularizer,
            name=conv_name,
        )(x)
    if batch_norm:
        x = layers.BatchNormalization(epsilon=bn_epsilon, name=f"{name}_bn")(x)
    if activation is not None:
        x = layers.Activation(activation, name=f"{name}_{activation}")(x)
    return x


def classifier(
    x,
    classes: int,
    *,
    activation: str | None,
    name: str = "predictions",
    kernel_regularizer=None,
    kernel_initializer="glorot_uniform",
):
    """The Dense head every family ends with."""
    return layers.Dense(
        classes,
        activation=activation,
        kernel_regularizer=kernel_regularizer,
        kernel_initializer=kernel_initializer,
        name=name,
    )(x)
