"""``--workers N``: the N workers of one job started on this machine, on loopback, and watched.

Each worker is the same command in a process of its own, with ``--cluster`` naming every worker's
127.0.0.1 port (free ones, chosen here) and ``--task-index`` its own; worker 0's output is this
command's, the others' go to log files. The engines' own timeouts (``bench.cluster``) make the
surviving workers stop when one dies; this parent is the backstop: when a worker fails, the others
get ``--worker-timeout`` seconds to stop by themselves, then are killed (SIGKILL: jax takes SIGTERM
for a preemption notice and carries on), and one line names the worker that failed first.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench import cluster as cluster_mod
from bench import processes

POLL_S = 0.2


@dataclasses.dataclass
class Outcome:
    """How a job's workers ended: each one's exit status, and the one line when one failed first."""

    statuses: list[int | None]
    failure: str | None = None
    seconds: float = 0.0

    @property
    def status(self) -> int:
        """0 when every worker succeeded; 2 when every worker refused its options; else 1."""
        if all(s == 0 for s in self.statuses):
            return 0
        if all(s == 2 for s in self.statuses):
            return 2
        return 1


def run(
    argv_for: Callable[[cluster_mod.Cluster], list[str]],
    n: int,
    *,
    timeout_s: float = cluster_mod.DEFAULT_TIMEOUT_S,
    env: dict | None = None,
    label: str = "job",
    log: Callable[[str], None] | None = None,
) -> Outcome:
    """Start ``n`` workers (``argv_for(cluster)`` is worker ``cluster.task_index``'s command line), wait
    for them all, and return how they ended; a failure is also printed as one line on stderr."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    clusters = cluster_mod.local(n, timeout_s=timeout_s)
    env = {**(env if env is not None else os.environ)}
    env.pop("TF_CONFIG", None)  # each worker's --cluster says it all
    with tempfile.TemporaryDirectory(prefix="cnn-bench-workers-") as tmp, processes.sigterm_exits():
        logs = [None] + [Path(tmp) / f"worker-{i}.log" for i in range(1, n)]
        log(
            f"cnn-bench: {label} on {n} workers on this machine ({', '.join(clusters[0].addresses)}); "
            f"worker 0 writes, the others log to {tmp}"
        )
        procs = []
        start = time.monotonic()
        try:
            for c, path in zip(clusters, logs):
                out = open(path, "wb") if path else None  # noqa: SIM115 - closed when the process ends
                procs.append(
                    subprocess.Popen(
                        argv_for(c),
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT if out else None,
                        **processes.child_options(),
                    )
                )
                if out:
                    out.close()  # the child holds its own descriptor
            outcome = _watch(procs, clusters[0], logs, timeout_s, start)
        except BaseException:
            _kill(procs)
            raise
    if outcome.failure:
        log(f"error: {outcome.failure}")
    return outcome


def _watch(procs, c: cluster_mod.Cluster, logs, timeout_s: float, start: float) -> Outcome:
    """Wait for every process; after the first failure, give the rest ``timeout_s`` then kill them."""
    first: tuple[int, int, float] | None = None  # (worker, status, seconds)
    deadline = None
    while True:
        statuses = [p.poll() for p in procs]
        now = time.monotonic()
        if first is None:
            failed = [(i, s) for i, s in enumerate(statuses) if s not in (None, 0)]
            # a worker that stopped because it lost another (EXIT_LOST) is not the cause when that other is here too
            failed.sort(key=lambda f: f[1] == cluster_mod.EXIT_LOST)
            if failed:
                first = (*failed[0], now - start)
                deadline = now + timeout_s
        if all(s is not None for s in statuses):
            break
        if deadline is not None and now > deadline:
            _kill(procs)
            statuses = [p.wait() for p in procs]
            break
        time.sleep(POLL_S)
    failure = None
    if first is not None and not all(s == 2 for s in statuses):
        index, status, seconds = first
        still = [i for i, s in enumerate(statuses) if s is not None and s < 0 and i != index]
        failure = (
            f"{c.name(index)} of {len(procs)} (pid {procs[index].pid}) {_how(status)} after {seconds:.1f} s; "
            + (f"killed worker(s) {', '.join(map(str, still))} after {timeout_s:g} s; " if still else "")
            + f"exit statuses {statuses}"
            + (f"; its last line: {_last_line(logs[index])!r}" if logs[index] else "")
        )
    return Outcome(statuses, failure, time.monotonic() - start)


def _how(status: int) -> str:
    if status < 0:
        try:
            return f"was killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"was killed by signal {-status}"
    return f"exited with status {status}"


def _last_line(path: Path | None) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except (OSError, AttributeError):
        return ""
    return lines[-1][:200] if lines else ""


def _kill(procs) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
