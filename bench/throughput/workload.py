"""What a throughput benchmark runs: one registered model's compiled train or inference step.

The step is the one ``model.fit`` / ``model.predict`` run: ``model.compile`` then Keras's own
``train_function`` / ``predict_function`` (forward, loss, backward and optimizer update for
training), on the backend Keras runs on (``bench.backends``: each backend calls it its own way).
Synthetic batches are placed on the devices once, so the step measures the model and not the
input; ``--data real`` (tensorflow) feeds it from a tf.data pipeline instead
(``bench.throughput.real_input``), through the distributed iterator ``fit`` uses.

The device's own figures (matmul reference, peak memory, out-of-memory) are ``bench.throughput.hardware``'s.
"""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Callable
from typing import Any

MODES = ("train", "infer")
DATA = ("synthetic", "real")
# Training costs about three forward passes (forward, backward w.r.t. activations and w.r.t.
# weights); one multiply-add is two FLOPs.
FLOPS_PER_MAC = {"train": 6, "infer": 2}


@dataclasses.dataclass(frozen=True)
class Case:
    """One benchmark: a model in a mode at a global batch size, precision, compilation and input, on a Keras backend.

    ``compile`` is ``--xla`` on tensorflow and jax and ``--compile`` on torch (torch.compile): on, off
    or auto (Keras's own choice)."""

    model: str
    mode: str
    batch_size: int
    precision: str = "fp32"
    compile: str = "off"
    data: str = "synthetic"
    backend: str = "tensorflow"

    @property
    def compile_label(self) -> str:
        """``xla_on`` / ``compile_on``: the compilation setting under the flag that chose it."""
        return f"{'compile' if self.backend == 'torch' else 'xla'}_{self.compile}"

    @property
    def id(self) -> str:
        """The benchmark's stable name (pytest id, baseline key suffix); it names the backend."""
        return f"{self.model}-{self.mode}-bs{self.batch_size}-{self.precision}-{self.compile_label}-{self.data}-{self.backend}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Case:
        """A case from ``to_dict``'s output, or from a result file written before the backend axis
        (``xla`` for ``compile``; tensorflow)."""
        d = dict(d)
        if "xla" in d:
            d.setdefault("compile", d.pop("xla"))
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in fields})


def result_id(record: dict, fallback: str | None = None) -> str | None:
    """The benchmark id of one recorded result (a benchmark's ``extra_info`` or an ``errors`` entry):
    its case's id where it recorded a case, so that files written before the backend axis read as
    tensorflow's; else the id it recorded, else ``fallback``."""
    case = record.get("case")
    if isinstance(case, dict) and case:
        try:
            return Case.from_dict(case).id
        except TypeError:  # a field missing: not a case this harness wrote
            pass
    return record.get("id") or fallback


@dataclasses.dataclass
class Workload:
    """A compiled step ready to time: ``step()`` runs one, ``sync(out)`` reads its output back."""

    case: Case
    model: Any
    step: Callable[[], Any]
    sync: Callable[[Any], Any]
    images_per_step: int
    replicas: int
    macs_per_image: int | None
    synthetic_step: Callable[[], Any] | None = None  # for --data real: the same model on resident batches


def build(
    case: Case,
    placement,
    *,
    jit_compile,
    seed: int = 0,
    data_options: dict | None = None,
    model_fn: Callable[[], Any] | None = None,
) -> Workload:
    """Build and compile ``case``'s model on ``placement`` (a ``bench.backends.Placement`` of the
    backend Keras runs on; the precision policy must already be set). The first call of
    ``step()`` traces and compiles; time it apart. ``model_fn`` builds another network in place
    of the registered one (same input shape and classes), e.g. a keras.applications model to
    compare with."""
    import keras
    import numpy as np

    import models
    from bench.backends import load
    from bench.errors import UsageError
    from models.flops import count_macs

    backend = load(placement.backend)
    if case.batch_size < 1 or case.batch_size % placement.replicas:
        raise UsageError(
            f"--batch-size {case.batch_size} must be a positive multiple of the {placement.replicas} replicas"
        )
    spec = models.get_spec(case.model)
    with placement.scope():
        model = model_fn() if model_fn else models.create(case.model)
        model.compile(
            optimizer=keras.optimizers.SGD(learning_rate=0.01, momentum=0.9),
            loss=keras.losses.SparseCategoricalCrossentropy(),
            jit_compile=jit_compile,
        )
    macs = int(count_macs(model))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((case.batch_size, *spec.input_shape), dtype=np.float32)
    y = rng.integers(0, spec.classes, size=(case.batch_size,), dtype=np.int64)
    step, sync = backend.resident_step(case.mode, model, placement, x, y)
    real_synthetic = None
    if case.data == "real":
        real_synthetic = step
        step = _real_step(case, model, placement.strategy, spec.input_shape, seed, data_options or {})
    return Workload(case, model, step, sync, case.batch_size, placement.replicas, macs, real_synthetic)


def _real_step(case: Case, model, strategy, input_shape, seed: int, data_options: dict):
    """One step fed from the JPEG pipeline through the distributed iterator, as fit and predict take it
    (tensorflow: the plan refuses ``--data real`` on other backends)."""
    from bench.throughput.real_input import real_dataset

    ds = real_dataset(input_shape, case.batch_size, seed=seed, **data_options)
    iterator = iter(strategy.experimental_distribute_dataset(ds))
    if case.mode == "train":
        return lambda: model.train_function(iterator)  # fit's own path through the iterator
    return lambda: model.predict_function([next(iterator)])  # predict's


def release(workload: Workload | None) -> None:
    """Drop a workload's model and Keras's global state so the next benchmark starts clean."""
    import keras

    if workload is not None:
        workload.model = workload.step = workload.synthetic_step = None
    keras.backend.clear_session()
    gc.collect()
