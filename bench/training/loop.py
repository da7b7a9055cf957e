"""``python -m bench train RECIPE --budget ... --seed S --device cpu|gpu|tpu``: one budgeted training run.

The recipe (``bench.training.recipes``) fixes model, data, augmentation, optimizer and the schedule in
fractions of the budget; ``--budget`` stretches or shrinks it (``epochs=N``, ``steps=N``,
``minutes=M``, ``full``). The run logs progress with an ETA and TensorBoard scalars, checkpoints
each epoch and resumes from the last checkpoint when the same command runs again after an
interruption, stops on a NaN or Inf loss (recording the failure), and evaluates on the whole test
split. The result JSON holds top-1, loss, the per-epoch curve, wall time, images/s, seed, the
resolved config and the environment; ``bench gate`` compares it with baselines.json.

``train`` is set-up (``_setup``: options, recipe, budget, device, precision, seeds, data, plan), model
(``_build_model``), fit (``_fit``, with ``bench.training.callbacks``) and result (``_result``).

One run can span several workers (``--cluster``, ``TF_CONFIG``; ``bench.cluster``): the recipe's batch
is the global batch, split over them; every worker trains, only worker 0 (the chief) writes the
result, checkpoints and TensorBoard logs; every worker resumes from the chief's checkpoint, so on
several hosts ``--out`` must be storage they all read. A lost worker ends the others with one line
(``WorkerLost``).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench import cluster as cluster_mod
from bench.errors import UsageError, WorkerLost, first_line
from bench.io import save_figure, writable_dir, write_json
from bench.results import TRAIN_KIND, TRAINING_SCHEMA
from bench.stats import finite
from bench.training import budget as budget_mod
from bench.training import options
from bench.training import recipes as recipes_mod
from bench.training.options import Options

REGULARIZERS = ("kernel_regularizer", "depthwise_regularizer", "pointwise_regularizer")


@dataclasses.dataclass
class Run:
    """One run set up: the resolved recipe, budget and device, and the data pipelines and plan."""

    recipe: recipes_mod.Recipe
    opts: Options
    budget: budget_mod.Budget
    dataset: str
    deterministic: bool
    placement: object  # bench.backends.Placement (its strategy on tensorflow)
    policy: str
    out: Path
    rid: str
    ckpt_dir: Path
    load_start: float  # time.monotonic() before the data was read
    pipes: object  # bench.training.data.Pipelines
    plan: budget_mod.BudgetPlan
    train_ds: object  # (image, one-hot label) batches
    val_ds: object | None


@dataclasses.dataclass
class Fit:
    """What ``model.fit`` left: the callback's record, the persisted state and the timings."""

    trainer: object  # bench.training.callbacks.Trainer
    state: object  # bench.training.callbacks.State
    load_avg_start: list[float] | None
    started: datetime.datetime
    wall_start: float
    fit_s: float
    raw_weights: object = None  # bench.training.evaluation.KeepRawWeights, when the optimizer averages weights


def run_id(recipe: str, dataset: str, budget: budget_mod.Budget, device: str, seed: int, overrides, options=()) -> str:
    """The name of a run's result and checkpoint: what it trains, where and with which seed; then
    ``-mod<digest>`` of its ``--set`` overrides, and ``options``, the words that name the other options
    that change its numbers (``name_options``), so that two runs that differ in them never share a
    result or a checkpoint."""
    rid = f"{recipe}-{dataset}-{budget.kind}{budget.number}-{device}-seed{seed}"
    if overrides:
        rid += "-mod" + hashlib.sha256("\n".join(overrides).encode()).hexdigest()[:8]
    return "-".join([rid, *options])


