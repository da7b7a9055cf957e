"""Numerical parity of the registered models across Keras backends.

Every network here is written against Keras 3's backend-neutral API, so the same weights must give
the same outputs on TensorFlow, JAX and (where installed) PyTorch. Keras fixes its backend when it
is imported, so the comparison spans processes: the calling process (TensorFlow, the backend the
harness runs on) builds each model, draws a fixed batch and writes weights, batch, labels and its
outputs to ``<dir>/<case>.npz`` (:func:`write_references`); a child per other backend
(``python -m models.parity --backend jax --dir DIR``, started by :func:`run_backend`) loads those
weights into its own build of the model, recomputes the outputs in fp32 on the CPU, takes one SGD
step with Keras' own ``train_on_batch`` and writes ``<dir>/<backend>/<case>.npz``; the parent then
compares. ``python -m models.parity --table`` prints the Markdown table the README quotes.

What is compared is the logits (each model built with ``classifier_activation=None``; the softmax
has no weights), relative to the largest reference logit. Measured at the fixed seeds, the softmax
hides everything: with BN's moving statistics at their initial values (mean 0, variance 1) the CIFAR
ResNets' logits grow to 1e2-4e9 (resnet110), so their softmax is exactly one-hot, while MobileNet's
shrink to 1e-18, so its softmax is exactly uniform. An absolute bound on the logits fails the
first group (resnet110 differs by 1e3 at 4e9: fp32 rounding) and bounds nothing on the second;
relative to the largest logit, every model agrees to within 4e-6, so one relative tolerance fits all.

The child runs eagerly: with a batch of 2 its cost is compilation, and eagerly XLA compiles each
primitive once per shape (shared by the ResNets of a family) instead of one whole graph per model.
Measured on 2 cores: the CIFAR models take 33 s eagerly and 50 s compiled (resnet110's step alone
2.6 s against 12.8 s); all 17 models take the same either way, about 3 minutes (googlenet's step
is the exception, 24 s eagerly against 6 s compiled); ``--jit`` keeps the compiled path to compare.
The child's XLA generates CPU code at -O0 (``CHILD_XLA_FLAGS``; empty it to test the default): a
quarter less compile time for differences of the same size (fp32 rounding: identical for 16 models,
fashion_resnet50's max |diff| 1.0e-7 against 7.5e-8 at -O3).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import math
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterable
from pathlib import Path

import numpy as np

BATCH = 2
INPUT_SEED = 0  # numpy default_rng seed of the batch (standard normal, like normalised images)
LABEL_SEED = 1  # numpy default_rng seed of the integer labels of the training step
WEIGHT_SEED = 0  # keras.utils.set_random_seed before each build, so the table is reproducible
LEARNING_RATE, MOMENTUM = 0.01, 0.9

# max |logit difference| / max |reference logit|. Measured: 1.5e-7 to 1.3e-6, 3e-6 for the VGGs (fp32
# rounding); one of resnet20's first-layer weights moved by 0.01 (its std is 0.26) gives 1.1e-4.
DEFAULT_TOLERANCE = 1e-4
# The one table of exceptions: model -> (relative tolerance, why it needs more than the default).
# Empty: no model needs more.
TOLERANCES: dict[str, tuple[float, str]] = {}

TORCH_MISSING = "torch is not installed (optional: its wheel is very large)"
CHILD_XLA_FLAGS = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"


def tolerance(name: str) -> float:
    """The relative tolerance for ``name``: max |logit difference| over max |TensorFlow logit|."""
    return TOLERANCES.get(name, (DEFAULT_TOLERANCE, ""))[0]


def other_backends() -> list[str]:
    """The non-TensorFlow backends installed here, in the order the table lists them."""
    return ["jax"] + (["torch"] if importlib.util.find_spec("torch") else [])


@dataclasses.dataclass(frozen=True)
class Reference:
    """What TensorFlow computed for one model: its .npz, its one-step loss and the seconds it took."""

    name: str
    path: Path
    loss: float
    seconds: float


@dataclasses.dataclass(frozen=True)
class Result:
    """One case (a reference .npz) replayed on one backend, against TensorFlow.

    ``scale`` is max |TensorFlow logit|; ``loss`` the backend's one-step loss. ``error`` is the
    child's traceback (or why no result came back), empty when it ran; the figures are NaN then.
    """

    name: str
    backend: str
    max_abs_diff: float
    scale: float
    loss: float
    seconds: float
    error: str = ""

    @property
    def relative(self) -> float:
        """max |difference| / max |TensorFlow logit|: what the tolerance bounds."""
        if self.scale == 0:
            return 0.0 if self.max_abs_diff == 0 else math.inf
        return self.max_abs_diff / self.scale


def batch(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The fixed inputs and integer labels for ``name``: the same on every backend."""
    import models

    spec = models.get_spec(name)
    x = np.random.default_rng(INPUT_SEED).standard_normal((BATCH, *spec.input_shape), dtype=np.float32)
    y = np.random.default_rng(LABEL_SEED).integers(0, spec.classes, size=BATCH)
    return x, y


