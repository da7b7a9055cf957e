"""One job over several workers (hosts, or processes on one host): the cluster, and a lost worker in one line.

A cluster is its workers' addresses in task order; worker 0 is the chief, the only worker that writes
results, checkpoints and TensorBoard logs. It comes from, first found first:

- ``--cluster HOST:PORT,HOST:PORT,... --task-index I``: this process is worker I. On tensorflow it
  writes ``TF_CONFIG`` (MultiWorkerMirroredStrategy reads it); on jax worker 0's address is
  jax.distributed's coordinator, the count its process count and I its process id;
- ``TF_CONFIG`` in the environment, ``{"cluster": {"worker": ["h0:p", "h1:p"]}, "task": {"type":
  "worker", "index": 1}}`` (a ``chief`` job counts as worker 0, before the ``worker`` tasks), on
  either backend;
- ``--cluster auto`` (jax): ``jax.distributed.initialize()`` finds the cluster itself (TPU pod
  slices, Slurm, Open MPI).

``--workers N`` (``bench.launch``) starts the N workers of one job on this machine, on loopback.

Timeouts, one number, ``--worker-timeout S`` (default 60 s), given to the engines: a worker that sends
no heartbeat to the coordination service (tensorflow's, on worker 0; jax.distributed's, likewise)
for S seconds is declared dead, the collectives of the others are aborted and they stop. A worker
that dies outright is seen at once by another waiting on it inside a collective (the connection
resets); between a step's transfers, e.g. in the collectives that end an epoch, only its heartbeat
tells, up to S later. At the start,
every worker must join within ``JOIN_FACTOR`` x S (``joining``: tensorflow's join waits without
end, jax's aborts the process). The surviving workers then print one line naming
the lost worker (``lost``) and exit 3 (``exit_lost``), without waiting for the engine's own shutdown
barrier, which would wait for the dead worker too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench.errors import UsageError, first_line

DEFAULT_TIMEOUT_S = 60.0
MAX_TIMEOUT_S = 86_400.0
JOIN_FACTOR = 5  # a worker may take this many timeouts to join at the start (hosts boot unevenly)
MAX_WORKERS = 1024
AUTO = "auto"
EXIT_LOST = 3  # the exit status of a worker that stopped because another was lost
TF_CONFIG_EXAMPLE = '{"cluster": {"worker": ["host0:2222", "host1:2222"]}, "task": {"type": "worker", "index": 0}}'
SOURCES = ("--cluster", "TF_CONFIG", "--cluster auto", "--workers")
_ROOT = Path(__file__).resolve().parent.parent  # where ``bench`` imports from, for the join watchdog


@dataclasses.dataclass(frozen=True)
class Cluster:
    """This process's place in a multi-worker job."""

    addresses: tuple[str, ...]  # host:port per worker, in task order; empty with --cluster auto
    task_index: int | None  # this worker; None with --cluster auto until jax.distributed says
    source: str  # one of SOURCES
    timeout_s: float = DEFAULT_TIMEOUT_S
    count: int | None = None  # workers; None with --cluster auto until jax.distributed says
    tf_config: str | None = None  # TF_CONFIG as given in the environment (tensorflow reads it as it is)

    def __post_init__(self):
        if self.count is None and self.addresses:
            object.__setattr__(self, "count", len(self.addresses))

    @property
    def auto(self) -> bool:
        return not self.addresses

    @property
    def is_chief(self) -> bool:
        return self.task_index == 0

    @property
    def join_timeout_s(self) -> float:
        return JOIN_FACTOR * self.timeout_s

    @property
    def coordinator(self) -> str | None:
        """Worker 0's address: jax.distributed's coordinator and tensorflow's coordination service leader."""
        return self.addresses[0] if self.addresses else None

    def joined(self, task_index: int, count: int) -> Cluster:
        """The cluster once the engine has said where this process is (``--cluster auto``)."""
        return dataclasses.replace(self, task_index=int(task_index), count=int(count))

    def name(self, index: int) -> str:
        """``worker 1 (10.0.0.2:2222)``: how a line names a worker."""
        return f"worker {index} ({self.addresses[index]})" if index < len(self.addresses) else f"worker {index}"

    def tf_config_json(self) -> str:
        """The TF_CONFIG that tells tensorflow this cluster: the environment's own, or one written from --cluster."""
        if self.tf_config is not None:
            return self.tf_config
        return json.dumps(
            {"cluster": {"worker": list(self.addresses)}, "task": {"type": "worker", "index": self.task_index}}
        )

    def record(self, global_batch: int | None = None) -> dict:
        """What a result records about the job it came from."""
        doc = {
            "workers": self.count,
            "task_index": self.task_index,
            "chief": 0,
            "addresses": list(self.addresses),
            "source": self.source,
            "worker_timeout_s": self.timeout_s,
            "join_timeout_s": self.join_timeout_s,
        }
        if global_batch is not None and self.count:
            doc.update(global_batch=global_batch, per_worker_batch=global_batch // self.count)
        return doc


def check_timeout(value: float) -> float:
    """``value`` if it is a usable ``--worker-timeout``, else a one-line ``UsageError``."""
    if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 < value <= MAX_TIMEOUT_S):
        raise UsageError(f"--worker-timeout {value} is invalid; expected seconds above 0 and up to {MAX_TIMEOUT_S:g}")
    return float(value)