def name_options(opts: Options, deterministic: bool, recipe_deterministic: bool, workers: int = 1) -> list[str]:
    """The options outside the run id's other parts that change a run's numbers, in a word each
    where they are not the default (a default run keeps the name it always had): ``mock32``,
    ``mixed_bf16``, ``nondeterministic`` (or ``deterministic`` against the recipe's), ``spe8``,
    ``replicas2``, ``eager``, ``workers2`` (a job's result: its chief writes it)."""
    words = []
    if opts.mock is not None:
        words.append(f"mock{opts.mock}")  # the dataset says mock data, not how many examples
    if opts.precision != options.OPTIONS["--precision"]["default"]:
        words.append(opts.precision)
    if deterministic != recipe_deterministic:
        words.append("deterministic" if deterministic else "nondeterministic")
    if opts.steps_per_execution != 1:
        words.append(f"spe{opts.steps_per_execution}")
    if (opts.cpu_replicas or 1) != 1:
        words.append(f"replicas{opts.cpu_replicas}")
    if opts.eager:
        words.append("eager")
    if workers != 1:
        words.append(f"workers{workers}")
    return words


def _identity(opts: Options, deterministic: bool, workers: int = 1) -> dict:
    """The options that change a run's numbers: a resume must keep them. They are in the run id too
    (``name_options``); a checkpoint of an older name, or an edited state, may differ."""
    return {
        "--deterministic": "on" if deterministic else "off",
        "--steps-per-execution": opts.steps_per_execution,
        "--precision": opts.precision,
        "--cpu-replicas": opts.cpu_replicas or 1,
        "--workers": workers,
        "--mock": opts.mock,
        "--eager": "on" if opts.eager else "off",
    }