def build(name: str):
    """``name`` as the comparison uses it: the registered default, ending in logits."""
    import keras

    import models

    keras.utils.set_random_seed(WEIGHT_SEED)
    return models.create(name, classifier_activation=None)


def train_step_loss(model, x: np.ndarray, y: np.ndarray, *, jit: bool = False) -> float:
    """The loss of one ``train_on_batch``: SGD(0.01, momentum 0.9), sparse cross-entropy on the logits."""
    import keras

    model.compile(
        optimizer=keras.optimizers.SGD(LEARNING_RATE, momentum=MOMENTUM),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit,
        run_eagerly=not jit,
    )
    return float(model.train_on_batch(x, y, return_dict=True)["loss"])


def write_references(names: Iterable[str], folder: str | os.PathLike) -> dict[str, Reference]:
    """Build each model on this process's backend (TensorFlow) and write ``<folder>/<name>.npz``.

    The file holds the model's name, its weights (``model.get_weights()`` in order, as ``w0000``...),
    the batch ``x``, the labels ``y`` and ``reference = model(x, training=False)``. The model then
    takes one training step here too (eagerly: for one step of a batch of 2, tracing costs more than
    it saves), whose loss is returned; the weights are saved before it.
    """
    import keras

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    refs = {}
    for name in names:
        start = time.perf_counter()
        model = build(name)
        x, y = batch(name)
        reference = keras.ops.convert_to_numpy(model(x, training=False))
        weights = {f"w{i:04d}": w for i, w in enumerate(model.get_weights())}
        path = folder / f"{name}.npz"
        np.savez(path, name=name, x=x, y=y, reference=reference, **weights)
        loss = train_step_loss(model, x, y)
        refs[name] = Reference(name, path, loss, time.perf_counter() - start)
        del model
    return refs


def cases(folder: str | os.PathLike) -> list[Path]:
    """The reference files in ``folder``, in the registry's order (models of a family together)."""
    import models

    order = {name: i for i, name in enumerate(models.list_models())}

    def key(path: Path) -> tuple[int, str]:
        with np.load(path) as data:
            return order.get(str(data["name"]), len(order)), path.name

    return sorted(Path(folder).glob("*.npz"), key=key)


def _replay(path: Path, *, jit: bool) -> tuple[np.ndarray, float]:
    """In the child: the logits and the one-step loss of the case in ``path`` on this backend."""
    import keras

    with np.load(path) as data:
        name, x, y = str(data["name"]), data["x"], data["y"]
        weights = [data[k] for k in sorted(k for k in data.files if k.startswith("w"))]
    model = build(name)
    model.set_weights(weights)
    if jit:
        outputs = model.predict_on_batch(x)
    else:
        outputs = keras.ops.convert_to_numpy(model(x, training=False))
    return np.asarray(outputs, np.float32), train_step_loss(model, x, y, jit=jit)


def replay_all(backend: str, folder: str | os.PathLike, *, jit: bool = False, forget: bool = False) -> None:
    """The child's work: each ``<folder>/<case>.npz`` replayed into ``<folder>/<backend>/<case>.npz``.

    A case that fails records its traceback in ``error`` and the next one goes on, so one broken
    model is reported by name instead of hiding the others. ``forget``: each case's state and compiled
    functions are dropped before the next (the eleven large models on jax, 2026-12-07: peak RSS 6.7 GB
    instead of 10.4 GB, in 421 s instead of 203 s).
    """
    import keras

    if keras.backend.backend() != backend:
        raise SystemExit(f"asked for backend {backend!r} but Keras runs {keras.backend.backend()!r}: set KERAS_BACKEND")
    keras.config.set_floatx("float32")
    keras.config.set_dtype_policy("float32")
    out = Path(folder) / backend
    out.mkdir(exist_ok=True)
    for path in cases(folder):
        start = time.perf_counter()
        try:
            outputs, loss = _replay(path, jit=jit)
            error = ""
        except Exception:
            outputs, loss, error = np.zeros(0, np.float32), math.nan, traceback.format_exc()
        seconds = time.perf_counter() - start
        np.savez(out / path.name, outputs=outputs, loss=loss, seconds=seconds, error=error)
        print(f"{backend} {path.stem}: {seconds:.1f} s{' ERROR' if error else ''}", file=sys.stderr, flush=True)
        if forget:
            _forget()


def _forget() -> None:
    """What a replayed case left behind, dropped before the next: Keras's global state and, on jax, the
    compiled functions it caches (which the next model would reuse: memory for time)."""
    import gc

    import keras

    keras.backend.clear_session()
    if keras.backend.backend() == "jax":
        import jax

        jax.clear_caches()
    gc.collect()


