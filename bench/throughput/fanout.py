"""Several Keras backends in one throughput run: one process per backend, one merged result file.

Keras fixes its backend when it is imported, so ``python -m bench throughput --backend
tensorflow,jax,torch`` checks the whole plan here (on Keras's numpy backend, which imports no
framework), then runs the same command once per backend in a child process with
``KERAS_BACKEND`` set, each writing its own result, and merges those into the one file the plan
names. Children run one after another, never at once, so that they do not share the machine.
With ``--shard i/N`` the parent splits the whole plan, every backend's cases together
(``bench.throughput.shard``), and runs only the backends with cases in the shard, each child told
its cases (``CASES_ENV``); the merged file records the shard. A child that dies (a signal, the OOM
killer) fails the run, each of its cases without a result an error naming how; Ctrl-C or SIGTERM
stops the running child and writes what finished, marked partial (exit 130 or 143).
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import backends, processes
from bench.throughput import isolate
from bench.throughput.plan import NOTHING_MEASURED, OPTIONS, ThroughputPlan, dest, out_file, plot_file

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
    Returns 2 if a child was a usage error, 1 if one died (a signal, an abort: each of its cases
    without a result gets an error entry naming how), else the worst of the children's statuses.
    Ctrl-C (130) or SIGTERM (143) stops the running child, and the merged file holds what finished,
    marked partial."""
    from bench.throughput import summary

    parts: list[dict] = []
    statuses: list[int] = []
    stopped = None  # 130 or 143 once interrupted
    with tempfile.TemporaryDirectory(prefix="cnn-bench-backends-") as tmp:
        filler = isolate.Sweep(plan, pytest_args, Path(tmp))  # a result document for a child that wrote none
        for backend, env in _children(plan):
            out = Path(tmp) / f"{backend}.json"
            print(f"cnn-bench: --backend {backend} in its own process", flush=True)
            status, peak_rss, stopped = _wait(child_argv(opts, backend, out, pytest_args), env)
            if stopped is None and status in (isolate.INTERRUPTED, -signal.SIGINT):
                stopped = isolate.INTERRUPTED  # Ctrl-C reached the child alone
            died = stopped is None and status not in (*isolate.PYTEST_ENDINGS, 2)
            if died:
                print(f"cnn-bench: {_ended(backend, status, peak_rss)}", file=sys.stderr)
            statuses.append(stopped or status)
            planned = [c for c in plan.cases if c.backend == backend]
            if (part := _part(out, backend, planned, status if died else None, peak_rss, filler)) is not None:
                parts.append(part)
            if stopped is not None:
                break
    if not parts:
        if stopped is None and _worst(statuses) in (0, isolate.NO_TESTS):
            print(f"cnn-bench: {NOTHING_MEASURED}; no result file was written", file=sys.stderr)
        return stopped or _worst(statuses) or 1
    merged = merge(parts, plan)
    if stopped is not None:
        merged["partial"] = merged["harness"]["partial"] = True
    print()
    print(summary.table(merged, summary.load_baselines()))
    out = out_file(plan.bench_out, plan.device)
    if out is not None:
        print(
            f"cnn-bench: wrote {out.write_json(merged)} (backends: {', '.join(d['harness']['backend'] for d in parts)})"
        )
    if stopped is not None:
        print("interrupted: the result file holds the finished cases, marked partial", file=sys.stderr)
        return stopped
    if plan.plot:
        print(summary.plot_line(merged, plot_file(plan, out)))
    worst = _worst(statuses)
    return 1 if worst == 0 and summary.unmeasured(merged) else worst


def _wait(argv: list[str], env: dict) -> tuple[int, int | None, int | None]:
    """Run one child to its end: (its status, its peak RSS, None), or after Ctrl-C or SIGTERM here, once
    the child has stopped (given ``isolate.GRACE_S`` to write its finished cases), (its status, its peak
    RSS, 130 or 143)."""
    proc = subprocess.Popen(argv, env=env, **processes.child_options())
    try:
        with processes.sigterm_exits():
            return (*isolate._reap(proc, block=True), None)
    except KeyboardInterrupt:
        return (*isolate.stop(proc), isolate.INTERRUPTED)
    except SystemExit as e:  # SIGTERM (bench.processes): the child ends as after Ctrl-C, keeping its cases
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        return (*isolate.stop(proc), e.code if isinstance(e.code, int) else 128 + signal.SIGTERM)
    finally:
        if proc.returncode is None:  # an error here: never leave a child running
            proc.kill()
            isolate._reap(proc, block=True)


def _part(out: Path, backend: str, planned: list, died: int | None, peak_rss: int | None, filler) -> dict | None:
    """A child's result document; when it died (``died``: its status, a signal or one pytest does not
    end with), with an error entry for each of its planned cases with no result, naming how it ended."""
    from bench.io import read_json
    from bench.throughput.merge import case_id

    doc = read_json(out, what="result file") if out.exists() else None
    if died is None:
        return doc
    done = {case_id(r) for r in [*(doc or {}).get("benchmarks", []), *((doc or {}).get("errors") or [])]}
    how = _ended(backend, died, peak_rss)
    errors = [
        {
            "id": c.id,
            "case": c.to_dict(),
            "device": filler.plan.device,
            "device_class": ((doc or {}).get("harness") or {}).get("device_class") or filler._device_class(),
            "error": how,
            "name": f"test_throughput[{c.id}]",
            "fullname": f"test_throughput[{c.id}]",
            "exit_status": died,
            "peak_rss_bytes": peak_rss,
        }
        for c in planned
        if c.id not in done
    ]
    return isolate.combine([doc or filler._stub(backend)], errors)  # every case has its result: not partial


def _ended(backend: str, status: int, peak_rss: int | None) -> str:
    """``the jax process was killed by SIGKILL (out of memory?); peak RSS 3.10 GiB``, or ``... exited with status 3``."""
    return f"the {backend} process {'was ' if status < 0 else ''}{isolate.describe(status, peak_rss)}"


def _worst(statuses: list[int]) -> int:
    """The run's status from its children's: 2 for a usage error, 1 for a child that died, else the worst."""
    if 2 in statuses:
        return 2
    return max((s if s in isolate.PYTEST_ENDINGS else 1) for s in statuses) if statuses else 0


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
    name; with ``plan``, its options and shard. At the top level, ``machine_info`` and ``harness``
    keep only what every backend recorded alike (the Python, the CPU, the device class), so that no
    field there describes one backend as if it were all (its versions, its strategy): each backend's
    are under ``backends``; ``produced_by`` names every backend."""
    from bench.environment import machine_line
    from bench.throughput.merge import join

    names = [d["harness"]["backend"] for d in docs]
    merged = join(docs, names, "backends")
    for key in ("machine_info", "harness"):
        parts = [d.get(key) or {} for d in docs]
        top = merged[key]
        for field in [k for k in top if k not in ("backends", "partial")]:
            if any(p.get(field) != top[field] for p in parts[1:]):
                del top[field]
    merged["machine_info"]["backend"] = merged["harness"]["backend"] = ",".join(names)
    merged["harness"]["produced_by"] = machine_line(merged["machine_info"])
    if plan is not None:
        merged["harness"]["options"] = plan.to_dict()
        if plan.shard is not None:
            merged["harness"]["shard"] = plan.shard.record()
    return merged