def train(
    recipe_name: str,
    opts: Options,
    *,
    clock: Callable[[], float] = time.monotonic,
    log: Callable[[str], None] | None = None,
    extra_callbacks=(),
) -> tuple[dict, Path | None]:
    """Run one recipe under a budget; returns (result document, path written). A worker of a job
    other than the chief writes nothing: (its summary, None)."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    run = _setup(recipe_name, opts)
    model = _build_model(run)
    _start_fresh(run)
    fit = _fit(run, model, clock=clock, log=log, extra_callbacks=extra_callbacks)
    result, path = _result(run, model, fit)
    if opts.plot and path is not None:
        plot(result, path.with_suffix(".png"))
    return result, path


def fingerprint_of(recipe_name: str, opts: Options) -> dict:
    """What a run of ``recipe_name`` with ``opts`` would be keyed by and produced by (``bench.fingerprint``),
    from its set-up and built model, without training: the fields ``bench.regression.accuracy.key_of`` reads."""
    from bench import fingerprint

    # one process (TF_CONFIG names no job to join here), which trains nothing: no checkpoint is read or deleted
    run = _setup(recipe_name, opts, environ={}, training=False)
    model = _build_model(run)
    return {
        "kind": TRAIN_KIND,
        "recipe": run.recipe.name,
        "dataset": run.dataset,
        "budget": str(run.budget),
        "device": opts.device,
        "device_class": run.placement.device_class,
        "backend": run.placement.backend,
        "fingerprint": fingerprint.of_run(run, model),
    }


def check_run(recipe_name: str, opts: Options, *, environ=None):
    """Every option checked, and the recipe (with ``--set``), budget and cluster resolved: a one-line
    ``UsageError`` for any bad value, before TensorFlow, the data or a model is touched. Returns
    (recipe, budget, this process's ``bench.cluster.Cluster`` or None)."""
    options.check(opts)
    recipe = recipes_mod.get(recipe_name)
    if opts.overrides:
        recipe = recipes_mod.with_overrides(recipe, list(opts.overrides))
    replicas = opts.cpu_replicas or 1
    if recipe.batch_size % replicas:
        raise UsageError(
            f"--cpu-replicas {replicas} does not divide the batch size {recipe.batch_size}; each replica takes an equal share"
        )
    budget = budget_mod.Budget.parse(opts.budget, full=recipe.full())
    if budget.kind == "steps":
        check_execution(opts.steps_per_execution, int(budget.value), f"--budget {budget}")
    if recipe.dataset == "cifar10_jpeg":
        for flag, value in (("--data-dir", opts.data_dir), ("--manual-dir", opts.manual_dir)):
            if value is not None:
                raise UsageError(
                    f"{flag} {value!r}: recipe {recipe.name!r} trains on cifar10_jpeg, which is read from --archive"
                    f" and --cache-dir; {flag} applies to the tfds datasets (cifar10, fashion_mnist)"
                )
    cluster = options.cluster_of(opts, environ)
    workers = opts.workers if cluster is None else cluster.count  # None: --cluster auto, known once joined
    if workers and workers > 1:
        what = f"--workers {opts.workers}" if cluster is None else f"{cluster.source} ({workers} workers)"
        if budget.kind == "minutes":
            raise UsageError(
                f"--budget {budget} with {what}: a minutes budget runs on each worker's own clock, and every worker "
                "must stop at the same step; give epochs=N or steps=N"
            )
        if recipe.batch_size % workers:
            raise UsageError(
                f"{what} does not divide the batch size {recipe.batch_size}; each worker takes an equal share of "
                "the global batch (--set batch_size=...)"
            )
    writable_dir("--out", opts.out)  # last: a run with a bad option makes no directory
    return recipe, budget, cluster


def check_execution(steps_per_execution: int, steps: int, what: str) -> None:
    """A run stops, and an epoch ends, only between executions of ``--steps-per-execution`` steps
    (each a compiled call; the schedule's rate is set once for each): ``steps`` (of a budget, of an
    epoch) that it does not divide would run past them (on repeated data) or end in a short execution
    that the callbacks count as a whole one. One line, exit 2, before any model is built."""
    if steps % steps_per_execution:
        raise UsageError(
            f"--steps-per-execution {steps_per_execution} does not divide {what} ({steps} steps); expected a"
            f" divisor of {steps} (a run stops, and an epoch ends, only between executions)"
        )


DATA_SETS = {"input_shape", "classes"}  # builder arguments a trained model takes from its data, not its recipe


def _check_model(recipe) -> None:
    """``--set model=NAME`` can name any model, and ``--set model_overrides.KEY=...`` any key: an
    unregistered model, or a key that is none of its options, is a one-line error (exit 2) before a
    device is opened or the data read (the values are the builder's to check, when the model is built).
    Here, not in ``check_run``: the registry imports Keras, which must come after ``backends.activate``."""
    import models

    spec = models.get_spec(recipe.model)
    spec.check_overrides(recipe.model_overrides)
    fixed = sorted(DATA_SETS & set(recipe.model_overrides))
    if fixed:
        key, valid = fixed[0], ", ".join(o for o in spec.options or () if o not in DATA_SETS)
        raise UsageError(
            f"model_overrides.{key}={recipe.model_overrides[key]!r}: a trained model's {key} is its dataset's"
            f" ({recipe.dataset}); valid keys: {valid}"
        )


def _setup(recipe_name: str, opts: Options, *, environ=None, training: bool = True) -> Run:
    """Options, device, strategy (joining the job's other workers), precision, seeds (in that order:
    the seed comes before the pipelines and the model), checkpoint directory, data pipelines and
    the budget's plan. ``training=False`` (a fingerprint) reads no checkpoint; ``--fresh`` deletes it later
    (``_start_fresh``)."""
    recipe, budget, cluster = check_run(recipe_name, opts, environ=environ)
    dataset = f"mock_{recipe.dataset}" if opts.mock else recipe.dataset

    from bench import backends, devices

    deterministic = recipe.deterministic if opts.deterministic == "recipe" else opts.deterministic == "on"
    backend = backends.activate(opts.backend)
    _check_model(recipe)
    placement = backend.open(opts.device, tpu=opts.tpu, cpu_replicas=opts.cpu_replicas or 1, cluster=cluster)
    cluster = placement.cluster
    policy = devices.set_precision(opts.precision)
    backend.seed(opts.seed, deterministic=deterministic)

    from bench.training import data

    out = Path(opts.out)
    where = opts.device if opts.backend == "tensorflow" else f"{opts.device}-{opts.backend}"
    rid = run_id(
        recipe.name,
        dataset,
        budget,
        where,
        opts.seed,
        opts.overrides,
        name_options(opts, deterministic, recipe.deterministic, _workers(cluster)),
    )
    ckpt_dir = out / ".checkpoints" / rid
    from bench.training.callbacks import State

    # a resume with other numerics: refused (every worker reads the chief's state; with --fresh, none:
    # the chief deletes it once the data and the model show that the options work: ``_start_fresh``)
    State(
        ckpt_dir / "state.json",
        identity=_identity(opts, deterministic, _workers(cluster)),
        read=training and not opts.fresh,
    )
    load_start = time.monotonic()
    pipes = data.pipelines(
        dataset,
        batch_size=recipe.batch_size,
        augment=recipe.augment,
        normalization=recipe.normalization,
        seed=opts.seed,
        data_dir=opts.data_dir,
        manual_dir=opts.manual_dir,
        archive=opts.archive,
        cache_dir=opts.cache_dir,
        mock_examples=opts.mock,
    )
    plan = budget_mod.plan(budget, pipes.steps_per_epoch, max_epochs=budget_mod.UNTIL_DEADLINE)
    check_execution(opts.steps_per_execution, pipes.steps_per_epoch, f"an epoch of {dataset}")
    train_ds, val_ds = _fit_datasets(pipes, recipe, plan, job=None if cluster is None else opts.backend)
    return Run(
        recipe,
        opts,
        budget,
        dataset,
        deterministic,
        placement,
        policy,
        out,
        rid,
        ckpt_dir,
        load_start,
        pipes,
        plan,
        train_ds,
        val_ds,
    )


def _start_fresh(run: Run) -> None:
    """``--fresh``: the chief deletes the run's checkpoint, only once the data has been read and the model
    built, so that an input refused on the way (a model override or optimizer argument that the builder
    or Keras refuses) keeps it."""
    if run.opts.fresh and run.ckpt_dir.exists() and run.placement.chief:
        shutil.rmtree(run.ckpt_dir)


def _workers(cluster) -> int:
    return cluster.count if cluster is not None else 1


def _reads(opts: Options, placement) -> bool:
    """Whether this process resumes from the checkpoint: the chief deletes it first under --fresh, and
    another worker must not read it meanwhile."""
    return placement.chief or not opts.fresh


def _fit_datasets(pipes, recipe, plan: budget_mod.BudgetPlan, *, job: str | None = None):
    """(train, validation or None) with one-hot labels, as ``fit`` takes them. ``job`` is the backend
    of a multi-worker run: on tensorflow every worker reads the whole pipeline and takes its share of
    each global batch (tf.data's DATA auto-sharding), so the job sees the batches one host would; on
    jax Keras shards by process itself, and the training data repeats (Keras counts the batches of
    the data before sharding, so its own end-of-data reset never comes)."""
    import tensorflow as tf

    classes = pipes.info.classes

    def one_hot(x, y):
        return x, tf.one_hot(y, classes)

    train_ds = pipes.train.map(one_hot)
    val_ds = pipes.test.map(one_hot) if recipe.validate_each_epoch else None
    if _ends_inside_an_epoch(plan) or job == "jax":
        train_ds = train_ds.repeat()  # a steps budget may end inside an epoch; steps_per_epoch bounds each
    if job == "tensorflow":
        sharding = tf.data.Options()
        sharding.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        train_ds = train_ds.with_options(sharding)
        val_ds = None if val_ds is None else val_ds.with_options(sharding)
    return train_ds, val_ds


def _build_model(run: Run):
    """The recipe's model, optimizer (at the schedule's first rate) and loss, compiled under the strategy."""
    import keras

    import models
    from bench.training import evaluation

    recipe = run.recipe
    with run.placement.scope():
        try:
            model = models.create(
                recipe.model,
                input_shape=run.pipes.info.input_shape,
                classes=run.pipes.info.classes,
                **recipe.model_overrides,
            )
        except (TypeError, ValueError) as e:  # a value the builder or Keras refuses (not a bug: only with overrides)
            if not recipe.model_overrides or isinstance(e, models.ModelArgumentError):
                raise
            raise UsageError(
                f"recipe {recipe.name!r}: model_overrides {recipe.model_overrides} are invalid for"
                f" {recipe.model}: {first_line(e)}"
            ) from None
        opt_cfg = dict(recipe.optimizer)
        opt_name = opt_cfg.pop("name")
        first_lr = budget_mod.lr_at(recipe.schedule, 0.0)
        try:
            optimizer = (keras.optimizers.SGD if opt_name == "sgd" else keras.optimizers.Adam)(
                learning_rate=first_lr, **opt_cfg, **evaluation.optimizer_arguments(recipe)
            )
        except (TypeError, ValueError) as e:  # an argument --set gave that Keras refuses (an unknown one)
            raise UsageError(
                f"recipe {recipe.name!r}: optimizer {recipe.optimizer} is invalid: {first_line(e)}"
            ) from None
        model.compile(
            optimizer=optimizer,
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing),
            metrics=["accuracy"],
            steps_per_execution=run.opts.steps_per_execution,
            run_eagerly=run.opts.eager,
        )
    return model


