"""``python -m bench train RECIPE --budget ... --seed S --device cpu|gpu|tpu``: one budgeted training run.

The recipe (``bench.recipes``) fixes model, data, augmentation, optimizer and the schedule in
fractions of the budget; ``--budget`` stretches or shrinks it (``epochs=N``, ``steps=N``,
``minutes=M``, ``full``). The run logs progress with an ETA and TensorBoard scalars, checkpoints
each epoch and resumes from the last checkpoint when the same command runs again after an
interruption, stops on a NaN or Inf loss (recording the failure), and evaluates on the whole test
split. The result JSON holds top-1, loss, the per-epoch curve, wall time, images/s, seed, the
resolved config and the environment; ``bench gate`` compares it with baselines.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Callable

from bench import budget as budget_mod
from bench import recipes as recipes_mod
from bench.errors import UsageError
from bench.io import finite_or_none, read_json, write_json

RESULT_KIND = "bench.train"
RESULT_SCHEMA = 1
DEFAULT_OUT = "results/train"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help=f"recipe name ({', '.join(sorted(recipes_mod.RECIPES))})")
    parser.add_argument("--budget", default="full", help="epochs=N | steps=N | minutes=M | full (default: the recipe's full budget)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="cpu | gpu | tpu (default: %(default)s)")
    parser.add_argument("--tpu", default=None, help="TPU name or address (default: $TPU_NAME or the TPU VM's own)")
    parser.add_argument("--cpu-replicas", type=int, default=None, metavar="N",
                        help="split the CPU into N logical devices and mirror over them (the multi-device path without GPUs)")
    parser.add_argument("--precision", default="fp32", help="fp32 | mixed_bf16 | mixed_fp16 (default: %(default)s)")
    parser.add_argument("--deterministic", choices=["recipe", "on", "off"], default="recipe",
                        help="op determinism (default: as the recipe says)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="directory for the result JSON, checkpoints and logs (default: %(default)s)")
    parser.add_argument("--data-dir", default=None, help="tfds data directory (default: $TFDS_DATA_DIR; gs:// paths work)")
    parser.add_argument("--manual-dir", default=None, help="directory holding the original dataset archives for offline tfds preparation")
    parser.add_argument("--archive", default=None, help="cifar10_jpeg archive (default: $CIFAR10_JPEG_ARCHIVE or ../shared/data/cifar10-jpeg.tar.gz)")
    parser.add_argument("--cache-dir", default=None, help="where cifar10_jpeg is extracted (default: $BENCH_CACHE_DIR or ~/.cache/cnn-bench)")
    parser.add_argument("--mock", type=int, default=None, metavar="N",
                        help="train on N tfds mock examples per split instead of the real data (results are named mock_<dataset>)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe field (schedule.base=0.01); the result is marked modified")
    parser.add_argument("--steps-per-execution", type=int, default=1, help="steps per compiled call (TPUs like 32+)")
    parser.add_argument("--eager", action="store_true", help="run eagerly, without tf.function (debugging; tests' few steps)")
    parser.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint and start over")
    parser.add_argument("--plot", action="store_true", help="also write the learning curve as a PNG next to the JSON")


# ---------------------------------------------------------------------------------------------
# Callbacks: schedule + budget, NaN guard, progress, per-epoch state


def _keras_callback_base():
    import keras

    return keras.callbacks.Callback


class _State:
    """What survives a restart besides the weights: the curve so far and the time already spent."""

    def __init__(self, path: Path):
        self.path = path
        self.curve: list[dict] = []
        self.elapsed_s = 0.0
        self.processes = 0
        if path.is_file():
            doc = read_json(path, what="training state")
            self.curve = list(doc.get("curve", []))
            self.elapsed_s = float(doc.get("elapsed_s", 0.0))
            self.processes = int(doc.get("processes", 0))

    def save(self) -> None:
        write_json(self.path, {"curve": self.curve, "elapsed_s": self.elapsed_s, "processes": self.processes})


def make_callbacks(plan: budget_mod.Plan, schedule: dict, state: _State, *, clock: Callable[[], float],
                   batch_size: int, label: str, log: Callable[[str], None]):
    """The harness's training callback: schedule by budget fraction, budget stop, NaN stop,
    progress with ETA, and the per-epoch curve (persisted for resume)."""
    Base = _keras_callback_base()

    class Trainer(Base):
        def __init__(self):
            super().__init__()
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
            return self._epoch * plan.steps_per_epoch + batch

        def on_train_begin(self, logs=None):
            self.progress.start()

        def on_epoch_begin(self, epoch, logs=None):
            self._epoch = epoch
            if self.first_epoch is None:
                self.first_epoch = epoch
                # a killed run may have saved its curve after the weights' last checkpoint
                state.curve = [row for row in state.curve if row["epoch"] <= epoch]
                if epoch:
                    log(f"[{label}] resumed from the checkpoint after epoch {epoch} ({state.elapsed_s:.0f} s already spent)")
            self._epoch_start = self._last_batch_end = clock()

        def on_train_batch_begin(self, batch, logs=None):
            lr = budget_mod.lr_at(schedule, self.progress.fraction(self.global_step(batch)))
            self.model.optimizer.learning_rate = lr
            self._batch_start = clock()

        def on_train_batch_end(self, batch, logs=None):
            loss = (logs or {}).get("loss")
            value = None if loss is None else float(loss)  # reading it back waits for the step
            now = clock()
            if self.first_step_s is None:
                self.first_step_s = now - self._batch_start
            else:
                self.steady_step_s += now - self._batch_start
            self._last_batch_end = now
            self.steps_run += 1
            step = self.global_step(batch) + 1
            if value is not None and not math.isfinite(value):
                self.failure = f"loss became {value} at epoch {self._epoch + 1}, step {step}"
                log(f"[{label}] {self.failure}: stopping")
                self.model.stop_training = True
                return
            if self.progress.done(step):
                self.stopped_by = "deadline" if plan.deadline_s is not None else "steps"
                self.model.stop_training = True
            if (batch + 1) % self._every == 0 or self.model.stop_training:
                self._report(step, value)

        def _report(self, step: int, loss: float | None):
            elapsed = self.progress.elapsed()
            frac = self.progress.fraction(step)
            eta = (plan.deadline_s - elapsed) if plan.deadline_s else (elapsed - self.progress.elapsed_before) / max(self.steps_run, 1) * (plan.total_steps - step)
            total = f"/{plan.total_steps}" if plan.total_steps else ""
            log(f"[{label}] epoch {self._epoch + 1}/{plan.epochs if plan.total_steps else '?'} step {step}{total} "
                f"({100 * frac:.0f}%) loss {loss if loss is None else f'{loss:.4f}'} lr {_lr(self.model.optimizer):.4g} "
                f"elapsed {_hms(elapsed)} ETA {_hms(max(eta, 0.0))}")

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            epoch_train_s = self._last_batch_end - self._epoch_start
            self.train_time_s += epoch_train_s
            row = {"epoch": epoch + 1, "lr": _lr(self.model.optimizer),
                   "train_s": round(epoch_train_s, 3), "elapsed_s": round(self.progress.elapsed(), 3)}
            for k, v in logs.items():
                if k != "learning_rate":
                    row[k] = finite_or_none(v)
            state.curve = [r for r in state.curve if r["epoch"] <= epoch] + [row]
            state.elapsed_s = self.progress.elapsed()
            if self.failure is None:
                state.save()
            extra = "" if "val_accuracy" not in row or row["val_accuracy"] is None else f" val_acc {100 * row['val_accuracy']:.2f}%"
            log(f"[{label}] epoch {epoch + 1} done in {_hms(epoch_train_s)}: loss {row.get('loss')}{extra}")

    return Trainer()


def _lr(optimizer) -> float:
    """The optimizer's current rate as a float (a plain, or a distributed, variable)."""
    value = optimizer.learning_rate
    return float(value.numpy() if hasattr(value, "numpy") else value)


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