def check_workers(value: int) -> int:
    """``value`` if it is a usable ``--workers``, else a one-line ``UsageError``."""
    if not 1 <= value <= MAX_WORKERS:
        raise UsageError(f"--workers {value} is invalid; expected 1 to {MAX_WORKERS} worker processes on this machine")
    return value


def resolve(
    cluster: str | None,
    task_index: int | None,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    workers: int = 1,
    environ=None,
) -> Cluster | None:
    """This process's cluster from ``--cluster``/``--task-index``, else ``TF_CONFIG`` in ``environ``;
    None for a one-process run (and for ``--workers N``: the launcher gives each worker its own
    ``--cluster``). Every value is checked, with a one-line ``UsageError``."""
    environ = os.environ if environ is None else environ
    timeout_s = check_timeout(timeout_s)
    check_workers(workers)
    if workers > 1 and cluster is not None:
        raise UsageError(
            f"--workers {workers} starts a job's workers on this machine; --cluster {cluster!r} makes this "
            "process one worker of a job: give one of them"
        )
    if cluster is None:
        if task_index is not None:
            raise UsageError(f"--task-index {task_index} needs --cluster HOST:PORT,HOST:PORT,... (the job's workers)")
        text = environ.get("TF_CONFIG")
        if workers > 1 or not text or not text.strip():
            return None
        addresses, index = from_tf_config(text)
        if len(addresses) < 2:
            return None  # a one-worker TF_CONFIG is a one-process run
        return Cluster(addresses, index, "TF_CONFIG", timeout_s, tf_config=text)
    if cluster.strip() == AUTO:
        if task_index is not None:
            raise UsageError(f"--task-index {task_index} does not go with --cluster auto: the engine finds it")
        return Cluster((), None, "--cluster auto", timeout_s)
    addresses = parse_addresses(cluster)
    if task_index is None:
        raise UsageError(
            f"--cluster names {len(addresses)} workers; --task-index 0 to {len(addresses) - 1} says which this process is"
        )
    if not 0 <= task_index < len(addresses):
        raise UsageError(f"--task-index {task_index} is invalid; --cluster names workers 0 to {len(addresses) - 1}")
    return Cluster(addresses, task_index, "--cluster", timeout_s)


def check_job(what: str, *, backend: str, device: str, cpu_replicas: bool) -> None:
    """What no multi-worker job does, as one-line ``UsageError``s naming ``what`` made it one
    (``--workers 2``, ``--cluster``, ``TF_CONFIG``): torch, a TPU (a pod slice is driven otherwise),
    a CPU split into logical devices."""
    if backend == "torch":
        raise UsageError(
            f"{what}: a multi-worker job is tensorflow's (MultiWorkerMirroredStrategy) or jax's; not torch"
        )
    if device == "tpu":
        raise UsageError(
            f"{what}: a TPU pod slice is one TPUStrategy on tensorflow (--device tpu --tpu NAME, one process), "
            "or --cluster auto on every host on jax"
        )
    if cpu_replicas:
        raise UsageError(f"--cpu-replicas with {what}: each worker runs on its own devices; give one of them")


def parse_addresses(text: str, *, what: str = "--cluster") -> tuple[str, ...]:
    """``HOST:PORT,HOST:PORT,...`` (two or more, distinct) as a tuple, or a one-line ``UsageError``."""
    parts = [p.strip() for p in str(text).split(",")]
    if not any(parts):
        raise UsageError(f"{what} {text!r} is invalid; expected HOST:PORT,HOST:PORT,... (worker 0 first) or auto")
    for p in parts:
        _check_address(p, what)
    if len(parts) < 2:
        raise UsageError(f"{what} {text!r} names 1 worker; a job needs 2 or more (run without {what} for one)")
    if len(parts) > MAX_WORKERS:
        raise UsageError(f"{what} names {len(parts)} workers; at most {MAX_WORKERS}")
    dup = sorted({p for p in parts if parts.count(p) > 1})
    if dup:
        raise UsageError(f"{what} {text!r} names {dup[0]} twice; each worker needs its own HOST:PORT")
    return tuple(parts)


