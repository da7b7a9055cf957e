"""What produced a training result, as data the gate can compare: its fingerprint.

A fingerprint has five parts that decide the numbers, and a sixth that describes the libraries:

- ``recipe``: the resolved recipe (every field that changes training or evaluation) and the plan
  the budget resolved to;
- ``model``: the built model's whole Keras configuration, layer by layer (initialisers,
  regularisers, batch-norm momentum, activations, connections), stored as groups of layers that
  share one configuration, and its parameter count;
- ``training``: what the training code made of the recipe: the compiled optimizer's and loss's
  configurations (momentum, Nesterov, weight averaging, label smoothing as Keras holds them) and the
  learning rate the schedule code gives at every 5 % of the budget;
- ``data``: the pipeline's settings and what they produced (example counts, normalisation
  statistics, the test split's label counts, a digest of its first batch, and a digest of the first
  batch of a training pipeline at a fixed seed: shuffled and augmented by the data code, so a
  change to the shuffle or the augmentation code shows here even when every setting is the same);
- ``evaluation``: what the evaluation code makes of a fixed probe (a seeded linear classifier, not
  the trained model) on the first test batches: top-1 and loss, so a change to how predictions are
  scored or averaged (test-time augmentation) shows without training;
- ``environment``: the versions that matter (Python, Keras, the backend, TensorFlow for tf.data,
  NumPy) and the device class.

``digest`` hashes the first five. The gate (``bench.regression.accuracy``) fails a result whose
five parts differ from its baseline's with the differences in words (``model changed:
conv2_block1_bn momentum 0.99 -> 0.5``), before any statistics: a deterministic catch for every change
to them, which leaves the statistical band for what a fingerprint cannot see (code that changes the
numbers without changing what is compiled, fed or scored, op order, library upgrades: an environment
difference is a note, not a failure). The batch digests and the
probe depend on the image decoder and the kernels, so they count only when the versions and the
device class match. A field that a baseline's fingerprint predates is a note, not a change
(``bench fingerprint --record`` adds it).
"""

from __future__ import annotations

import hashlib
import json

PARTS = ("recipe", "model", "training", "data", "evaluation")  # a difference in any of these fails the gate
REQUIRED = ("recipe", "model", "data")  # fingerprints recorded before the others existed lack them
# Recipe fields that describe a recipe rather than change what it trains or how it evaluates.
DESCRIPTIVE = ("name", "source", "notes", "tolerance", "reported", "design_seeds", "validate_each_epoch")
# compared only when the environments match
VERSION_SENSITIVE = (
    "data.test_first_batch",
    "data.train_first_batch",
    "evaluation.probe_top1",
    "evaluation.probe_loss",
)
PROBE_BATCHES = 2  # test batches the evaluation probe scores
PROBE_SEED = 0  # the data seed of the training batch that the data part digests (no global seed)
# fields added after the first fingerprints were recorded (besides the parts not in ``REQUIRED``)
ADDED = ("data.train_first_batch",)


def of_run(run, model) -> dict:
    """The fingerprint of a set-up training run (``bench.training.loop.Run``) and its built model."""
    return with_digest(
        {
            "recipe": recipe_part(run),
            "model": model_part(model),
            "training": training_part(model, run.recipe),
            "data": data_part(run.pipes, run.recipe),
            "evaluation": evaluation_part(run.pipes, run.recipe),
            "environment": environment_part(run.placement),
        }
    )


def with_digest(fp: dict) -> dict:
    """The fingerprint as it reads back from JSON (tuples as lists), with its digest."""
    fp = _plain({k: fp[k] for k in (*PARTS, "environment") if k in fp})
    return {"digest": digest(fp), **fp}


def digest(fp: dict) -> str:
    return hashlib.sha256(_canonical({k: fp[k] for k in PARTS if k in fp}).encode()).hexdigest()[:16]


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


def training_part(model, recipe) -> dict:
    """The compiled optimizer and loss as Keras configures them (the learning rate aside: the
    schedule sets it every step) and the schedule code's rate at every 5 % of the budget."""
    from bench.training.budget import lr_at

    optimizer = {k: v for k, v in _plain(model.optimizer.get_config()).items() if k not in ("name", "learning_rate")}
    loss = model.loss
    return {
        "optimizer": {"class": type(model.optimizer).__name__, **optimizer},
        "loss": {"class": type(loss).__name__, **_plain(loss.get_config() if hasattr(loss, "get_config") else loss)},
        "schedule": {f"at {5 * i}%": round(lr_at(recipe.schedule, i / 20), 9) for i in range(21)},
    }