def _fit(run: Run, model, *, clock: Callable[[], float], log: Callable[[str], None], extra_callbacks) -> Fit:
    """``model.fit`` under the budget, with checkpoints (resuming from the last), the harness's
    callback, TensorBoard when it is installed, and the caller's ``extra_callbacks``."""
    import keras

    from bench.training.callbacks import Backup, ResumeData, SameStart, SameStatistics, State, Trainer
    from bench.training.evaluation import KeepRawWeights

    opts, plan, label, placement = run.opts, run.plan, run.recipe.name, run.placement
    cluster = placement.cluster
    if cluster is not None:
        label = f"{label} worker {cluster.task_index}/{cluster.count}"
    reads, writes = _reads(opts, placement), placement.chief
    state = State(
        run.ckpt_dir / "state.json",
        identity=_identity(opts, run.deterministic, _workers(cluster)),
        read=reads,
        write=writes,
    )
    state.processes += 1
    trainer = Trainer(plan, run.recipe.schedule, state, clock=clock, label=label, log=log)
    own_dir = None if writes else Path(tempfile.mkdtemp(prefix="cnn-bench-worker-checkpoints-"))
    # Backup first: it restores the epoch the others start from (falling back to the state's epoch when a
    # kill came between an epoch's weights and its state), and writes an epoch's weights before Trainer its state
    callbacks = [Backup(run.ckpt_dir / "backup", read=reads, write_dir=own_dir, state=state)]
    if cluster is not None:  # before Backup writes at an epoch's end, and after it restored at the start
        from bench import backends

        backend = backends.load(placement.backend)
        callbacks.insert(0, SameStatistics(lambda model: backend.sync_statistics(placement, model)))
        callbacks.append(SameStart(lambda v: backend.gather_replicas(placement, v), opts.out))
    callbacks += [ResumeData(run.pipes.train), trainer, *extra_callbacks]
    raw = KeepRawWeights() if run.recipe.ema_momentum else None
    if raw:
        callbacks.append(raw)
    if not writes:
        pass  # TensorBoard logs are the chief's
    elif _have_tensorboard():
        callbacks.append(
            keras.callbacks.TensorBoard(
                str(run.out / "tensorboard" / run.rid), write_graph=False, update_freq="epoch", profile_batch=0
            )
        )
    else:
        log(f"[{label}] TensorBoard logs skipped: the tensorboard package is not installed (pip install tensorboard)")
    log(
        f"[{label}] {run.dataset}, budget {run.budget} -> "
        f"{'epochs' if plan.deadline_s is not None else f'{plan.epochs} epoch(s)'} x {plan.steps_per_epoch} steps"
        f"{'' if plan.total_steps is None else f' = {plan.total_steps} steps'}"
        f"{'' if plan.deadline_s is None else f', deadline {plan.deadline_s:.0f} s'}, seed {opts.seed}, "
        f"device {opts.device}, {run.policy}, deterministic={run.deterministic}"
    )
    # training that met its budget in an earlier process (stopped during the evaluation) takes no step more:
    # a minutes budget's partial last epoch would otherwise run again from its checkpoint
    epochs = state.curve[-1]["epoch"] if state.stopped_by and state.curve else plan.epochs
    load_avg_start = _loadavg()
    wall_start = time.monotonic()
    started = datetime.datetime.now(datetime.UTC)
    try:
        with _lost_workers(cluster):
            model.fit(
                run.train_ds,
                epochs=epochs,
                steps_per_epoch=plan.steps_per_epoch,
                validation_data=run.val_ds,
                callbacks=callbacks,
                verbose=0,
            )
    finally:
        if own_dir is not None:
            shutil.rmtree(own_dir, ignore_errors=True)
    return Fit(trainer, state, load_avg_start, started, wall_start, time.monotonic() - wall_start, raw)


