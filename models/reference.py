"""keras.applications counterparts of registered models, and weight transfer between the two.

A spec with ``reference="ResNet50"`` claims that ``spec.create(**spec.reference_overrides)`` is
the same network as ``keras.applications.ResNet50``: same layer names, same weight shapes, same
outputs once the weights are copied across. The reference is always built with
``weights=None``: nothing is downloaded.
"""

from __future__ import annotations

import keras

from models.registry import ModelArgumentError, get_spec


class WeightTransferError(ValueError):
    """Two models whose weighted layers do not correspond one to one by name, type and shape."""


def reference_model(name: str, **overrides) -> keras.Model:
    """A freshly initialised ``keras.applications.<spec.reference>`` for registered ``name``.

    Defaults to the spec's input shape and classes; ``overrides`` go to the keras constructor
    (``input_shape``, ``classes``, ``classifier_activation``, ``alpha`` ...). ``weights`` other
    than None is refused, so this never downloads.
    """
    spec = get_spec(name)
    if spec.reference is None:
        raise ModelArgumentError(f"{name}: has no keras.applications reference")
    kwargs = {"weights": None, "input_shape": spec.input_shape, "classes": spec.classes, **overrides}
    if kwargs["weights"] is not None:
        raise ModelArgumentError(
            f"{name}: weights={kwargs['weights']!r} is refused; references are built with weights=None"
        )
    return getattr(keras.applications, spec.reference)(**kwargs)


def _weighted_layers(model: keras.Model) -> dict[str, keras.layers.Layer]:
    return {layer.name: layer for layer in model.layers if layer.weights}


def copy_weights(src: keras.Model, dst: keras.Model) -> int:
    """Copy every weighted layer of ``src`` into the layer of ``dst`` with the same name.

    Both models must have the same set of weighted layer names, and each pair the same layer
    type and weight shapes; anything else raises ``WeightTransferError`` before a single weight
    is written. Returns the number of layers copied.
    """
    src_layers, dst_layers = _weighted_layers(src), _weighted_layers(dst)
    problems = []
    if missing := sorted(set(src_layers) - set(dst_layers)):
        problems.append(f"missing in {dst.name}: {', '.join(missing)}")
    if extra := sorted(set(dst_layers) - set(src_layers)):
        problems.append(f"not in {src.name}: {', '.join(extra)}")
    for layer_name in sorted(set(src_layers) & set(dst_layers)):
        a, b = src_layers[layer_name], dst_layers[layer_name]
        if type(a) is not type(b):
            problems.append(f"{layer_name}: {type(a).__name__} vs {type(b).__name__}")
            continue
        shapes_a = [tuple(w.shape) for w in a.weights]
        shapes_b = [tuple(w.shape) for w in b.weights]
        if shapes_a != shapes_b:
            problems.append(f"{layer_name}: weight shapes {shapes_a} vs {shapes_b}")
    if problems:
        raise WeightTransferError(f"cannot copy {src.name} -> {dst.name}: " + "; ".join(problems))
    for layer_name, layer in src_layers.items():
        dst_layers[layer_name].set_weights(layer.get_weights())
    return len(src_layers)