def data_part(pipes, recipe) -> dict:
    """The pipeline's settings and a few of its facts: from the test split (neither shuffled nor
    augmented) label counts over the whole split and the first batch's digest; from a fresh copy of
    the training pipeline, the digest of the first batch training sees."""
    import numpy as np

    counts: dict[int, int] = {}
    first = None
    for images, labels in pipes.test.as_numpy_iterator():
        if first is None:
            first = _batch_digest(images)
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
            "train_first_batch": _first_train_batch(pipes),
        }
    )


def _first_train_batch(pipes) -> str | None:
    """The digest of the first batch (images and labels) of a training pipeline built at data seed
    ``PROBE_SEED`` with no global seed, whatever the run's seeds (tf.data pairs an op's seed with the
    global one, which the run sets from its seed): the fingerprint is the code's, not the seed's.
    The pipeline is one of its own: reading training's would draw the next epoch's streams."""
    import tensorflow as tf
    from tensorflow.python.eager import context

    if pipes.fresh_train is None:
        return None
    saved = context.global_seed()
    tf.random.set_seed(None)
    try:
        train = pipes.fresh_train(PROBE_SEED)  # the ops take their seeds when they are made
    finally:
        tf.random.set_seed(saved)
    for images, labels in train.take(1).as_numpy_iterator():
        return _batch_digest(images, labels)
    return None


def _batch_digest(*arrays) -> str:
    import numpy as np

    h = hashlib.sha256()
    for a, dtype in zip(arrays, (np.float32, np.int64)):
        h.update(np.ascontiguousarray(a, dtype=dtype).tobytes())
    return h.hexdigest()[:16]


def evaluation_part(pipes, recipe) -> dict:
    """Top-1 and loss that the evaluation code (``bench.training.evaluation.evaluate``, with the
    recipe's test-time augmentation) gives a fixed probe on the first ``PROBE_BATCHES`` test batches.
    The probe is a linear softmax classifier with seeded weights and no symmetry (a flipped image
    scores differently), so the figures move with any change to how predictions are made or scored.
    It is this process's alone: outside a multi-worker job's distribution, whose peers would wait."""
    import keras

    spread = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        return _probe_scores(pipes, recipe)
    finally:
        keras.distribution.set_distribution(spread)


def _probe_scores(pipes, recipe) -> dict:
    import keras
    import numpy as np

    from bench.training.evaluation import evaluate

    shape, classes = tuple(pipes.info.input_shape), pipes.info.classes
    size = int(np.prod(shape))
    probe = keras.Sequential(
        [keras.Input(shape), keras.layers.Flatten(), keras.layers.Dense(classes, activation="softmax")], name="probe"
    )
    rng = np.random.default_rng(0)
    probe.layers[-1].set_weights(
        [rng.normal(0, 1 / np.sqrt(size), (size, classes)).astype("float32"), np.zeros(classes, "float32")]
    )
    scores = evaluate(probe, pipes.test.take(PROBE_BATCHES), tta=recipe.tta)
    return {
        "probe_top1": scores["top1"],
        "probe_loss": round(scores["loss"], 6),
        "probe_images": scores["test_examples"],
    }


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


NOTES = ("environment", "unrecorded")  # differences that are notes, not changes


def shape_problem(fp) -> str | None:
    """What keeps ``fp`` from being read as a fingerprint (by ``differences``), in words, or None:
    an object with a string digest, the ``REQUIRED`` parts and any other part as objects, and a model
    part of layer groups (a configuration and the layers' names) and inbound layer names. Result
    files and baselines.json check their fingerprints with it, so a hand-edited one is one line."""
    if not isinstance(fp, dict):
        return f"is {_json(fp)}; expected an object with the parts {list(REQUIRED)}"
    if not isinstance(fp.get("digest", ""), str):
        return f"has digest {_json(fp['digest'])}; expected a string"
    for part in (*PARTS, "environment"):
        if (part in REQUIRED or part in fp) and not isinstance(fp.get(part), dict):
            return f"has {part} {_json(fp.get(part))}; expected an object"
    model = fp["model"]
    groups = model.get("groups", [])
    if not isinstance(groups, list) or not all(
        isinstance(g, dict)
        and isinstance(g.get("config"), dict)
        and isinstance(g.get("layers"), list)
        and all(isinstance(name, str) for name in g["layers"])
        for g in groups
    ):
        return "has model groups that are not a list of {config: {...}, layers: [names]}"
    inputs = model.get("inputs") or {}
    if not isinstance(inputs, dict) or not all(isinstance(v, list) for v in inputs.values()):
        return "has model inputs that are not {layer: [inbound layer names]}"
    return integrity_problem(fp)


