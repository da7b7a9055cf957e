"""What produced a training result, as data the gate can compare: its fingerprint.

A fingerprint has three parts that decide the numbers, and a fourth that describes the libraries:

- ``recipe``: the resolved recipe (every field that changes training or evaluation) and the plan
  the budget resolved to;
- ``model``: the built model's whole Keras configuration, layer by layer (initialisers,
  regularisers, batch-norm momentum, activations, connections), stored as groups of layers that
  share one configuration, and its parameter count;
- ``data``: the pipeline's settings and what they produced (example counts, normalisation
  statistics, the test split's label counts, a digest of its first batch);
- ``environment``: the versions that matter (Python, Keras, the backend, TensorFlow for tf.data,
  NumPy) and the device class.

``digest`` hashes the first three. The gate (``bench.regression.accuracy``) fails a result whose
recipe, model or data differ from its baseline's with the differences in words (``model changed:
conv2_block1_bn momentum 0.99 -> 0.5``), before any statistics: a deterministic catch for every change
to them, which leaves the statistical band for what a fingerprint cannot see (data code, numerics,
library upgrades: an environment difference is a note, not a failure). The first test batch's
digest depends on the image decoder, so it counts as a data change only when the versions match.
"""

from __future__ import annotations

import hashlib
import json

PARTS = ("recipe", "model", "data")  # a difference in any of these fails the gate
# Recipe fields that describe a recipe rather than change what it trains or how it evaluates.
DESCRIPTIVE = ("name", "source", "notes", "tolerance", "reported", "design_seeds", "validate_each_epoch")
VERSION_SENSITIVE = ("data.test_first_batch",)  # compared only when the environments match


def of_run(run, model) -> dict:
    """The fingerprint of a set-up training run (``bench.training.loop.Run``) and its built model."""
    return with_digest(
        {
            "recipe": recipe_part(run),
            "model": model_part(model),
            "data": data_part(run.pipes, run.recipe),
            "environment": environment_part(run.placement),
        }
    )


def with_digest(fp: dict) -> dict:
    """The fingerprint as it reads back from JSON (tuples as lists), with its digest."""
    fp = _plain({k: fp[k] for k in (*PARTS, "environment")})
    return {"digest": digest(fp), **fp}


def digest(fp: dict) -> str:
    return hashlib.sha256(_canonical({k: fp[k] for k in PARTS}).encode()).hexdigest()[:16]


def recipe_part(run) -> dict:
    recipe = {k: v for k, v in run.recipe.to_dict().items() if k not in DESCRIPTIVE}
    return {
        **recipe,
        "budget": str(run.budget),
        "steps_per_epoch": run.plan.steps_per_epoch,
        "precision": run.policy,
        "deterministic": run.deterministic,
        "steps_per_execution": run.opts.steps_per_execution,
        "replicas": run.placement.replicas,
    }


def model_part(model) -> dict:
    """Every layer's configuration (its name aside), grouped: layers that share a configuration are
    stored once with their names; ``inputs`` names each layer's inbound layers."""
    groups: dict[str, dict] = {}
    for layer in model._flatten_layers(include_self=False, recursive=True):
        config = {k: v for k, v in _plain(layer.get_config()).items() if k != "name"}
        config = {"class": type(layer).__name__, **config}
        groups.setdefault(_canonical(config), {"config": config, "layers": []})["layers"].append(layer.name)
    return {
        "params": int(model.count_params()),
        "groups": list(groups.values()),
        "inputs": _inputs(model),
    }


def data_part(pipes, recipe) -> dict:
    """The pipeline's settings and a few of its facts, read from the test split (which is neither
    shuffled nor augmented): label counts over the whole split and the first batch's digest."""
    import numpy as np

    counts: dict[int, int] = {}
    first = None
    for images, labels in pipes.test.as_numpy_iterator():
        if first is None:
            first = hashlib.sha256(np.ascontiguousarray(images, dtype=np.float32).tobytes()).hexdigest()[:16]
        for label, n in zip(*np.unique(labels, return_counts=True)):
            counts[int(label)] = counts.get(int(label), 0) + int(n)
    return _plain(
        {
            "dataset": pipes.info.name,
            "input_shape": list(pipes.info.input_shape),
            "classes": pipes.info.classes,
            "train_examples": pipes.train_examples,
            "test_examples": pipes.test_examples,
            "batch_size": recipe.batch_size,
            "augment": recipe.augment,
            "normalization": _rounded(pipes.normalization),
            "test_labels": {str(k): counts[k] for k in sorted(counts)},
            "test_first_batch": first,
        }
    )