# ---------------------------------------------------------------------------------------------
# The run


@dataclasses.dataclass
class Options:
    budget: str = "full"
    seed: int = 0
    device: str = "cpu"
    tpu: str | None = None
    precision: str = "fp32"
    deterministic: str = "recipe"
    out: str = DEFAULT_OUT
    data_dir: str | None = None
    manual_dir: str | None = None
    archive: str | None = None
    cache_dir: str | None = None
    mock: int | None = None
    overrides: tuple[str, ...] = ()
    steps_per_execution: int = 1
    fresh: bool = False
    plot: bool = False
    eager: bool = False
    cpu_replicas: int | None = None


def run_id(recipe: str, dataset: str, budget: budget_mod.Budget, device: str, seed: int, overrides) -> str:
    rid = f"{recipe}-{dataset}-{budget.kind}{budget.value:g}-{device}-seed{seed}"
    if overrides:
        rid += "-mod" + hashlib.sha256("\n".join(overrides).encode()).hexdigest()[:8]
    return rid


def train(recipe_name: str, opts: Options, *, clock: Callable[[], float] = time.monotonic,
          log: Callable[[str], None] | None = None, extra_callbacks=()) -> tuple[dict, Path]:
    """Run one recipe under a budget; returns (result document, path written)."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    recipe = recipes_mod.get(recipe_name)
    if opts.overrides:
        recipe = recipes_mod.with_overrides(recipe, list(opts.overrides))
    budget = budget_mod.Budget.parse(opts.budget, full=recipe.full())
    if opts.mock is not None and opts.mock < 1:
        raise UsageError(f"--mock {opts.mock} is invalid; expected a positive number of examples")
    dataset = f"mock_{recipe.dataset}" if opts.mock else recipe.dataset

    from bench import devices

    deterministic = recipe.deterministic if opts.deterministic == "recipe" else opts.deterministic == "on"
    if opts.cpu_replicas:
        if opts.device != "cpu":
            raise UsageError("--cpu-replicas applies to --device cpu only")
        devices.split_cpu(opts.cpu_replicas)
    strategy = devices.strategy_for(opts.device, tpu=opts.tpu)
    policy = devices.set_precision(opts.precision)
    devices.seed_everything(opts.seed, deterministic=deterministic)

    import keras
    import tensorflow as tf

    import models
    from bench import data
    from bench.environment import commit_info, machine_info

    out = Path(opts.out)
    rid = run_id(recipe.name, dataset, budget, opts.device, opts.seed, opts.overrides)
    ckpt_dir = out / ".checkpoints" / rid
    if opts.fresh and ckpt_dir.exists():
        shutil.rmtree(ckpt_dir)
    load_start = time.monotonic()
    pipes = data.pipelines(dataset, batch_size=recipe.batch_size, augment=recipe.augment,
                           normalization=recipe.normalization, seed=opts.seed, data_dir=opts.data_dir,
                           manual_dir=opts.manual_dir, archive=opts.archive, cache_dir=opts.cache_dir,
                           mock_examples=opts.mock)
    classes = pipes.info.classes
    plan = budget_mod.plan(budget, pipes.steps_per_epoch, max_epochs=_max_epochs(recipe, pipes.steps_per_epoch))

    def one_hot(x, y):
        return x, tf.one_hot(y, classes)

    train_ds = pipes.train.map(one_hot)
    val_ds = pipes.test.map(one_hot) if recipe.validate_each_epoch else None
    if plan.total_steps is not None and plan.total_steps < plan.epochs * plan.steps_per_epoch:
        train_ds = train_ds.repeat()  # a steps budget may end inside an epoch; steps_per_epoch bounds each

    with strategy.scope():
        model = models.create(recipe.model, input_shape=pipes.info.input_shape, classes=classes,
                              **recipe.model_overrides)
        opt_cfg = dict(recipe.optimizer)
        opt_name = opt_cfg.pop("name")
        first_lr = budget_mod.lr_at(recipe.schedule, 0.0)
        optimizer = (keras.optimizers.SGD if opt_name == "sgd" else keras.optimizers.Adam)(learning_rate=first_lr, **opt_cfg)
        model.compile(optimizer=optimizer,
                      loss=keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing),
                      metrics=["accuracy"], steps_per_execution=opts.steps_per_execution,
                      run_eagerly=opts.eager)

    state = _State(ckpt_dir / "state.json")
    state.processes += 1
    label = recipe.name
    trainer = make_callbacks(plan, recipe.schedule, state, clock=clock, batch_size=recipe.batch_size, label=label, log=log)
    callbacks = [
        keras.callbacks.BackupAndRestore(str(ckpt_dir / "backup"), save_freq="epoch", delete_checkpoint=False),
        trainer,
        *extra_callbacks,
    ]
    if _have_tensorboard():
        callbacks.append(keras.callbacks.TensorBoard(str(out / "tensorboard" / rid), write_graph=False,
                                                     update_freq="epoch", profile_batch=0))
    else:
        log(f"[{label}] TensorBoard logs skipped: the tensorboard package is not installed (pip install tensorboard)")
    log(f"[{label}] {dataset}, budget {budget} -> {plan.epochs} epoch(s) x {plan.steps_per_epoch} steps"
        f"{'' if plan.total_steps is None else f' = {plan.total_steps} steps'}"
        f"{'' if plan.deadline_s is None else f', deadline {plan.deadline_s:.0f} s'}, seed {opts.seed}, "
        f"device {opts.device}, {policy}, deterministic={deterministic}")
    load_avg_start = _loadavg()
    wall_start = time.monotonic()
    started = datetime.datetime.now(datetime.timezone.utc)
    model.fit(train_ds, epochs=plan.epochs, steps_per_epoch=plan.steps_per_epoch, validation_data=val_ds,
              callbacks=callbacks, verbose=0)
    fit_s = time.monotonic() - wall_start

    result = {
        "kind": RESULT_KIND, "schema": RESULT_SCHEMA,
        "recipe": recipe.name, "dataset": dataset, "budget": str(budget), "budget_requested": opts.budget,
        "device": opts.device, "device_class": devices.device_class(opts.device),
        "seed": opts.seed, "modified": list(opts.overrides),
        "status": "ok", "error": None,
        "top1": None, "loss": None, "top1_no_tta": None, "loss_no_tta": None,
        "test_examples": None,
        "curve": state.curve,
        "epochs_run": len(state.curve), "steps_run": None, "stopped_by": trainer.stopped_by or "budget",
        "resumed_from_epoch": trainer.first_epoch or 0, "processes": state.processes,
        "wall_time_s": None, "train_time_s": round(sum(r.get("train_s", 0.0) for r in state.curve), 3),
        "images_per_s": None,
        "config": {
            "recipe": recipe.to_dict(),
            "plan": {"budget": str(budget), "epochs": plan.epochs, "steps_per_epoch": plan.steps_per_epoch,
                     "total_steps": plan.total_steps, "deadline_s": plan.deadline_s},
            "normalization": pipes.normalization, "train_examples": pipes.train_examples,
            "precision": policy, "deterministic": deterministic, "strategy": devices.describe_strategy(strategy),
            "steps_per_execution": opts.steps_per_execution, "model_params": int(model.count_params()),
            "data_dir": opts.data_dir, "tta": list(recipe.tta), "eager": opts.eager,
        },
        "load_average": {"start": load_avg_start, "end": None},
        "datetime": started.isoformat(), "version": RESULT_SCHEMA,
        "machine_info": machine_info(), "commit_info": commit_info(),
    }
    step_var = int(model.optimizer.iterations.numpy())
    result["steps_run"] = step_var
    if trainer.failure:
        result.update(status="failed", error=trainer.failure)
        shutil.rmtree(ckpt_dir, ignore_errors=True)  # its last checkpoint may hold the NaN weights
    else:
        if trainer.steady_step_s > 0:  # the first step of a process traces and compiles: reported apart
            result["images_per_s"] = round((trainer.steps_run - 1) * recipe.batch_size / trainer.steady_step_s, 2)
        result["first_step_s"] = None if trainer.first_step_s is None else round(trainer.first_step_s, 3)
        ev = evaluate(model, pipes.test, tta=recipe.tta)
        result.update(ev)
        if not all(math.isfinite(ev[k]) for k in ("top1", "loss")):
            result.update(status="failed", error=f"final evaluation is not finite (top1 {ev['top1']}, loss {ev['loss']})",
                          top1=finite_or_none(ev["top1"]), loss=finite_or_none(ev["loss"]))
    # set-up (data, model) + training across every process of a resumed run + the final evaluation
    result["wall_time_s"] = round((wall_start - load_start) + state.elapsed_s + (time.monotonic() - wall_start - fit_s), 3)
    result["wall_time_s_this_process"] = round(time.monotonic() - load_start, 3)
    result["load_average"]["end"] = _loadavg()
    for k in ("top1", "loss", "top1_no_tta", "loss_no_tta"):
        result[k] = finite_or_none(result[k])
    path = write_json(out / f"{rid}.json", result)
    if result["status"] == "ok":
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    if opts.plot:
        plot(result, path.with_suffix(".png"))
    return result, path


def _max_epochs(recipe, steps_per_epoch: int) -> int:
    """An upper bound on epochs for a minutes budget: the recipe's full budget in epochs."""
    full = recipe.full()
    if full.kind == "epochs":
        return int(full.value)
    if full.kind == "steps":
        return math.ceil(full.value / steps_per_epoch)
    return 10_000


