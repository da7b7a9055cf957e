"""The harness's training callback: the learning rate by budget fraction, the budget and NaN stops,
progress with an ETA, and the per-epoch curve, persisted with the time spent (``State``) so that a
resumed run carries on where it stopped; the checkpoint (``Backup``) and the data streams
(``ResumeData``) that make a resumed run the uninterrupted one. Imports Keras: ``bench.training.loop``
imports it only to train.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import keras

from bench.errors import UsageError, first_line
from bench.io import read_json, write_json
from bench.results import NON_FINITE_STOP
from bench.stats import finite
from bench.training import budget as budget_mod

FRESH = "rerun with --fresh to start over"


class State:
    """What survives a restart besides the weights: the curve so far, the time already spent, how
    training stopped (``stopped_by``), what its throughput was measured over (``steady_steps``,
    ``steady_s``, ``first_step_s``: a run whose training ended in an earlier process reports that
    process's), and the options that change the numbers (``identity``, flag -> value). A resume with
    other values is refused: its result would be neither run. ``read=False`` starts afresh whatever
    is there, ``write=False`` never saves (a job's workers other than the chief)."""

    def __init__(self, path: Path, identity: dict | None = None, *, read: bool = True, write: bool = True):
        self.path = path
        self.curve: list[dict] = []
        self.elapsed_s = 0.0
        self.processes = 0
        self.stopped_by: str | None = None
        self.steady_steps = 0  # steps after each process's first, over every process
        self.steady_s = 0.0  # their time
        # the first step (tracing and compilation included) of the last process that trained
        self.first_step_s: float | None = None
        self.identity = identity
        self.write = write
        if read and path.is_file():
            try:
                doc = read_json(path, what="training state")
            except UsageError as e:  # it names the file and what is wrong with it
                raise UsageError(f"{e}; {FRESH}") from None
            try:
                saved = self._read(doc)
            except (AttributeError, KeyError, TypeError, ValueError) as e:
                raise UsageError(f"training state {str(path)!r} is unreadable ({first_line(e)}); {FRESH}") from None
            for flag, value in (identity or {}).items():
                if isinstance(saved, dict) and flag in saved and saved[flag] != value:
                    raise UsageError(
                        f"the checkpoint in {str(path.parent)!r} was trained with {flag} {saved[flag]}, not {value}; "
                        f"resume with the same options, or {FRESH}"
                    )

    def _read(self, doc: dict):
        """Takes ``doc``'s fields, checked (a wrong type is a ``TypeError``/``ValueError``); returns its identity."""
        curve = doc.get("curve", [])
        if not isinstance(curve, list) or not all(isinstance(r, dict) and _count(r.get("epoch")) > 0 for r in curve):
            raise ValueError("its curve is not a list of epochs")
        self.curve = curve
        self.elapsed_s = _seconds(doc.get("elapsed_s", 0.0), "elapsed_s")
        self.processes = _count(doc.get("processes", 0))
        self.stopped_by = doc.get("stopped_by")
        if self.stopped_by is not None and not isinstance(self.stopped_by, str):
            raise ValueError(f"stopped_by is {self.stopped_by!r}")
        self.steady_steps = _count(doc.get("steady_steps", 0))
        self.steady_s = _seconds(doc.get("steady_s", 0.0), "steady_s")
        first = doc.get("first_step_s")
        self.first_step_s = None if first is None else _seconds(first, "first_step_s")
        identity = doc.get("identity")
        if identity is not None and not isinstance(identity, dict):
            raise ValueError(f"identity is {identity!r}")
        return identity

    def save(self) -> None:
        if not self.write:
            return
        write_json(
            self.path,
            {
                "curve": self.curve,
                "elapsed_s": self.elapsed_s,
                "processes": self.processes,
                "stopped_by": self.stopped_by,
                "steady_steps": self.steady_steps,
                "steady_s": self.steady_s,
                "first_step_s": self.first_step_s,
                "identity": self.identity,
            },
        )


def _count(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{value!r} is not a count")
    return value


def _seconds(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or finite(value) is None or value < 0:
        raise ValueError(f"{name} is {value!r}")
    return float(value)


class Backup(keras.callbacks.BackupAndRestore):
    """Keras's epoch checkpoints, two deep (a torn last one falls back to the one before), whose
    unreadable checkpoint is one line that suggests ``--fresh`` rather than h5py's traceback. A job's
    workers other than the chief restore from the chief's checkpoint (``read``) but write theirs to
    ``write_dir``, a directory of their own that nothing reads, as TensorFlow's multi-worker tutorial
    does: saving is a collective on jax (every worker must take part), and two writers of one file
    would tear it."""

    def __init__(
        self, backup_dir: Path, *, read: bool = True, write_dir: Path | None = None, state: State | None = None
    ):
        super().__init__(str(backup_dir), save_freq="epoch", double_checkpoint=True, delete_checkpoint=False)
        self.read, self.write_dir, self.state = read, write_dir, state

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
            if not self._restore_the_states_epoch():
                super().on_train_begin(logs)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise UsageError(
                f"the checkpoint in {self.backup_dir!r} is unreadable ({first_line(e)}); {FRESH}"
            ) from None

    def _restore_the_states_epoch(self) -> bool:
        """A kill after an epoch's weights and before ``Trainer`` saved its state leaves the last
        checkpoint an epoch ahead of the state, whose curve lacks that epoch: restore the checkpoint
        before it (Keras keeps it beside the last, and reads it for a torn last one), or none for
        the first epoch, and that epoch runs again. Reads a copy, never moves the files: a job's
        workers all read the chief's. True when it restored (or chose to start afresh)."""
        if self.state is None:
            return False
        done = max((row["epoch"] for row in self.state.curve), default=0)
        last = _epoch_in(self._training_metadata_path)
        if last is None or last <= done:
            return False
        before = _epoch_in(self._prev_training_metadata_path)
        if before is None and done == 0:
            return True  # the first epoch's weights only: start at the beginning
        if before != done:
            raise UsageError(
                f"the checkpoint in {self.backup_dir!r} is at epoch {last} and its training state at epoch {done}; {FRESH}"
            )
        where = self._where()
        with tempfile.TemporaryDirectory(prefix="cnn-bench-checkpoint-") as tmp:
            weights = str(Path(tmp) / "before.weights.h5")  # Keras reads weights by this suffix only
            shutil.copyfile(self._prev_weights_path, weights)
            self._point_at(self.backup_dir, weights, self._prev_training_metadata_path, *where[3:])
            try:
                self._load_model()
            finally:
                self._point_at(*where)
        return True


def _epoch_in(metadata: str) -> int | None:
    """The epoch a Keras checkpoint's training metadata names (None without the file)."""
    path = Path(metadata)
    return int(json.loads(path.read_text())["epoch"]) if path.is_file() else None


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
        mine = restored_epoch(self.model)  # what Backup restored (fit reads it next)
        starts = [int(v) for v in self.gather(mine)]
        if len(set(starts)) > 1:
            raise UsageError(
                f"the workers would resume from different epochs ({', '.join(f'worker {i}: {e}' for i, e in enumerate(starts))}): "
                f"every worker reads the chief's checkpoint under --out {self.out!r}, which must be storage they all "
                f"see (NFS, a shared disk); or {FRESH}"
            )


class ResumeData(keras.callbacks.Callback):
    """Once ``Backup`` has restored the checkpoint (after it in the callbacks), brings the training
    pipeline's shuffle order and augmentation stream to the epoch this process resumes from
    (``bench.training.data.skip_epochs``): without it a resumed epoch would replay epoch 1's data,
    and a run whose training had ended before it stopped would recompute the precise-BN statistics
    over other batches than the uninterrupted run. Fit makes its first iterator after
    ``on_train_begin`` (at the first epoch's start; none when no epoch is left)."""

    def __init__(self, train):
        super().__init__()
        self.train = train

    def on_train_begin(self, logs=None):
        from bench.training.data import skip_epochs

        skip_epochs(self.train, restored_epoch(self.model))


def restored_epoch(model) -> int:
    """The epochs done before this process: where ``Backup`` restored the checkpoint (fit starts there)."""
    return int(getattr(model, "_initial_epoch", None) or 0)


class Trainer(keras.callbacks.Callback):
    """Sets each step's rate from the schedule at the budget's fraction (with ``--steps-per-execution N``,
    each execution's: the rate of its first step holds for its N steps); stops at the budget or on a
    NaN/Inf loss (``failure``); logs progress with an ETA; appends each epoch to ``state.curve``.
    Times the steps: ``first_step_s`` (tracing and compilation included) and ``steady_step_s`` (the rest).
    It comes after ``Backup`` in the callbacks: it starts from the epoch Backup restored."""

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
        self._begin = 0  # the first batch of the execution running (--steps-per-execution: several)
        self._first_steps = 0  # the steps of this process's first execution, timed by first_step_s
        self.first_step_s: float | None = None  # includes tracing/compilation
        self.steady_step_s = 0.0  # every later step
        self._steady_before = (state.steady_steps, state.steady_s)  # earlier processes'

    def global_step(self, batch: int) -> int:
        return self._epoch * self.plan.steps_per_epoch + batch

    def on_train_begin(self, logs=None):
        self.progress.start()
        # where Backup restored the weights; every epoch when training ended in an earlier process
        epoch = self.first_epoch = restored_epoch(self.model)
        # the state may hold epochs after the restored weights' (Keras falls back from a torn last checkpoint)
        self.state.curve = [row for row in self.state.curve if row["epoch"] <= epoch]
        if epoch:
            self.log(
                f"[{self.label}] resumed from the checkpoint after epoch {epoch} "
                f"({self.state.elapsed_s:.0f} s already spent)"
            )

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_start = self._last_batch_end = self.clock()

    def on_train_batch_begin(self, batch, logs=None):
        # with --steps-per-execution N, once for each execution of N steps (the rate of its first step)
        rate = budget_mod.lr_at(self.schedule, self.progress.fraction(self.global_step(batch)))
        self.model.optimizer.learning_rate = rate
        self._batch_start = self.clock()
        self._begin = batch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        value = None if loss is None else float(loss)  # reading it back waits for the step
        now = self.clock()
        steps = batch - self._begin + 1  # an execution's steps: the span of its batches
        if self.first_step_s is None:
            self.first_step_s, self._first_steps = now - self._batch_start, steps
        else:
            self.steady_step_s += now - self._batch_start
        self._last_batch_end = now
        self.steps_run += steps
        step = self.global_step(batch) + 1
        if value is not None and finite(value) is None:
            self.failure = f"loss became {value} at epoch {self._epoch + 1}, step {step}"
            self.stopped_by = NON_FINITE_STOP
            self.log(f"[{self.label}] {self.failure}: stopping")
            self.model.stop_training = True
            return
        if self.progress.done(step):
            self.stopped_by = stop_reason(self.plan)
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
        self.state.stopped_by = self.stopped_by
        self.state.steady_steps = self._steady_before[0] + self.steps_run - self._first_steps
        self.state.steady_s = self._steady_before[1] + self.steady_step_s
        if self.first_step_s is not None:
            self.state.first_step_s = self.first_step_s
        if self.failure is None:
            self.state.save()
        extra = "" if row.get("val_accuracy") is None else f" val_acc {100 * row['val_accuracy']:.2f}%"
        self.log(f"[{self.label}] epoch {epoch + 1} done in {hms(epoch_train_s)}: loss {row.get('loss')}{extra}")


def stop_reason(plan: budget_mod.BudgetPlan) -> str:
    """What ended a run that met its budget (``results.STOPPED_BY``): a minutes budget's deadline, a
    steps budget's steps, or the budget (an epochs budget, ``full``'s included: its last epoch)."""
    if plan.deadline_s is not None:
        return "deadline"
    return "steps" if plan.budget.kind == "steps" else "budget"


def lr(optimizer) -> float:
    """The optimizer's current rate as a float (a plain, or a distributed, variable)."""
    value = optimizer.learning_rate
    return float(value.numpy() if hasattr(value, "numpy") else value)


def hms(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
