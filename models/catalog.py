"""One row of the zoo table per registered model: its source and what it measures when built."""

from __future__ import annotations

import keras

from models.flops import count_macs
from models.registry import get_spec


def summary(name: str, **overrides) -> dict:
    """Build ``name`` once and report what the zoo table (``python -m bench models``) shows."""
    spec = get_spec(name)
    model = spec.create(**overrides)
    row = {
        "name": name,
        "family": spec.family,
        "source": spec.source,
        "dataset": spec.dataset,
        "input_shape": list(model.input_shape[1:]),
        "classes": int(model.output_shape[-1]),
        "params": int(model.count_params()),
        "trainable_params": int(sum(int(w.numpy().size) for w in model.trainable_weights)),
        "macs": int(count_macs(model)),
        "description": spec.description,
    }
    del model
    keras.backend.clear_session()
    return row