@contextlib.contextmanager
def _lost_workers(cluster):
    """An engine error that says a worker of the job is gone, as ``WorkerLost`` naming it; others pass."""
    try:
        yield
    except Exception as e:
        message = cluster_mod.lost(e, cluster)
        if message is None:
            raise
        raise WorkerLost(message) from None


def weights_digest(model) -> str:
    """sha256 of the model's weights (every variable, in order, as float32 bytes): the workers of a
    job compare their copies by it."""
    import numpy as np

    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(np.ascontiguousarray(np.asarray(w, dtype=np.float32)).tobytes())
    return h.hexdigest()


def _document(run: Run, model, fit: Fit) -> dict:
    """The result document before the final evaluation (its figures are None until then)."""
    from bench import fingerprint
    from bench.environment import commit_info, machine_info

    opts, plan, recipe, curve = run.opts, run.plan, run.recipe, fit.state.curve
    return {
        "kind": TRAIN_KIND,
        "schema": TRAINING_SCHEMA,
        "recipe": recipe.name,
        "dataset": run.dataset,
        "budget": str(run.budget),
        "budget_requested": opts.budget,
        "device": opts.device,
        "device_class": run.placement.device_class,
        "backend": run.placement.backend,
        "seed": opts.seed,
        "modified": list(opts.overrides),
        "status": "ok",
        "error": None,
        "top1": None,
        "loss": None,
        "top1_no_tta": None,
        "loss_no_tta": None,
        "test_examples": None,
        "evaluation": recipe.evaluation,
        "evaluations": {},
        "curve": curve,
        "epochs_run": len(curve),
        "steps_run": None,
        "stopped_by": fit.state.stopped_by or "budget",  # set by the last process that trained
        "resumed_from_epoch": fit.trainer.first_epoch or 0,
        "processes": fit.state.processes,
        "wall_time_s": None,
        "train_time_s": round(sum(r.get("train_s", 0.0) for r in curve), 3),
        "images_per_s": None,
        "config": {
            "recipe": recipe.to_dict(),
            "plan": {
                "budget": str(run.budget),
                "epochs": plan.epochs,
                "steps_per_epoch": plan.steps_per_epoch,
                "total_steps": plan.total_steps,
                "deadline_s": plan.deadline_s,
            },
            "normalization": run.pipes.normalization,
            "train_examples": run.pipes.train_examples,
            "precision": run.policy,
            "deterministic": run.deterministic,
            "strategy": run.placement.record(),
            "steps_per_execution": opts.steps_per_execution,
            "model_params": int(model.count_params()),
            "weight_decay": weight_decay(model),
            "data_dir": opts.data_dir,
            "tta": list(recipe.tta),
            "eager": opts.eager,
        },
        "load_average": {"start": fit.load_avg_start, "end": None},
        "datetime": fit.started.isoformat(),
        "version": TRAINING_SCHEMA,
        "machine_info": machine_info(),
        "commit_info": commit_info(),
        "fingerprint": fingerprint.of_run(run, model),
    }