_ADDRESS = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(?P<port>[0-9]{1,5})$")


def _check_address(text: str, what: str) -> str:
    m = _ADDRESS.match(text)
    if not m:
        raise UsageError(f"{what}: {text!r} is not HOST:PORT (e.g. 10.0.0.1:2222, [::1]:2222)")
    if not 1 <= int(m["port"]) <= 65535:
        raise UsageError(f"{what}: {text!r} has port {m['port']}; expected 1 to 65535")
    return text


def from_tf_config(text: str) -> tuple[tuple[str, ...], int]:
    """(addresses in task order, this worker's index) from a ``TF_CONFIG`` value, or a one-line ``UsageError``."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(
            f"TF_CONFIG is not valid JSON ({e.msg} at character {e.pos}); expected {TF_CONFIG_EXAMPLE}"
        ) from None
    jobs = doc.get("cluster") if isinstance(doc, dict) else None
    if not isinstance(jobs, dict) or not jobs:
        raise UsageError(f"TF_CONFIG has no 'cluster' object of jobs; expected {TF_CONFIG_EXAMPLE}")
    unknown = sorted(set(jobs) - {"chief", "worker"})
    if unknown:
        raise UsageError(
            f"TF_CONFIG job {unknown[0]!r} is not supported: MultiWorkerMirroredStrategy runs 'chief' and 'worker' "
            "tasks (no parameter servers or evaluators)"
        )
    lists = {}
    for job in ("chief", "worker"):
        tasks = jobs.get(job, [])
        if not isinstance(tasks, list) or not all(isinstance(t, str) for t in tasks):
            raise UsageError(
                f"TF_CONFIG cluster {job!r} must be a list of 'HOST:PORT' strings, not {json.dumps(tasks)[:80]}"
            )
        lists[job] = [_check_address(t, f"TF_CONFIG {job}") for t in tasks]
    if len(lists["chief"]) > 1:
        raise UsageError(f"TF_CONFIG names {len(lists['chief'])} chiefs; a job has at most one")
    addresses = tuple(lists["chief"] + lists["worker"])
    if len(set(addresses)) != len(addresses):
        raise UsageError("TF_CONFIG names one HOST:PORT twice; each worker needs its own")
    task = doc.get("task")
    kind = task.get("type") if isinstance(task, dict) else None
    index = task.get("index", 0) if isinstance(task, dict) else None
    if kind not in jobs or not isinstance(index, int) or isinstance(index, bool):
        raise UsageError(
            f'TF_CONFIG \'task\' must name this worker, e.g. {{"type": "worker", "index": 0}}; got {json.dumps(task)[:80]}'
        )
    if not 0 <= index < len(lists[kind]):
        raise UsageError(
            f"TF_CONFIG task index {index} is invalid; its {kind!r} job has tasks 0 to {len(lists[kind]) - 1}"
        )
    return addresses, (0 if kind == "chief" else len(lists["chief"]) + index)


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct ports free on ``host`` now (held open together while they are chosen)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def local(n: int, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> list[Cluster]:
    """The clusters of ``n`` workers on this machine's loopback, one per worker (free ports)."""
    addresses = tuple(f"127.0.0.1:{p}" for p in free_ports(n))
    return [Cluster(addresses, i, "--workers", timeout_s) for i in range(n)]


# --- a lost worker, in one line ---------------------------------------------------------------

# what the engines say when a peer is gone: a collective aborted, a reset or closed connection, a missed heartbeat
_LOST = re.compile(
    r"Collective ops is aborted|stopped sending heartbeats|heartbeat timeout|Connection reset by peer|"
    r"Connection closed by peer|failed to connect to all addresses|Socket closed|CoordinationService/Heartbeat|"
    r"Gloo \w+ failed|coordination service|DistributedRuntime|UNAVAILABLE",
    re.IGNORECASE,
)
_REMOTE = re.compile(r"remote target /job:(chief|worker)/(?:replica:\d+/)?task:(\d+)")
_ADDR = re.compile(r"ipv[46]:\[?([0-9A-Za-z.:_-]+?)\]?:(\d+)\b")
_UNHEALTHY = re.compile(r"stopped sending heartbeats\)?:?\s*((?:(?:/job:\w+/(?:replica:\d+/)?task:)?\d+[\s,]*)+)")


