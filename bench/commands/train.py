"""``python -m bench train RECIPE --budget ... --seed S --device cpu|gpu|tpu``: one budgeted training run.

Across several workers: ``--cluster HOST:PORT,... --task-index I`` (or ``TF_CONFIG``) on each host, or
``--workers N`` for N workers on this machine (``bench.launch``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench import processes
from bench.training import options
from bench.training import recipes as recipes_mod
from bench.training.loop import check_run, train


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help=f"recipe name ({', '.join(sorted(recipes_mod.RECIPES))})")
    options.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import faulthandler
    import signal

    if hasattr(signal, "SIGUSR1"):  # `kill -USR1 PID` prints where a long run is, without stopping it
        try:
            faulthandler.register(signal.SIGUSR1, all_threads=True)
        except (AttributeError, ValueError, OSError):  # stderr without a file descriptor (captured)
            pass
    opts = options.Options.from_args(args)
    if opts.workers > 1:
        return _launch(args.recipe, opts)
    try:
        with processes.sigterm_exits():  # SIGTERM (a job's timeout, a cancelled CI run): Ctrl-C's orderly path
            result, path = train(args.recipe, opts)
    except (KeyboardInterrupt, SystemExit) as e:
        status = 130 if isinstance(e, KeyboardInterrupt) else e.code
        if status not in (130, 128 + signal.SIGTERM):
            raise
        how = "interrupted" if status == 130 else "terminated (SIGTERM)"
        print(
            f"{how}: the same command resumes from the last finished epoch's checkpoint"
            f" (in {Path(opts.out) / '.checkpoints'}; --fresh starts over)",
            file=sys.stderr,
        )
        return status
    if path is None:  # a worker other than the chief: the chief writes the result
        print(
            f"{result['recipe']} worker {result['worker']} of {result['workers']}: {result['status']}, "
            f"{result['steps_run']} steps, {_rate(result['images_per_s'])} (the job's), weights sha256 "
            f"{result['weights_sha256'][:16]} ({_agree(result['workers_agree'])}); "
            "worker 0 writes the result"
        )
        return 0 if result["status"] == "ok" and result["workers_agree"] else 1
    if result["status"] != "ok":
        print(
            f"FAILED {result['recipe']} ({result['dataset']}, {result['budget']}, seed {result['seed']}): {result['error']}; wrote {path}"
        )
        return 1
    print(summary(result, path))
    job = result.get("cluster")
    return 0 if not job or job["workers_agree"] else 1


def summary(result: dict, path) -> str:
    """The line a finished run ends with: its figures and where the result went."""
    job, each = result.get("cluster"), result.get("images_per_s_per_worker")
    return (
        f"{result['recipe']} on {result['dataset']}, {result['budget']}, seed {result['seed']}: top-1 {result['top1']:.2f}% "
        f"(no TTA {result['top1_no_tta']:.2f}%), loss {result['loss']:.4f}, {result['test_examples']} test images, "
        f"{result['wall_time_s']:.0f} s, {_rate(result['images_per_s'])}"
        + (
            f" over {job['workers']} workers{'' if each is None else f' ({each} img/s each)'}, weights sha256 "
            f"{job['weights_sha256'][:16]} ({_agree(job['workers_agree'])})"
            if job
            else ""
        )
        + f"; wrote {path}"
    )


def _rate(images_per_s: float | None) -> str:
    """Images a second, or why there is none: each process's first step compiles and is not timed."""
    return "img/s not measured (no step after a process's first)" if images_per_s is None else f"{images_per_s} img/s"


def _agree(same: bool) -> str:
    return "the same on every worker" if same else "NOT the same on every worker"


def _launch(recipe: str, opts: options.Options) -> int:
    """``--workers N``: every option checked here, then N workers of this run started on loopback."""
    from bench import launch

    check_run(recipe, opts)
    flags = options.argv(opts)

    def worker(c) -> list[str]:
        return [
            sys.executable,
            "-m",
            "bench",
            "train",
            recipe,
            *flags,
            "--cluster",
            ",".join(c.addresses),
            "--task-index",
            str(c.task_index),
            "--worker-timeout",
            str(opts.worker_timeout),
        ]

    outcome = launch.run(worker, opts.workers, timeout_s=opts.worker_timeout, label=f"train {recipe}")
    return outcome.status