def run_backend(
    backend: str, folder: str | os.PathLike, *, jit: bool = False, forget: bool = False, timeout: float = 3600
) -> dict[str, Result]:
    """Replay every case in ``folder`` on ``backend`` in a child process (``forget``: as ``replay_all``);
    compare with TensorFlow.

    Returns a Result per case (keyed by file stem). A child that fails as a whole (import error,
    wrong backend) raises RuntimeError with its stderr; a case it left no result for gets the
    child's stderr as its error.
    """
    folder = Path(folder)
    root = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "KERAS_BACKEND": backend,
        "JAX_PLATFORMS": "cpu",
        "CUDA_VISIBLE_DEVICES": "",  # fp32 on the CPU: no GPU kernels (or TF32) in the comparison
        "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} {CHILD_XLA_FLAGS}".strip(),
        "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
    }
    command = [sys.executable, "-m", "models.parity", "--backend", backend, "--dir", str(folder)]
    proc = subprocess.run(
        command + (["--jit"] if jit else []) + (["--forget"] if forget else []),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=root,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the {backend} child exited with {proc.returncode}:\n{proc.stderr[-5000:]}")
    results = {}
    for path in cases(folder):
        key = path.stem
        result_path = folder / backend / path.name
        if not result_path.exists():
            error = f"no result from the {backend} child:\n{proc.stderr[-5000:]}"
            results[key] = Result(key, backend, math.nan, math.nan, math.nan, math.nan, error)
            continue
        with np.load(path) as ref, np.load(result_path) as res:
            reference, outputs, error = ref["reference"], res["outputs"], str(res["error"])
            if not error and outputs.shape != reference.shape:
                error = f"outputs of shape {outputs.shape}, TensorFlow's {reference.shape}"
            diff = math.nan if error else float(np.max(np.abs(outputs.astype(np.float64) - reference)))
            scale = float(np.max(np.abs(reference)))
            results[key] = Result(key, backend, diff, scale, float(res["loss"]), float(res["seconds"]), error)
    return results


HEADER = (
    "| model | backend | max \\|diff\\| | max \\|logit\\| | relative | tolerance "
    "| train-step loss | TensorFlow loss | seconds (TF / backend) |"
)


def table(names: Iterable[str] | None = None, *, jit: bool = False) -> str:
    """The Markdown parity table: every model (or those in ``names``) on every installed backend,
    against TensorFlow. An empty ``names`` is a ValueError, not every model: a glob that matched
    nothing must not start a run of all of them."""
    import models

    names = list(models.list_models() if names is None else names)
    if not names:
        raise ValueError("no models to compare")
    with tempfile.TemporaryDirectory(prefix="parity-") as folder:
        refs = write_references(names, folder)
        runs = {backend: run_backend(backend, folder, jit=jit) for backend in other_backends()}
    lines = [HEADER, "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [row(name, backend, results[name], refs[name]) for name in names for backend, results in runs.items()]
    if "torch" not in runs:
        lines.append(f"\ntorch: not compared, {TORCH_MISSING}.")
    return "\n".join(lines)


def row(name: str, backend: str, r: Result, ref: Reference) -> str:
    """One line of the table, as many cells as ``HEADER``: an error takes the three figures' cells."""
    if r.error:
        figures = f"error: {r.error.strip().splitlines()[-1]} | |"
    else:
        figures = f"{r.max_abs_diff:.2e} | {r.scale:.2e} | {r.relative:.1e}"
    return (
        f"| {name} | {backend} | {figures} | {tolerance(name):.0e} | {r.loss:.4f} | {ref.loss:.4f} "
        f"| {ref.seconds:.1f} / {r.seconds:.1f} |"
    )


def selected(globs: str) -> list[str]:
    """The registered models that ``--models`` names (comma-separated globs); a glob that matches
    none is a one-line ValueError naming it and the valid names."""
    from models.registry import UnknownModelError, select

    try:
        return select(globs)
    except UnknownModelError as e:
        raise ValueError(f"--models: {e.args[0]}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.parity", description=__doc__.splitlines()[0])
    parser.add_argument("--table", action="store_true", help="print the Markdown parity table (TensorFlow process)")
    parser.add_argument("--models", default="*", help="with --table: comma-separated globs (default: all)")
    parser.add_argument("--backend", help="child: replay the references in --dir on this backend")
    parser.add_argument("--dir", help="child: the folder of reference .npz files")
    parser.add_argument("--jit", action="store_true", help="compiled forward pass and train step instead of eager")
    parser.add_argument(
        "--forget", action="store_true", help="child: drop each case's state and compiled functions (less memory)"
    )
    args = parser.parse_args(argv)
    if args.backend:
        if not args.dir:
            parser.error("--backend needs --dir")
        replay_all(args.backend, args.dir, jit=args.jit, forget=args.forget)
        return 0
    if args.table:
        try:
            names = selected(args.models)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(table(names, jit=args.jit))
        return 0
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