def _result(run: Run, model, fit: Fit) -> tuple[dict, Path | None]:
    """The result document with the final evaluation (or the failure), written; the checkpoints
    are removed once the run is over (a finished run, or one whose weights went NaN). In a job of
    several workers, every worker compares its weights with the others' first; the chief alone
    evaluates and writes, the others wait for it and return a summary, and no path."""
    cluster = run.placement.cluster
    digests = None
    if cluster is not None:
        digest = weights_digest(model)
        digests = _gather(run, int(digest[:6], 16))  # exact in float32: 24 bits of each worker's digest
    if not run.placement.chief:
        summary = _worker_summary(run, model, fit, digest, digests)
        _gather(run, 0.0)  # stop with the chief, once it has written: the engines' shutdown waits for every worker
        return summary, None
    result = _document(run, model, fit)
    trainer = fit.trainer
    result["steps_run"] = int(model.optimizer.iterations.numpy())
    if cluster is not None:
        result["cluster"] = {
            **cluster.record(global_batch=run.recipe.batch_size),
            "weights_sha256": digest,
            "workers_agree": len(set(digests)) == 1,
        }
    if trainer.failure:
        result.update(status="failed", error=trainer.failure)
        shutil.rmtree(run.ckpt_dir, ignore_errors=True)  # its last checkpoint may hold the NaN weights
    else:
        result["images_per_s"] = _images_per_s(fit.state, run.recipe.batch_size)
        if cluster is not None and result["images_per_s"] is not None:
            result["images_per_s_per_worker"] = round(result["images_per_s"] / cluster.count, 2)
        first = fit.state.first_step_s  # of the last process that trained
        result["first_step_s"] = None if first is None else round(first, 3)
        from bench.training import evaluation

        ev = evaluation.final(
            _evaluation_model(run, model),
            run.recipe,
            _precise_bn_batches(run),
            run.pipes.test,
            raw_weights=fit.raw_weights.weights if fit.raw_weights else None,
            log=lambda msg: print(f"[{run.recipe.name}] {msg}", file=sys.stderr, flush=True),
        )
        result.update(ev)
        if any(finite(ev[k]) is None for k in ("top1", "loss")):
            result.update(
                status="failed",
                error=f"final evaluation is not finite (top1 {ev['top1']}, loss {ev['loss']})",
                top1=finite(ev["top1"]),
                loss=finite(ev["loss"]),
            )
    # set-up (data, model) + training across every process of a resumed run + the final evaluation
    result["wall_time_s"] = round(
        (fit.wall_start - run.load_start) + fit.state.elapsed_s + (time.monotonic() - fit.wall_start - fit.fit_s), 3
    )
    result["wall_time_s_this_process"] = round(time.monotonic() - run.load_start, 3)
    result["load_average"]["end"] = _loadavg()
    for k in ("top1", "loss", "top1_no_tta", "loss_no_tta"):
        result[k] = finite(result[k])
    fail_on_disagreement(result)
    path = write_json(run.out / f"{run.rid}.json", result)
    if result["status"] == "ok":
        shutil.rmtree(run.ckpt_dir, ignore_errors=True)
    if cluster is not None:
        _gather(run, 0.0)  # the others wait here for the result
    return result, path