def integrity_problem(fp: dict) -> str | None:
    """What shows a fingerprint (of the right shape) edited or corrupt, in words, or None: parts
    that no version of this code wrote together (every part, or the ``REQUIRED`` ones of the first
    fingerprints; with every part, the ``ADDED`` fields too), or a digest that is not its parts'."""
    present = [p for p in PARTS if p in fp]
    if present != list(PARTS) and present != list(REQUIRED):
        lacks = [p for p in PARTS if p not in fp]
        has = [p for p in present if p not in REQUIRED]
        return (
            f"lacks {', '.join(lacks)} but has {', '.join(has) or 'not all of ' + ', '.join(REQUIRED)}, which no "
            "version of the harness wrote together: edited or corrupt"
        )
    if present == list(PARTS) and (lacks := missing(fp)):
        return f"lacks {', '.join(lacks)}, which every fingerprint with a training part records: edited or corrupt"
    if "digest" not in fp:
        return "has no digest, which every fingerprint records: edited or corrupt"
    if fp["digest"] != (actual := digest(fp)):
        return f"has digest {_json(fp['digest'])}, which does not match its parts ({actual}): edited or corrupt"
    return None


def missing(fp: dict) -> list[str]:
    """The parts and ``ADDED`` fields that today's code writes in every fingerprint and ``fp`` lacks:
    none in a result of today's schema (older fingerprints predate them)."""
    lacks = [p for p in PARTS if p not in fp]
    for path in ADDED:
        part, field = path.split(".", 1)
        if part in fp and isinstance(fp[part], dict) and field not in fp[part]:
            lacks.append(path)
    return lacks


def _json(value) -> str:
    """Any JSON value in a few characters (a string in quotes), for a message."""
    return _show(json.dumps(value, default=repr))


def differences(base: dict, current: dict, *, limit: int = 3) -> dict[str, list[str]]:
    """Per part, readable differences (at most ``limit`` each, then "and N more"); parts that agree
    are absent. Two entries are notes rather than changes: ``environment`` lists version changes (the
    version-sensitive facts count only when the environments agree) and ``unrecorded`` the parts and
    fields that one side predates (a fingerprint recorded before they existed)."""
    same_env = _flat(base.get("environment", {})) == _flat(current.get("environment", {}))
    out, unrecorded = {}, []
    for part in (*PARTS, "environment"):
        if part == "model":  # per layer and field: a changed regulariser reads as one value, not its innards
            old, new = _layers(base.get(part)), _layers(current.get(part))
        else:
            old, new = _flat(base.get(part, {})), _flat(current.get(part, {}))
        if not same_env:
            for path in VERSION_SENSITIVE:
                if path.startswith(part + "."):
                    old.pop(path.split(".", 1)[1], None), new.pop(path.split(".", 1)[1], None)
        if part in PARTS and part not in REQUIRED and (part not in base or part not in current):
            if part in base or part in current:
                unrecorded.append(part)
            continue
        for path in [p for p in ADDED if p.startswith(part + ".")]:
            key = path.split(".", 1)[1]
            if (key in old) != (key in new):
                unrecorded.append(path)
                old.pop(key, None), new.pop(key, None)
        lines = _describe(old, new)
        if lines:
            out[part] = lines[:limit] + ([f"and {len(lines) - limit} more"] if len(lines) > limit else [])
    if unrecorded:
        out["unrecorded"] = unrecorded
    return out


def changes_and_notes(found: dict[str, list[str]]) -> tuple[dict[str, list[str]], list[str]]:
    """``differences``' output split into the changes that fail the gate and the notes beside them."""
    notes = []
    if found.get("environment"):
        notes.append(f"versions differ ({', '.join(found['environment'])}): judged by the band")
    if found.get("unrecorded"):
        notes.append(
            f"not compared: {', '.join(found['unrecorded'])}, which one fingerprint predates "
            "(`bench fingerprint RECIPE --record` adds them to a baseline)"
        )
    return {k: v for k, v in found.items() if k not in NOTES}, notes


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