def lost(e: BaseException, cluster: Cluster | None) -> str | None:
    """The one line for an error that says a peer of this worker is gone (None for any other error)."""
    if cluster is None or not cluster.count or cluster.count < 2:
        return None
    text = f"{type(e).__name__}: {e}"
    if not _LOST.search(text):
        return None
    peers = _named_peers(text, cluster)
    me = cluster.task_index
    if not peers and re.search(r"CoordinationService/Heartbeat|coordination service", text) and me != 0:
        peers = [0]  # the coordination service runs on worker 0: this worker lost it
    if not peers and cluster.count == 2 and me is not None:
        peers = [1 - me]  # the only peer there is
    who = ", ".join(cluster.name(i) for i in peers) if peers else "a worker"
    return (
        f"the job lost {who} of {cluster.count}: this is worker {me}, stopping "
        f"(restart every worker to resume from the last checkpoint); {first_line(e, limit=160)}"
    )


def _named_peers(text: str, cluster: Cluster) -> list[int]:
    """The workers other than this one that ``text`` says are gone, the most specific evidence first:
    a heartbeat list of unhealthy tasks, then a peer's address, then the remote task of a failed call."""
    chief = _has_chief_job(cluster)
    found: list[int] = []

    def add(index: int) -> None:
        if index != cluster.task_index and 0 <= index < (cluster.count or 0) and index not in found:
            found.append(index)

    m = _UNHEALTHY.search(text)
    if m:
        for job, task in re.findall(r"(?:/job:(\w+)/(?:replica:\d+/)?task:)?(\d+)", m[1]):
            add(_index(job, int(task), chief) if job else int(task))
        return found
    for host, port in _ADDR.findall(text):
        if f"{host}:{port}" in cluster.addresses:
            add(cluster.addresses.index(f"{host}:{port}"))
    if found:
        return found
    for job, task in _REMOTE.findall(text):
        add(_index(job, int(task), chief))
    return found


def _has_chief_job(cluster: Cluster) -> bool:
    if cluster.tf_config is None:
        return False
    try:
        return bool(json.loads(cluster.tf_config)["cluster"].get("chief"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return False


def _index(job: str, task: int, chief: bool) -> int:
    """Our worker index of tensorflow's ``/job:JOB/task:TASK`` (a chief job is worker 0)."""
    if job == "chief":
        return 0
    return task + (1 if chief else 0)


@contextlib.contextmanager
def joining(cluster: Cluster, *, every_worker_listens: bool):
    """Bound the engine's join to ``cluster.join_timeout_s``: past it, a watchdog process prints one
    line naming the workers that do not answer at their address (on tensorflow every worker serves
    its own; on jax only worker 0, the coordinator: ``every_worker_listens=False``) and kills this
    one (SIGKILL). A process, not a thread: tensorflow waits for its peers holding the GIL, and jax
    aborts the process at its own initialization timeout (given a minute more than ours)."""
    args = json.dumps([os.getpid(), cluster.join_timeout_s, dataclasses.asdict(cluster), every_worker_listens])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(_ROOT), os.environ.get("PYTHONPATH")) if p)}
    code = "import json, sys; from bench.cluster import _watchdog; _watchdog(*json.loads(sys.argv[1]))"
    dog = subprocess.Popen([sys.executable, "-c", code, args], env=env, stdin=subprocess.DEVNULL)
    try:
        yield
    finally:
        dog.kill()
        dog.wait()


def _watchdog(pid: int, seconds: float, fields: dict, every_worker_listens: bool) -> None:
    """``joining``'s watchdog: after ``seconds``, unless its parent ``pid`` has gone (or killed it), one line and SIGKILL."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        if os.getppid() != pid:
            return  # the worker is gone: nothing to stop
    cluster = Cluster(**{**fields, "addresses": tuple(fields["addresses"])})
    print(f"error: {_join_failure(cluster, every_worker_listens)}", file=sys.stderr, flush=True)
    os.kill(pid, signal.SIGKILL)


def _join_failure(cluster: Cluster, every_worker_listens: bool) -> str:
    me = cluster.task_index
    if cluster.auto:
        silent = []
    else:
        asked = [i for i in range(len(cluster.addresses)) if i != me and (every_worker_listens or i == 0)]
        silent = [i for i in asked if not _answers(cluster.addresses[i])]
    who = ", ".join(cluster.name(i) for i in silent) if silent else "some worker (the ones that answer are waiting)"
    return (
        f"the job's {cluster.count or ''} workers did not all join within {cluster.join_timeout_s:g} s "
        f"({JOIN_FACTOR} x --worker-timeout): no answer from {who}; this is worker {me}, stopping"
    ).replace("job's  workers", "job's workers")


def _answers(address: str, timeout_s: float = 2.0) -> bool:
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
        return True
    except OSError:
        return False


def exit_lost(message: str) -> None:
    """Print ``message`` as the one line and end the process now, with ``EXIT_LOST``: the engines'
    own shutdown waits for every worker at a barrier (jax aborts the process when it fails), and a
    lost worker never arrives there."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(EXIT_LOST)