def environment_part(placement) -> dict:
    import platform

    import keras

    from bench import backends

    versions = {"python": platform.python_version(), "keras": keras.__version__, "backend": placement.backend}
    versions.update(backends.current().versions())
    try:
        import numpy
        import tensorflow  # tf.data reads the data on every backend

        versions.update(numpy=numpy.__version__, tensorflow=tensorflow.__version__)
    except ImportError:
        pass
    return {**versions, "device_class": placement.device_class}


# ---------------------------------------------------------------------------------------------
# Comparing two fingerprints


def differences(base: dict, current: dict, *, limit: int = 3) -> dict[str, list[str]]:
    """Per part, readable differences (at most ``limit`` each, then "and N more"); parts that agree
    are absent. ``environment`` lists version changes; the version-sensitive data facts count only
    when the environments agree."""
    same_env = _flat(base.get("environment", {})) == _flat(current.get("environment", {}))
    out = {}
    for part in (*PARTS, "environment"):
        if part == "model":  # per layer and field: a changed regulariser reads as one value, not its innards
            old, new = _layers(base.get(part)), _layers(current.get(part))
        else:
            old, new = _flat(base.get(part)), _flat(current.get(part))
        if not same_env:
            for path in VERSION_SENSITIVE:
                if path.startswith(part + "."):
                    old.pop(path.split(".", 1)[1], None), new.pop(path.split(".", 1)[1], None)
        lines = _describe(old, new)
        if lines:
            out[part] = lines[:limit] + ([f"and {len(lines) - limit} more"] if len(lines) > limit else [])
    return out


def _describe(old: dict, new: dict) -> list[str]:
    """``field old -> new`` lines, one per (field, old, new), naming the layers or paths it affects."""
    changes: dict[tuple, list[str]] = {}
    for path in sorted(set(old) | set(new)):
        a, b = old.get(path, "(none)"), new.get(path, "(none)")
        if a == b:
            continue
        owner, _, field = path.rpartition(".")
        changes.setdefault((field or path, _show(a), _show(b)), []).append(owner)
    lines = []
    for (field, a, b), owners in changes.items():
        owners = [o for o in owners if o]
        where = (
            "" if not owners else owners[0] + " " if len(owners) == 1 else f"{len(owners)} layers ({owners[0]}, ...) "
        )
        lines.append(f"{where}{field} {a} -> {b}")
    return lines


def _layers(model: dict | None) -> dict:
    """The model part as ``{"layer.field": value}`` (values whole: a regulariser is one value)."""
    if not model:
        return {}
    flat = {}
    for group in model.get("groups", []):
        for name in group["layers"]:
            flat.update({f"{name}.{field}": value for field, value in group["config"].items()})
    for name, inputs in (model.get("inputs") or {}).items():
        flat[f"{name}.inputs"] = inputs
    flat["model.params"] = model.get("params")
    return flat


def _flat(value, prefix: str = "") -> dict:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: _canonical(value) if isinstance(value, list) else value}


def _inputs(model) -> dict:
    """Each layer's inbound layer names, from a functional model's configuration (empty otherwise)."""
    try:
        layers = model.get_config().get("layers", [])
    except (NotImplementedError, AttributeError, TypeError):
        return {}
    found = {}
    for layer in layers:
        names = sorted(set(_history_names(layer.get("inbound_nodes", []))))
        if names:
            found[layer.get("name")] = names
    return found


def _history_names(node) -> list[str]:
    if isinstance(node, dict):
        if "keras_history" in node:
            return [node["keras_history"][0]]
        return [n for v in node.values() for n in _history_names(v)]
    if isinstance(node, list | tuple):
        return [n for v in node for n in _history_names(v)]
    return []


def _show(value) -> str:
    """A value in a few words: a serialised Keras object as ``L2(l2=0.0001)``."""
    if isinstance(value, dict) and "class_name" in value:
        config = value.get("config") or {}
        args = (
            ", ".join(f"{k}={v}" for k, v in config.items() if not isinstance(v, dict))
            if isinstance(config, dict)
            else ""
        )
        text = f"{value['class_name']}({args})"
    else:
        text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 48 else text[:45] + "..."


def _rounded(value):
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value


def _plain(value):
    """JSON-ready (tuples as lists, numpy scalars as numbers, anything else as its repr)."""
    return json.loads(json.dumps(value, default=lambda o: o.item() if hasattr(o, "item") else repr(o)))


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
