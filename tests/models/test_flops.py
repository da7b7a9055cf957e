import keras
import pytest
from keras import layers

from models.flops import count_macs, layer_macs, macs_by_layer


def test_each_layer_kind_counted_by_hand():
    inputs = keras.Input((8, 8, 4))
    a = layers.Conv2D(6, 3, strides=2, padding="same", name="conv")(inputs)  # 4x4x6
    b = layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(a)  # 4x4x12
    c = layers.SeparableConv2D(5, 3, padding="valid", name="sep")(b)  # 2x2x5
    d = layers.Conv2D(10, 1, groups=5, name="grouped")(c)  # 2x2x10
    e = layers.Dense(3, name="dense_spatial")(d)  # 2x2x3
    f = layers.Dense(7, name="head")(layers.Flatten()(e))
    model = keras.Model(inputs, f)
    expected = {
        "conv": 4 * 4 * 9 * 4 * 6,
        "dw": 4 * 4 * 9 * 6 * 2,
        "sep": 2 * 2 * (9 * 12 + 12 * 5),
        "grouped": 2 * 2 * 1 * 1 * 10,
        "dense_spatial": 2 * 2 * 10 * 3,
        "head": 12 * 7,
    }
    assert macs_by_layer(model) == expected
    assert count_macs(model) == sum(expected.values())


def test_layers_without_matmuls_count_zero():
    inputs = keras.Input((8, 8, 4))
    x = layers.BatchNormalization()(inputs)
    x = layers.MaxPooling2D()(x)
    x = layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, x)
    assert count_macs(model) == 0
    assert all(layer_macs(layer) == 0 for layer in model.layers)


def test_nested_models_are_counted():
    inner_in = keras.Input((4,))
    inner = keras.Model(inner_in, layers.Dense(3)(inner_in), name="inner")
    outer_in = keras.Input((4,))
    outer = keras.Model(outer_in, layers.Dense(2)(inner(outer_in)))
    assert count_macs(outer) == 4 * 3 + 3 * 2


@pytest.mark.parametrize("depth", [20, 56])
def test_cifar_resnet_macs_counted_by_hand(depth, build):
    # The commonly quoted ~41M (ResNet-20) and ~125M (ResNet-56) mult-adds, counted by hand:
    # stem 32*32*27*16; per block pair of 3x3 convs at each stage the same 2*9*C*C*H*W = 4,718,592;
    # two 1x1 stride-2 projections; the head 64*10.
    n = (depth - 2) // 6
    stem = 32 * 32 * 27 * 16
    block = 2 * 9 * 16 * 16 * 32 * 32  # equal at every stage: channels double as the map halves
    first = 9 * 16 * 32 * 16 * 16 + 9 * 32 * 32 * 16 * 16 + 16 * 32 * 16 * 16  # stage 2's subsampling block
    first3 = 9 * 32 * 64 * 8 * 8 + 9 * 64 * 64 * 8 * 8 + 32 * 64 * 8 * 8
    assert count_macs(build(f"resnet{depth}")) == stem + (3 * n - 2) * block + first + first3 + 64 * 10