def _have_tensorboard() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def evaluate(model, test_ds, *, tta=()) -> dict:
    """Top-1 (percent) and cross-entropy over the whole test split; with ``tta=("flip",)`` the
    softmax of the image and of its mirror image are averaged (the plain figures are kept too)."""
    import numpy as np
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
    return out


def plot(result: dict, path: Path) -> Path:
    """The learning curve (loss, accuracy, learning rate per epoch) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = result["curve"]
    epochs = [r["epoch"] for r in curve]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for key, ax in (("loss", axes[0]), ("accuracy", axes[1])):
        ax.plot(epochs, [r.get(key) for r in curve], "o-", label=f"train {key}")
        if any(r.get(f"val_{key}") is not None for r in curve):
            ax.plot(epochs, [r.get(f"val_{key}") for r in curve], "o-", label=f"test {key}")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.legend()
    axes[2].plot(epochs, [r["lr"] for r in curve], "o-")
    axes[2].set_title("learning rate (end of epoch)")
    axes[2].set_xlabel("epoch")
    top1 = result.get("top1")
    fig.suptitle(f"{result['recipe']} on {result['dataset']}, {result['budget']}, seed {result['seed']}: "
                 f"top-1 {'-' if top1 is None else f'{top1:.2f}%'}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def run(args: argparse.Namespace) -> int:
    import faulthandler
    import signal

    if hasattr(signal, "SIGUSR1"):  # `kill -USR1 PID` prints where a long run is, without stopping it
        try:
            faulthandler.register(signal.SIGUSR1, all_threads=True)
        except (AttributeError, ValueError, OSError):  # stderr without a file descriptor (captured)
            pass
    opts = Options(budget=args.budget, seed=args.seed, device=args.device, tpu=args.tpu, precision=args.precision,
                   deterministic=args.deterministic, out=args.out, data_dir=args.data_dir, manual_dir=args.manual_dir,
                   archive=args.archive, cache_dir=args.cache_dir, mock=args.mock, overrides=tuple(args.overrides),
                   steps_per_execution=args.steps_per_execution, fresh=args.fresh, plot=args.plot,
                   eager=args.eager, cpu_replicas=args.cpu_replicas)
    result, path = train(args.recipe, opts)
    if result["status"] != "ok":
        print(f"FAILED {result['recipe']} ({result['dataset']}, {result['budget']}, seed {result['seed']}): {result['error']}; wrote {path}")
        return 1
    print(f"{result['recipe']} on {result['dataset']}, {result['budget']}, seed {result['seed']}: top-1 {result['top1']:.2f}% "
          f"(no TTA {result['top1_no_tta']:.2f}%), loss {result['loss']:.4f}, {result['test_examples']} test images, "
          f"{result['wall_time_s']:.0f} s, {result['images_per_s']} img/s; wrote {path}")
    return 0
