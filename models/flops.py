"""Multiply-adds per image, counted analytically from a built model's layers.

The papers count the multiply-adds of convolutions and fully connected layers (He et al. Table 1,
MobileNet's "Mult-Adds"); batch norm, activations, pooling and additions are a rounding error
next to them and are left out, as the papers leave them out. One MAC is two FLOPs.
"""

from __future__ import annotations

import math

import keras
from keras import layers


def _spatial(shape) -> int:
    """Product of an output shape's dimensions between batch and channels."""
    return math.prod(int(d) for d in shape[1:-1])


def layer_macs(layer: keras.layers.Layer) -> int:
    """Multiply-adds one call of ``layer`` performs per image (0 for layers that do no matmul)."""
    if isinstance(layer, keras.Model):
        return count_macs(layer)
    if isinstance(layer, layers.DepthwiseConv2D):
        k = math.prod(layer.kernel_size)
        return _spatial(layer.output.shape) * k * int(layer.output.shape[-1])
    if isinstance(layer, layers.SeparableConv2D):
        cin = int(layer.input.shape[-1])
        depth = cin * layer.depth_multiplier
        return _spatial(layer.output.shape) * (math.prod(layer.kernel_size) * depth + depth * layer.filters)
    if isinstance(layer, (layers.Conv1D, layers.Conv2D, layers.Conv3D)) and not isinstance(
        layer, layers.Conv2DTranspose
    ):
        cin = int(layer.input.shape[-1]) // layer.groups
        return _spatial(layer.output.shape) * math.prod(layer.kernel_size) * cin * layer.filters
    if isinstance(layer, layers.Dense):
        return _spatial(layer.output.shape) * int(layer.input.shape[-1]) * layer.units
    return 0


def macs_by_layer(model: keras.Model) -> dict[str, int]:
    """MACs per image of each layer that does any, by layer name."""
    return {layer.name: m for layer in model.layers if (m := layer_macs(layer))}


def count_macs(model: keras.Model) -> int:
    """Total multiply-adds per image of a built functional model at its input shape."""
    return sum(layer_macs(layer) for layer in model.layers)
