"""Several Keras backends in one throughput run: one process per backend, one merged result file.

Keras fixes its backend when it is imported, so ``python -m bench throughput --backend
tensorflow,jax,torch`` checks the whole plan here (on Keras's numpy backend, which imports no
framework), then runs the same command once per backend in a child process with
``KERAS_BACKEND`` set, each writing its own result, and merges those into the one file the plan
names. Children run one after another, never at once, so that they do not share the machine.
With ``--shard i/N`` the parent splits the whole plan, every backend's cases together
(``bench.throughput.shard``), and runs only the backends with cases in the shard, each child told
its cases (``CASES_ENV``); the merged file records the shard.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import backends, processes
from bench.throughput.plan import OPTIONS, ThroughputPlan, dest, out_path

# options the parent handles itself rather than passing on
_PARENT_ONLY = ("--backend", "--bench-out", "--plot", "--xla", "--compile", "--shard")
# With --shard, the parent splits the whole plan (all backends) and tells each child which of its
# backend's cases are in the shard: a JSON list of case ids in this variable (``assigned``).
CASES_ENV = "CNN_BENCH_CASES"


def child_argv(opts: dict, backend: str, out: Path, pytest_args: list[str]) -> list[str]:
    """The command line that runs ``backend``'s part of the plan and writes its result to ``out``."""
    argv = [sys.executable, "-m", "bench", "throughput", "--backend", backend, "--bench-out", str(out)]
    for flag, kwargs in OPTIONS.items():
        value = opts.get(dest(flag))
        if flag in _PARENT_ONLY or value is None or value == kwargs.get("default"):
            continue
        argv += [flag] if kwargs.get("action") == "store_true" else [flag, str(value)]
    flag = backends.load(backend).COMPILE_FLAG  # --xla or --compile: only the backend that reads it gets it
    if opts.get(dest(flag)) is not None:
        argv += [flag, str(opts[dest(flag)])]
    return argv + (["--", *pytest_args] if pytest_args else [])


def run(plan: ThroughputPlan, opts: dict, pytest_args: list[str]) -> int:
    """Run each backend's part in its own process, merge the results, print the merged table.
    Returns the worst exit status of the children (2 if any was a usage error)."""
    from bench.io import read_json, write_json
    from bench.throughput import summary

    statuses, docs = [], []
    with tempfile.TemporaryDirectory(prefix="cnn-bench-backends-") as tmp, processes.sigterm_exits():
        for backend, env in _children(plan):
            out = Path(tmp) / f"{backend}.json"
            print(f"cnn-bench: --backend {backend} in its own process", flush=True)
            status = subprocess.run(
                child_argv(opts, backend, out, pytest_args), env=env, **processes.child_options()
            ).returncode
            statuses.append(status)
            if out.exists():
                docs.append(read_json(out, what="result file"))
    if not docs:
        return max(statuses)
    merged = merge(docs, plan)
    print()
    print(summary.table(merged, summary.load_baselines()))
    path = out_path(plan.bench_out, plan.device)
    if path is not None:
        print(
            f"cnn-bench: wrote {write_json(path, merged)} (backends: {', '.join(d['harness']['backend'] for d in docs)})"
        )
    if plan.plot:
        from bench.throughput.report import plot

        print(f"cnn-bench: wrote {plot([merged], plan.plot)}")
    return 2 if 2 in statuses else max(statuses)


def _children(plan: ThroughputPlan) -> list[tuple[str, dict]]:
    """Each backend to run and its child's environment. With --shard, only the backends with cases in
    the shard, each told its cases; an empty shard runs the first backend on none, for its (empty) result."""
    base = {k: v for k, v in os.environ.items() if k != CASES_ENV}
    if plan.shard is None:
        return [(b, {**base, "KERAS_BACKEND": b}) for b in plan.backends]
    mine = {b: [c.id for c in plan.cases if c.backend == b] for b in plan.backends}
    chosen = [b for b in plan.backends if mine[b]] or list(plan.backends[:1])
    return [(b, {**base, "KERAS_BACKEND": b, CASES_ENV: json.dumps(mine[b])}) for b in chosen]


def assigned(plan: ThroughputPlan) -> ThroughputPlan:
    """In a child of a sharded run, ``plan`` cut to the cases its parent assigned (``CASES_ENV``)."""
    text = os.environ.get(CASES_ENV)
    if text is None:
        return plan
    ids = set(json.loads(text))
    return dataclasses.replace(plan, cases=tuple(c for c in plan.cases if c.id in ids))


def merge(docs: list[dict], plan: ThroughputPlan | None = None) -> dict:
    """One result document from several backends' documents of the same plan (``merge.join``): their
    benchmarks and errors in order, each backend's machine info and harness section kept under its
    name; with ``plan``, its options and shard."""
    from bench.throughput.merge import join

    names = [d["harness"]["backend"] for d in docs]
    merged = join(docs, names, "backends")
    merged["machine_info"]["backend"] = merged["harness"]["backend"] = ",".join(names)
    if plan is not None:
        merged["harness"]["options"] = plan.to_dict()
        if plan.shard is not None:
            merged["harness"]["shard"] = plan.shard.record()
    return merged
