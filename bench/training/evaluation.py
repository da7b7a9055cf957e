"""The final evaluation of a trained model, and the variants that make it less noisy.

``evaluate`` scores the whole test split (top-1 and cross-entropy, with the recipe's test-time
augmentation). A recipe can ask for two refinements before it (``Recipe.precise_bn_batches``,
``Recipe.ema_momentum``), and the result records every variant it computed under
``evaluations``, so one run measures them all; the recipe's ``evaluation`` names the one that
becomes the result's ``top1`` and ``loss`` (what the gate compares; ``recipes.EVALUATIONS``):

- ``moving_bn``: the trained weights with batch norm's moving averages, as ``model.evaluate`` would;
- ``precise_bn``: batch-norm statistics recomputed as the plain average over N training batches
  with the final weights (Wu & Johnson, "Rethinking Batch in BatchNorm", 2021: the moving
  averages of a short run mix statistics of weights that no longer exist);
- ``ema``: the optimizer's exponential moving average of the weights (Keras's ``use_ema``), with
  precise statistics when ``precise_bn_batches`` is set (moving averages belong to the raw weights).

The training trajectory is the same with or without them: Keras keeps the average beside the
weights and only swaps it in when ``fit`` ends, and the statistics are recomputed after training.
"""

from __future__ import annotations

import keras
import numpy as np

from bench.results import per_image


def optimizer_arguments(recipe) -> dict:
    """Keras optimizer arguments for the recipe's weight average (none without one)."""
    return {} if recipe.ema_momentum is None else {"use_ema": True, "ema_momentum": float(recipe.ema_momentum)}


class KeepRawWeights(keras.callbacks.Callback):
    """Keeps a copy of the trained (not averaged) weights at each epoch's end: ``fit`` overwrites them
    with the optimizer's average when it returns."""

    def __init__(self):
        super().__init__()
        self.weights = None

    def on_epoch_end(self, epoch, logs=None):
        self.weights = [keras.ops.convert_to_numpy(v) for v in self.model.trainable_variables]


def final(model, recipe, train_ds, test_ds, *, raw_weights=None, log=lambda msg: None) -> dict:
    """Every evaluation variant the recipe asks for, and the chosen one as ``top1``/``loss``.

    ``model`` holds the weights ``fit`` left (the average, with ``ema_momentum``); ``raw_weights``
    the trained ones (``KeepRawWeights``). ``train_ds`` yields (image, label) training batches."""
    averaged = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables] if recipe.ema_momentum else None
    if averaged is not None and raw_weights is not None:
        _assign(model.trainable_variables, raw_weights)
    evaluations = {"moving_bn": evaluate(model, test_ds, tta=recipe.tta)}
    moving = _bn_state(model)
    if recipe.precise_bn_batches:
        seen = recompute_bn(model, train_ds, recipe.precise_bn_batches)
        evaluations["precise_bn"] = {**evaluate(model, test_ds, tta=recipe.tta), "bn_batches": seen}
    if averaged is not None:
        _assign(model.trainable_variables, averaged)
        if recipe.precise_bn_batches:
            seen = recompute_bn(model, train_ds, recipe.precise_bn_batches)
        else:
            _restore_bn(model, moving)
        evaluations["ema"] = {**evaluate(model, test_ds, tta=recipe.tta), "ema_momentum": recipe.ema_momentum}
    chosen = evaluations[recipe.evaluation]
    log(
        "evaluation: "
        + ", ".join(f"{name} top-1 {ev['top1']:.2f}% loss {ev['loss']:.4f}" for name, ev in evaluations.items())
    )
    return {
        **{k: chosen[k] for k in ("top1", "loss", "top1_no_tta", "loss_no_tta", "test_examples")},
        "evaluation": recipe.evaluation,
        "evaluations": evaluations,
    }


def batch_norm_layers(model) -> list:
    found = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
    return found


def recompute_bn(model, batches, count: int) -> int:
    """Replace every batch-norm layer's moving mean and variance with their plain average over
    ``count`` batches of ``batches`` run through the model in training mode (each layer sees the
    activations of the layers before it with their batch statistics, as in training). Returns how
    many batches were used (fewer when the dataset is shorter)."""
    layers = batch_norm_layers(model)
    if not layers:
        return 0
    momenta = [layer.momentum for layer in layers]
    sums = [[0.0, 0.0] for _ in layers]
    seen = 0
    try:
        for layer in layers:  # each call leaves exactly that batch's statistics in the moving averages
            layer.momentum = 0.0
        for x, _ in batches.take(count):
            model(x, training=True)
            for acc, layer in zip(sums, layers):
                acc[0] = acc[0] + keras.ops.convert_to_numpy(layer.moving_mean)
                acc[1] = acc[1] + keras.ops.convert_to_numpy(layer.moving_variance)
            seen += 1
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    if seen:
        for (mean, var), layer in zip(sums, layers):
            layer.moving_mean.assign(mean / seen)
            layer.moving_variance.assign(var / seen)
    return seen


def _bn_state(model) -> list:
    return [
        (keras.ops.convert_to_numpy(layer.moving_mean), keras.ops.convert_to_numpy(layer.moving_variance))
        for layer in batch_norm_layers(model)
    ]


def _restore_bn(model, state) -> None:
    for layer, (mean, var) in zip(batch_norm_layers(model), state):
        layer.moving_mean.assign(mean)
        layer.moving_variance.assign(var)


def _assign(variables, values) -> None:
    for var, value in zip(variables, values):
        var.assign(value)


def evaluate(model, test_ds, *, tta=()) -> dict:
    """Top-1 (percent) and cross-entropy over the whole test split; with ``tta=("flip",)`` the
    softmax of the image and of its mirror image are averaged (the plain figures are kept too).
    ``correct`` and ``labels_sha256`` record which images ``top1`` got right (``results.per_image``)."""
    import tensorflow as tf

    labels = np.concatenate([y for _, y in test_ds.as_numpy_iterator()])
    probs = model.predict(test_ds.map(lambda x, y: x), verbose=0).astype(np.float64)
    out = {"test_examples": int(labels.shape[0])}

    def scores(p):
        top1 = round(100.0 * float(np.mean(np.argmax(p, axis=1) == labels)), 4)
        loss = float(np.mean(-np.log(np.clip(p[np.arange(len(labels)), labels], 1e-12, None))))
        return top1, loss

    out["top1_no_tta"], out["loss_no_tta"] = scores(probs)
    if "flip" in tta:
        flipped = model.predict(test_ds.map(lambda x, y: tf.image.flip_left_right(x)), verbose=0).astype(np.float64)
        probs = (probs + flipped) / 2.0
    out["top1"], out["loss"] = scores(probs)
    out.update(per_image(np.argmax(probs, axis=1) == labels, labels))
    return out