def _ends_inside_an_epoch(plan: budget_mod.BudgetPlan) -> bool:
    """A steps budget that ends inside an epoch: its training data repeats (``_fit_datasets``)."""
    return plan.total_steps is not None and plan.total_steps < plan.epochs * plan.steps_per_epoch


def _precise_bn_batches(run: Run):
    """The training batches the precise-BN pass reads. After whole epochs, the training pipeline's
    next pass: a resumed process's pipeline is where the uninterrupted one's is (``ResumeData`` made
    an iterator for each epoch done), so a run stopped during its final evaluation reads the same
    batches again. A steps budget that ends inside an epoch leaves its repeated stream wherever the
    compiled iterator read ahead to, which a resumed process cannot know: its pass reads a pipeline
    of its own at the run's seed, repeated (the same batches in every process)."""
    if run.pipes.fresh_train is None or not _ends_inside_an_epoch(run.plan):
        return run.train_ds
    return run.pipes.fresh_train(run.opts.seed).repeat()


def fail_on_disagreement(result: dict) -> dict:
    """``result`` marked failed when it is a job's whose workers ended with different weights: its
    numbers are then the chief's copy alone, no one run's (a failure already recorded stays)."""
    job = result.get("cluster")
    if job is not None and not job.get("workers_agree") and result["status"] == "ok":
        result.update(
            status="failed",
            error=f"the {job.get('workers')} workers ended with different weights (workers_agree false; the "
            f"chief's sha256 {str(job.get('weights_sha256'))[:16]}): the job did not train one model",
        )
    return result


