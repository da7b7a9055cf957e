"""Throughput across the workers of one job: ``--cluster`` (one worker per host) and ``--workers N`` (N on loopback).

A worker (``--cluster HOST:PORT,... --task-index I``, or ``TF_CONFIG``) is an ordinary throughput
process whose placement is the job's (``bench.backends``: MultiWorkerMirroredStrategy, or jax's
DataParallel): each case's ``--batch-size`` is the job's global batch, split over the workers; every
worker runs the same steps per round (the most any worker asks for) and no extra rounds, since the
rounds are collectives; worker 0 writes the result, whose images/s are the job's, timed on its clock.

``python -m bench throughput --workers N`` (``run``) measures, in one invocation, one worker alone at
the per-worker batch (global / N: the work each worker of the job does per step), then N workers of
one job on this machine (``bench.launch``), and writes the job's result with, per case,
``extra_info.workers``: the job's images/s, images/s per worker (the job's / N), one worker's, and
the scaling efficiency, job / (N x one worker): 1.0 is linear scaling (weak scaling: the work per
worker stays the same). With ``--shard i/M`` both measure the shard's cases (told as a backend's
process is, ``fanout.CASES_ENV``) and the result records the shard, as a shard's result does.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import tempfile
from pathlib import Path

from bench import cluster as cluster_mod
from bench.errors import UsageError
from bench.stats import finite

EFFICIENCY = "job images/s / (workers x one worker's images/s at the per-worker batch)"


def job_of(opts: dict):
    """This process's ``bench.cluster.Cluster`` from the options and ``TF_CONFIG`` (None for one process
    and for the ``--workers`` launcher); a bad value is a one-line ``UsageError``."""
    return cluster_mod.resolve(
        opts.get("cluster"),
        opts.get("task_index"),
        timeout_s=opts.get("worker_timeout", cluster_mod.DEFAULT_TIMEOUT_S),
        workers=opts.get("workers", 1),
    )


def check(opts: dict, chosen, device: str, axes: dict):
    """This process's ``bench.cluster.Cluster`` (``job_of``), and what a throughput job cannot do,
    as one-line ``UsageError``s."""
    workers = opts.get("workers", 1)
    job = job_of(opts)
    if job is None and workers == 1:
        return None
    what = f"--workers {workers}" if job is None else job.source
    if len(chosen) > 1:
        raise UsageError(f"{what} times one --backend at a time, not {','.join(chosen)}")
    cluster_mod.check_job(what, backend=chosen[0], device=device, cpu_replicas=opts.get("cpu_replicas", 1) > 1)
    if "real" in axes["data"]:
        raise UsageError(f"--data real with {what}: a job's workers time synthetic batches only")
    return job


def check_batches(plan) -> None:
    """Every batch size splits evenly over the job's workers (a one-line ``UsageError`` if not)."""
    n = plan.workers if plan.workers > 1 else (plan.cluster.count if plan.cluster is not None else None)
    for case in plan.cases:
        if n and case.batch_size % n:
            raise UsageError(
                f"--batch-size {case.batch_size} is invalid with {n} workers; each worker takes an equal share "
                "of the global batch"
            )


