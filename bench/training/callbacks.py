"""The harness's training callback: the learning rate by budget fraction, the budget and NaN stops,
progress with an ETA, and the per-epoch curve, persisted with the time spent (``State``) so that a
resumed run carries on where it stopped; the checkpoint (``Backup``) and the data streams
(``ResumeData``) that make a resumed run the uninterrupted one. Imports Keras: ``bench.training.loop``
imports it only to train.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import keras

from bench.errors import UsageError, first_line
from bench.io import read_json, write_json
from bench.stats import finite
from bench.training import budget as budget_mod

FRESH = "rerun with --fresh to start over"


class State:
    """What survives a restart besides the weights: the curve so far, the time already spent, and
    the options that change the numbers (``identity``, flag -> value). A resume with other values
    is refused: its result would be neither run. ``read=False`` starts afresh whatever is there,
    ``write=False`` never saves (a job's workers other than the chief)."""

    def __init__(self, path: Path, identity: dict | None = None, *, read: bool = True, write: bool = True):
        self.path = path
        self.curve: list[dict] = []
        self.elapsed_s = 0.0
        self.processes = 0
        self.identity = identity
        self.write = write
        if read and path.is_file():
            try:
                doc = read_json(path, what="training state")
                self.curve = list(doc.get("curve", []))
                self.elapsed_s = float(doc.get("elapsed_s", 0.0))
                self.processes = int(doc.get("processes", 0))
                saved = doc.get("identity")
            except (UsageError, AttributeError, TypeError, ValueError) as e:
                raise UsageError(f"training state {str(path)!r} is unreadable ({e}); {FRESH}") from None
            for flag, value in (identity or {}).items():
                if isinstance(saved, dict) and flag in saved and saved[flag] != value:
                    raise UsageError(
                        f"the checkpoint in {str(path.parent)!r} was trained with {flag} {saved[flag]}, not {value}; "
                        f"resume with the same options, or {FRESH}"
                    )

    def save(self) -> None:
        if not self.write:
            return
        write_json(
            self.path,
            {"curve": self.curve, "elapsed_s": self.elapsed_s, "processes": self.processes, "identity": self.identity},
        )


class Backup(keras.callbacks.BackupAndRestore):
    """Keras's epoch checkpoints, two deep (a torn last one falls back to the one before), whose
    unreadable checkpoint is one line that suggests ``--fresh`` rather than h5py's traceback. A job's
    workers other than the chief restore from the chief's checkpoint (``read``) but write theirs to
    ``write_dir``, a directory of their own that nothing reads, as TensorFlow's multi-worker tutorial
    does: saving is a collective on jax (every worker must take part), and two writers of one file
    would tear it."""

    def __init__(self, backup_dir: Path, *, read: bool = True, write_dir: Path | None = None):
        super().__init__(str(backup_dir), save_freq="epoch", double_checkpoint=True, delete_checkpoint=False)
        self.read, self.write_dir = read, write_dir

    def _save_model(self):
        if self.write_dir is None:
            return super()._save_model()
        where = self._where()
        self._point_at(str(self.write_dir))
        try:
            super()._save_model()
        finally:
            self._point_at(*where)

    def _where(self) -> tuple:
        return (
            self.backup_dir,
            self._weights_path,
            self._training_metadata_path,
            self._prev_weights_path,
            self._prev_training_metadata_path,
        )

    def _point_at(self, backup_dir, *paths):
        """Keras's paths (as ``BackupAndRestore.__init__`` makes them) under ``backup_dir``, or ``paths``."""
        if not paths:
            weights, metadata = f"{backup_dir}/latest.weights.h5", f"{backup_dir}/training_metadata.json"
            paths = (weights, metadata, f"{weights}.bkp", f"{metadata}.bkp")
        self.backup_dir = backup_dir
        (
            self._weights_path,
            self._training_metadata_path,
            self._prev_weights_path,
            self._prev_training_metadata_path,
        ) = paths

    def on_train_begin(self, logs=None):
        if not self.read:
            return
        try:
            super().on_train_begin(logs)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise UsageError(
                f"the checkpoint in {self.backup_dir!r} is unreadable ({first_line(e)}); {FRESH}"
            ) from None


class SameStatistics(keras.callbacks.Callback):
    """At each epoch's end, before ``Backup`` writes the checkpoint, ``sync(model)`` makes the
    workers' non-trainable statistics the same (``sync_statistics``): batch norm's moving averages
    are per replica otherwise, and every worker must hold, and the chief save, the job's weights."""

    def __init__(self, sync: Callable[[object], None]):
        super().__init__()
        self.sync = sync

    def on_epoch_end(self, epoch, logs=None):
        self.sync(self.model)


class SameStart(keras.callbacks.Callback):
    """After ``Backup`` has restored: the job's workers must resume from the same epoch, or the first
    that finishes its epochs would leave the others waiting in a collective. ``gather(value)`` returns
    every worker's value (``gather_replicas``); they differ when a worker cannot read the chief's
    checkpoint, and every worker then stops with one line."""

    def __init__(self, gather: Callable[[float], list[float]], out: str):
        super().__init__()
        self.gather, self.out = gather, out

    def on_train_begin(self, logs=None):
        mine = int(getattr(self.model, "_initial_epoch", None) or 0)  # what Backup restored (fit reads it next)
        starts = [int(v) for v in self.gather(mine)]
        if len(set(starts)) > 1:
            raise UsageError(
                f"the workers would resume from different epochs ({', '.join(f'worker {i}: {e}' for i, e in enumerate(starts))}): "
                f"every worker reads the chief's checkpoint under --out {self.out!r}, which must be storage they all "
                f"see (NFS, a shared disk); or {FRESH}"
            )


class ResumeData(keras.callbacks.Callback):
    """At the first epoch this process runs, brings the training pipeline's shuffle order and
    augmentation stream to that epoch (``bench.training.data.skip_epochs``): without it a resumed
    epoch would replay epoch 1's data. Fit makes the epoch's iterator after ``on_epoch_begin``."""

    def __init__(self, train):
        super().__init__()
        self.train = train
        self._started = False

    def on_epoch_begin(self, epoch, logs=None):
        if not self._started:
            self._started = True
            from bench.training.data import skip_epochs

            skip_epochs(self.train, epoch)


class Trainer(keras.callbacks.Callback):
    """Sets each step's rate from the schedule at the budget's fraction; stops at the budget or on a
    NaN/Inf loss (``failure``); logs progress with an ETA; appends each epoch to ``state.curve``.
    Times the steps: ``first_step_s`` (tracing and compilation included) and ``steady_step_s`` (the rest)."""

    def __init__(
        self,
        plan: budget_mod.BudgetPlan,
        schedule: dict,
        state: State,
        *,
        clock: Callable[[], float],
        label: str,
        log: Callable[[str], None],
    ):
        super().__init__()
        self.plan, self.schedule, self.state, self.clock, self.label, self.log = (
            plan,
            schedule,
            state,
            clock,
            label,
            log,
        )
        self.progress = budget_mod.Progress(plan, clock=clock, elapsed_before=state.elapsed_s)
        self.failure: str | None = None
        self.stopped_by: str | None = None
        self.steps_run = 0  # steps in this process
        self.train_time_s = 0.0  # time inside training steps in this process
        self.first_epoch: int | None = None
        self._epoch = 0
        self._epoch_start = 0.0
        self._last_batch_end = 0.0
        self._every = max(1, plan.steps_per_epoch // 5)
        self._batch_start = 0.0
        self.first_step_s: float | None = None  # includes tracing/compilation
        self.steady_step_s = 0.0  # every later step

    def global_step(self, batch: int) -> int:
        return self._epoch * self.plan.steps_per_epoch + batch

    def on_train_begin(self, logs=None):
        self.progress.start()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        if self.first_epoch is None:
            self.first_epoch = epoch
            # a killed run may have saved its curve after the weights' last checkpoint
            self.state.curve = [row for row in self.state.curve if row["epoch"] <= epoch]
            if epoch:
                self.log(
                    f"[{self.label}] resumed from the checkpoint after epoch {epoch} "
                    f"({self.state.elapsed_s:.0f} s already spent)"
                )
        self._epoch_start = self._last_batch_end = self.clock()

    def on_train_batch_begin(self, batch, logs=None):
        rate = budget_mod.lr_at(self.schedule, self.progress.fraction(self.global_step(batch)))
        self.model.optimizer.learning_rate = rate
        self._batch_start = self.clock()

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        value = None if loss is None else float(loss)  # reading it back waits for the step
        now = self.clock()
        if self.first_step_s is None:
            self.first_step_s = now - self._batch_start
        else:
            self.steady_step_s += now - self._batch_start
        self._last_batch_end = now
        self.steps_run += 1
        step = self.global_step(batch) + 1
        if value is not None and finite(value) is None:
            self.failure = f"loss became {value} at epoch {self._epoch + 1}, step {step}"
            self.log(f"[{self.label}] {self.failure}: stopping")
            self.model.stop_training = True
            return
        if self.progress.done(step):
            self.stopped_by = "deadline" if self.plan.deadline_s is not None else "steps"
            self.model.stop_training = True
        if (batch + 1) % self._every == 0 or self.model.stop_training:
            self._report(step, value)

    def _report(self, step: int, loss: float | None):
        plan, elapsed = self.plan, self.progress.elapsed()
        frac = self.progress.fraction(step)
        eta = (
            (plan.deadline_s - elapsed)
            if plan.deadline_s
            else (elapsed - self.progress.elapsed_before) / max(self.steps_run, 1) * (plan.total_steps - step)
        )
        total = f"/{plan.total_steps}" if plan.total_steps else ""
        self.log(
            f"[{self.label}] epoch {self._epoch + 1}/{plan.epochs if plan.total_steps else '?'} step {step}{total} "
            f"({100 * frac:.0f}%) loss {loss if loss is None else f'{loss:.4f}'} lr {lr(self.model.optimizer):.4g} "
            f"elapsed {hms(elapsed)} ETA {hms(max(eta, 0.0))}"
        )

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        epoch_train_s = self._last_batch_end - self._epoch_start
        self.train_time_s += epoch_train_s
        row = {
            "epoch": epoch + 1,
            "lr": lr(self.model.optimizer),
            "train_s": round(epoch_train_s, 3),
            "elapsed_s": round(self.progress.elapsed(), 3),
        }
        for k, v in logs.items():
            if k != "learning_rate":
                row[k] = finite(v)
        self.state.curve = [r for r in self.state.curve if r["epoch"] <= epoch] + [row]
        self.state.elapsed_s = self.progress.elapsed()
        if self.failure is None:
            self.state.save()
        extra = "" if row.get("val_accuracy") is None else f" val_acc {100 * row['val_accuracy']:.2f}%"
        self.log(f"[{self.label}] epoch {epoch + 1} done in {hms(epoch_train_s)}: loss {row.get('loss')}{extra}")


def lr(optimizer) -> float:
    """The optimizer's current rate as a float (a plain, or a distributed, variable)."""
    value = optimizer.learning_rate
    return float(value.numpy() if hasattr(value, "numpy") else value)


def hms(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