def _images_per_s(state, batch_size: int) -> float | None:
    """Images a second over the steps after each process's first (which traces and compiles:
    reported apart), across every process that trained (``State`` records them: a process that
    resumed after training had ended reports the earlier ones'); in a job, the job's images (the
    global batch) a second."""
    if state.steady_s <= 0:
        return None
    return round(state.steady_steps * batch_size / state.steady_s, 2)


def _worker_summary(run: Run, model, fit: Fit, digest: str, digests: list[float]) -> dict:
    """What a worker other than the chief reports (it writes nothing): enough to compare it with the others."""
    cluster = run.placement.cluster
    agree = len(set(digests)) == 1
    failure = fit.trainer.failure or (None if agree else "the workers ended with different weights")
    return {
        "recipe": run.recipe.name,
        "status": "failed" if failure else "ok",
        "error": failure,
        "worker": cluster.task_index,
        "workers": cluster.count,
        "steps_run": int(model.optimizer.iterations.numpy()),
        "images_per_s": _images_per_s(fit.state, run.recipe.batch_size),
        "weights_sha256": digest,
        "workers_agree": agree,
    }


def _gather(run: Run, value: float) -> list[float]:
    """``value`` from every worker of the job (a collective: each worker waits for the others)."""
    from bench import backends

    with _lost_workers(run.placement.cluster):
        return backends.load(run.placement.backend).gather_replicas(run.placement, value)


def _evaluation_model(run: Run, model):
    """The model the final evaluation runs: ``model`` itself in one process. On a job's chief, a copy
    of it outside the job (jax: no distribution; tensorflow: no strategy), so that evaluating needs
    no other worker; the weights are the job's, the same on every worker."""
    if run.placement.cluster is None:
        return model
    import keras

    import models

    weights = model.get_weights()
    if keras.distribution.distribution() is not None:  # jax: data and models stop being spread over the job
        keras.distribution.set_distribution(None)
    copy = models.create(
        run.recipe.model,
        input_shape=run.pipes.info.input_shape,
        classes=run.pipes.info.classes,
        **run.recipe.model_overrides,
    )
    copy.set_weights(weights)
    return copy


def weight_decay(model) -> dict | list[dict] | None:
    """The weight decay the built model carries, read from its layers (nested models included):
    ``{"l2": 0.0001, "layers": 21}``, the regularizer's config and how many layers have it; a list
    of those when layers differ; None when no layer has a regularizer."""
    counts: collections.Counter = collections.Counter()
    for layer in _layers(model):  # a layer counts once per distinct regularizer config
        counts.update(
            {json.dumps(_config(reg), sort_keys=True) for attr in REGULARIZERS if (reg := getattr(layer, attr, None))}
        )
    groups = [{**json.loads(config), "layers": n} for config, n in counts.items()]
    return None if not groups else groups[0] if len(groups) == 1 else groups


def _layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):  # a nested model
            yield from _layers(layer)


def _config(regularizer) -> dict:
    try:
        return dict(regularizer.get_config())
    except NotImplementedError:  # a custom regularizer without a config
        return {"regularizer": type(regularizer).__name__}


def _have_tensorboard() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


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
    fig.suptitle(
        f"{result['recipe']} on {result['dataset']}, {result['budget']}, seed {result['seed']}: "
        f"top-1 {'-' if top1 is None else f'{top1:.2f}%'}"
    )
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)