def run(plan, opts: dict, pytest_args: list[str]) -> int:
    """``--workers N``: one worker alone at the per-worker batch, then the job of N workers on loopback;
    the job's result, with each case's scaling against one worker, written where the plan says."""
    from bench import launch
    from bench.io import read_json
    from bench.throughput import fanout
    from bench.throughput.plan import out_file, plot_file

    n = plan.workers
    (backend,) = plan.backends
    env = {**os.environ, "KERAS_BACKEND": backend}
    env.pop("TF_CONFIG", None)
    env.pop(fanout.CASES_ENV, None)
    one_env, job_env = env, env
    if plan.shard is not None:  # the workers measure the shard's cases, told as a backend's process is (fanout)
        alone = [dataclasses.replace(c, batch_size=c.batch_size // n).id for c in plan.cases]
        one_env = {**env, fanout.CASES_ENV: json.dumps(alone)}
        job_env = {**env, fanout.CASES_ENV: json.dumps([c.id for c in plan.cases])}
    per_worker = ",".join(str(b) for b in dict.fromkeys(c.batch_size // n for c in plan.cases)) or opts["batch_size"]
    base = {**opts, "workers": 1, "cluster": None, "task_index": None, "isolate": "none"}  # each worker: one process
    with tempfile.TemporaryDirectory(prefix="cnn-bench-throughput-workers-") as tmp:
        one_out, job_out = Path(tmp) / "one-worker.json", Path(tmp) / "job.json"
        print(f"cnn-bench: one worker alone first, at the per-worker batch ({per_worker})", flush=True)
        one_status = subprocess.run(
            fanout.child_argv({**base, "batch_size": per_worker}, backend, one_out, pytest_args), env=one_env
        ).returncode

        def worker(c: cluster_mod.Cluster) -> list[str]:
            out = job_out if c.is_chief else ""  # the others write nothing
            argv = fanout.child_argv(base, backend, out, pytest_args)
            at = argv.index("--") if "--" in argv else len(argv)
            return [*argv[:at], "--cluster", ",".join(c.addresses), "--task-index", str(c.task_index), *argv[at:]]

        outcome = launch.run(
            worker, n, timeout_s=cluster_mod.check_timeout(opts["worker_timeout"]), env=job_env, label="throughput"
        )
        one = read_json(one_out, what="result file") if one_out.exists() else None
        job = read_json(job_out, what="result file") if job_out.exists() else None
    if job is None:
        return outcome.status or 1
    doc = scaling(job, one, n)
    if plan.shard is not None:  # the shard's record, as a shard run without --workers writes it (python -m bench merge)
        doc["harness"] |= {"options": plan.to_dict(), "shard": plan.shard.record()}
    print()
    print(table(doc))
    out = out_file(plan.bench_out, plan.device)
    if out is not None:
        print(f"cnn-bench: wrote {out.write_json(doc)} (the job of {n} workers, and one worker)")
    if plan.plot:
        from bench.throughput.summary import plot_line

        print(plot_line(doc, plot_file(plan, out)))
    return outcome.status or (one_status if one_status else 0)


def scaling(job: dict, one: dict | None, n: int) -> dict:
    """The job's result document with each case's scaling against one worker (``extra_info.workers``)
    and the one-worker run kept whole under ``harness.one_worker``."""
    from bench.throughput.workload import Case

    singles = {}
    for b in (one or {}).get("benchmarks") or []:
        x = b.get("extra_info") or {}
        if x.get("case"):
            singles[Case.from_dict(x["case"]).id] = x
    doc = dict(job)
    doc["benchmarks"] = []
    for b in job.get("benchmarks") or []:
        b = {**b, "extra_info": dict(b.get("extra_info") or {})}
        x = b["extra_info"]
        if x.get("case"):
            case = Case.from_dict(x["case"])
            alone = singles.get(dataclasses.replace(case, batch_size=case.batch_size // n).id) or {}
            job_rate = finite((x.get("images_per_s") or {}).get("median"))
            one_rate = finite((alone.get("images_per_s") or {}).get("median"))
            x["workers"] = {
                "workers": n,
                "images_per_s": job_rate,
                "images_per_s_per_worker": None if job_rate is None else job_rate / n,
                "one_worker_batch": case.batch_size // n,
                "one_worker_images_per_s": one_rate,
                "scaling_efficiency": None
                if None in (job_rate, one_rate) or not one_rate
                else job_rate / (n * one_rate),
                "efficiency_is": EFFICIENCY,
            }
        doc["benchmarks"].append(b)
    doc["harness"] = {**job.get("harness", {}), "workers": n, "efficiency_is": EFFICIENCY, "one_worker": one}
    return doc


def table(doc: dict) -> str:
    """The job's cases: images/s of the job, per worker, of one worker alone, and the scaling efficiency."""
    from bench.throughput.summary import aligned, rate

    body = []
    for b in doc.get("benchmarks") or []:
        x = b.get("extra_info") or {}
        w, case = x.get("workers"), x.get("case") or {}
        if not w:
            continue
        eff = w["scaling_efficiency"]
        body.append(
            [
                case.get("model", "?"),
                case.get("mode", "?"),
                case.get("backend", "?"),
                str(case.get("batch_size", "?")),
                str(w["workers"]),
                rate(w["images_per_s"]),
                rate(w["images_per_s_per_worker"]),
                str(w["one_worker_batch"]),
                rate(w["one_worker_images_per_s"]),
                "-" if eff is None else f"{eff:.2f}",
            ]
        )
    header = ["model", "mode", "backend", "batch", "workers", "job images/s", "per worker", "1-worker batch"]
    return aligned([*header, "1 worker images/s", "efficiency"], body, numeric={3, 4, 5, 6, 7, 8, 9})
