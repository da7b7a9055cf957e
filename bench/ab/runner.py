"""The two sides prepared (trees, environments) and timed in pairs of processes.

Each process is the side's own ``python -m bench throughput`` in the side's tree and environment,
on the selected cases for a few short rounds (compile time excluded, as in the suite), writing its
result JSON; only the median images/s of each case (and the samples behind it) is kept. Pairs come
in counterbalanced blocks of two (ABBA or BAAB, the block's first order drawn at random), so that a
machine that drifts during the run slows both sides alike and the ratio within each pair cancels it.

How a pair's two processes share the machine (``--interleave``):

- ``rounds`` (the default): both run at once and take turns (``bench.throughput.turns``): one
  process works while the other waits, the turn passing at every case and every round in the order
  ABBA BAAB..., so the two sides' rounds are seconds apart and never overlap. A load that comes and
  goes over minutes, which makes one process 2-4x slower than the next on a busy 2-core machine,
  then falls on both sides of a pair alike.
- ``processes``: one after the other, as asv does. Used when either side's tree predates
  turn-taking (an older ``git:`` ref).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench import processes
from bench.ab import envs, worktree
from bench.ab.sides import Side, git, resolve
from bench.ab.verdict import pair_ratio
from bench.errors import UsageError
from bench.io import read_json
from bench.processes import child_options
from bench.throughput import turns

LABELS = ("BASE", "HEAD")
INTERLEAVE = ("rounds", "processes")
TURNS = (0, 1, 1, 0)  # which of a pair's processes gets each turn, repeated: ABBA ABBA ...


class SideFailed(UsageError):
    """A side's processes failed before any pair measured it: the side cannot run at all."""

    def __init__(self, label: str, message: str):
        super().__init__(message)
        self.label = label


@dataclasses.dataclass
class Prepared:
    """A side ready to run: its tree, interpreter, environment variables, and what they are."""

    label: str
    side: Side
    tree: Path
    python: str
    env: dict[str, str]
    environment: dict  # the record written to the A/B JSON


def prepare(label: str, side: Side, repo: Path, stack: contextlib.ExitStack, *, log=print) -> Prepared:
    """Resolve ``side`` (a bad ref or an unresolvable version is a ``UsageError``) and pin its
    ``NAME==latest``, check out its tree into a worktree that ``stack`` removes, and build or reuse
    its environment."""
    side = envs.pin_latest(resolve(side, repo), log=log)
    tree = repo if side.ref is None else stack.enter_context(worktree.checkout(repo, side.commit))
    python, packages, env_record = sys.executable, None, {"python": sys.executable, "cached": None}
    if side.packages:
        env_record = envs.ensure(side, log=log)
        python, packages = env_record["python"], env_record["packages"]
    env = {"PYTHONPATH": str(tree), "TF_CPP_MIN_LOG_LEVEL": "2"}
    if side.backend:
        env["KERAS_BACKEND"] = side.backend
    commit = side.commit or git(repo, "rev-parse", "HEAD", check=False) or None
    dirty = None if side.ref else bool(git(repo, "status", "--porcelain", "--untracked-files=no", check=False))
    environment = {
        "side": side.to_dict(),
        "tree": "working tree" if side.ref is None else f"worktree of {side.commit}",
        "commit": commit,
        "dirty": dirty,
        "python": python,
        "environment_hash": env_record.get("hash"),
        "environment_cached": env_record.get("cached"),
        "packages": packages,
    }
    log(f"cnn-bench ab: {label} = {side.text} ({environment['tree']}, python {python})")
    return Prepared(label, side, tree, python, env, environment)


def has(prepared: Prepared, module: str) -> bool:
    """Whether the side's tree has ``bench/throughput/<module>.py`` (an older ``git:`` ref may not)."""
    return (prepared.tree / "bench" / "throughput" / f"{module}.py").is_file()


def child_argv(prepared: Prepared, throughput_args: list[str], out: Path, cases: list[str] | None) -> list[str]:
    """The command one process runs: the side's own throughput command on the chosen cases, in one
    process (``--isolate none``, where the side knows the flag: its cases are timed, not guarded)."""
    argv = [prepared.python, "-m", "bench", "throughput", *throughput_args, "--bench-out", str(out)]
    if has(prepared, "isolate"):
        argv += ["--isolate", "none"]
    if prepared.side.backend:
        argv += ["--backend", prepared.side.backend]
    pytest_args = ["-q", "-p", "no:cacheprovider"]
    if cases:
        pytest_args += ["-k", " or ".join(cases)]
    return [*argv, "--", *pytest_args]


def case_key(case_id: str, *, drop_backend: bool) -> str:
    """A case's name common to both sides: its id, without the backend and compilation labels when
    the sides run different backends (each backend has its own default compilation)."""
    if not drop_backend:
        return case_id
    return re.sub(r"-(?:xla|compile)_\w+?(-(?:synthetic|real))-\w+$", r"\1", case_id)


def measure(
    prepared: Prepared, throughput_args: list[str], out: Path, *, cases=None, drop_backend=False, timeout=math.inf
) -> dict:
    """Run one process of ``prepared``; its per-case medians and samples (``{"cases": {key: {...}}}``),
    the load average before it, its wall time and exit status. Its output goes to ``out``'s ``.log``.
    A process still running after ``timeout`` seconds is killed and recorded as an error."""
    argv = child_argv(prepared, throughput_args, out, cases)
    out.unlink(missing_ok=True)  # an earlier run's result (a rerun into the same --out) is not this process's
    load = list(os.getloadavg())
    t0 = time.perf_counter()
    with open(out.with_suffix(".log"), "w") as log:
        proc = subprocess.Popen(
            argv,
            cwd=prepared.tree,
            env={**os.environ, **prepared.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            **child_options(),
        )
        try:
            status, killed = proc.wait(timeout=None if math.isinf(timeout) else timeout), None
        except subprocess.TimeoutExpired:
            proc.kill()
            status, killed = proc.wait(), timeout
        finally:  # interrupted (Ctrl-C, ``exit_on_sigterm``): the process must not run on alone
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return _record(prepared, out, status, load, time.perf_counter() - t0, drop_backend=drop_backend, timeout=killed)


def measure_interleaved(
    order: list[Prepared],
    throughput_args: list[str],
    outs: list[Path],
    *,
    cases=None,
    drop_backend=False,
    timeout=math.inf,
) -> list[dict]:
    """Run a pair's two processes at once, taking turns (``bench.throughput.turns``, ``give_turns``):
    each works only while the other waits, the turn passing ABBA... from ``order[0]``. Returns their
    records, as ``measure`` does (``wall_s``: from the pair's start to the process's exit); a process
    that exits early leaves the other to finish alone. Processes still running ``timeout`` seconds
    after the pair's start are killed and recorded as errors."""
    procs, to_child, from_child, logs, walls = [], [], [], [], []
    for out in outs:
        out.unlink(missing_ok=True)  # an earlier run's result (a rerun into the same --out) is not this pair's
    load = list(os.getloadavg())
    t0 = time.perf_counter()
    try:
        for prepared, out in zip(order, outs, strict=True):
            child_read, runner_write = os.pipe()
            runner_read, child_write = os.pipe()
            log = open(out.with_suffix(".log"), "w")  # noqa: SIM115 (closed below, with the process)
            env = {**os.environ, **prepared.env, turns.ENV: f"{child_read},{child_write}"}
            argv = child_argv(prepared, throughput_args, out, cases)
            procs.append(
                subprocess.Popen(
                    argv,
                    cwd=prepared.tree,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    pass_fds=(child_read, child_write),
                    **child_options(),
                )
            )
            os.close(child_read)
            os.close(child_write)
            to_child.append(runner_write)
            from_child.append(runner_read)
            logs.append(log)
        walls = give_turns(procs, to_child, from_child, deadline=t0 + timeout)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for fd in (*to_child, *from_child):
            os.close(fd)
        for log in logs:
            log.close()
    return [
        {
            **_record(
                p,
                out,
                proc.returncode,
                load,
                (time.perf_counter() if wall is None else wall) - t0,
                drop_backend=drop_backend,
                timeout=timeout if wall is None else None,
            ),
            "interleaved": True,
        }
        for p, out, proc, wall in zip(order, outs, procs, walls, strict=True)
    ]


def give_turns(
    procs: list[subprocess.Popen], to_child: list[int], from_child: list[int], *, deadline: float = math.inf
) -> list[float | None]:
    """Give the turn to one process at a time, ABBA... from the first, until all have exited; each
    works only while holding it. No turn is given until every process waits for its first (they start
    up at once, untimed). Returns when each exited (``time.perf_counter``); at ``deadline`` (same
    clock) the processes still running are killed, and their entries are None."""
    ended: list[float | None] = [None] * len(procs)
    try:
        waiting = [_read(fd, deadline) == turns.YIELD for fd in from_child]
        for i, w in enumerate(waiting):
            if not w:
                ended[i] = _ended(procs[i], deadline)
        for i in itertools.cycle(TURNS):
            if not any(waiting):
                break
            if not waiting[i]:
                continue
            try:
                os.write(to_child[i], turns.GO)
                waiting[i] = _read(from_child[i], deadline) == turns.YIELD
            except OSError:  # it died between turns
                waiting[i] = False
            if not waiting[i]:
                ended[i] = _ended(procs[i], deadline)
    except TimeoutError:
        for proc, end in zip(procs, ended, strict=True):
            if end is None:
                proc.kill()
                proc.wait()
    return ended


def _read(fd: int, deadline: float) -> bytes:
    """One byte from ``fd``, or ``TimeoutError`` when none comes before ``deadline``."""
    left = deadline - time.perf_counter()
    ready, _, _ = select.select([fd], [], [], None if math.isinf(left) else max(left, 0.0))
    if not ready:
        raise TimeoutError
    return os.read(fd, 1)


def _ended(proc: subprocess.Popen, deadline: float) -> float:
    left = deadline - time.perf_counter()
    try:
        proc.wait(timeout=None if math.isinf(left) else max(left, 0.0))
    except subprocess.TimeoutExpired as gone_quiet:  # closed its pipe but still runs
        raise TimeoutError from gone_quiet
    return time.perf_counter()


def _record(
    prepared: Prepared,
    out: Path,
    status: int,
    load: list,
    wall_s: float,
    *,
    drop_backend: bool,
    timeout: float | None = None,
) -> dict:
    """One process's record from its exit status and result file (an error when it was killed at
    ``timeout`` seconds, left no result, or exited non-zero other than for a case its file records as
    failed: whatever file is at ``out`` then, it is not counted)."""
    from bench.regression.throughput import results

    record = {"loadavg_before": load, "wall_s": wall_s, "returncode": status, "cases": {}}
    if timeout is not None:
        record["error"] = (
            f"{prepared.label} ({prepared.side.text}) was killed after {timeout:g} s without finishing"
            " (--process-timeout)"
        )
        return record
    doc = read_json(out, what="result file") if out.exists() else None
    # pytest's 1 with a case recorded as failed (out of memory): the file is this process's (any
    # earlier one was removed first) and that case fails by its own error; any other non-zero exit
    # is the process's error, whatever file it left
    explained = status == 1 and doc is not None and any(r["error"] for r in results(doc))
    if doc is None or (status != 0 and not explained):
        log = out.with_suffix(".log")
        tail = (log.read_text(errors="replace") if log.exists() else "").strip().splitlines()[-1:] or ["no output"]
        why = tail[0].removeprefix("error: ")[:200]
        said = "without a result" if doc is None else "(its result is not counted)"
        record["error"] = f"{prepared.label} ({prepared.side.text}) exited {status} {said}: {why}"
        return record
    harness = doc.get("harness") or {}
    record.update(device_class=harness.get("device_class"), loadavg_end=harness.get("loadavg_end"))
    record["machine_info"] = doc.get("machine_info")
    for r in results(doc):
        key = case_key(r["key"].split("/", 1)[1], drop_backend=drop_backend)
        record["cases"][key] = {"median": r["median"], "samples": r["samples"], "error": r["error"]}
    return record


def one_by_one(measure_one: Callable[[Prepared, int], dict]) -> Callable[[list[Prepared], list[int]], list[dict]]:
    """A pair's processes one after the other: ``measure_one(prepared, process_index)`` for each."""
    return lambda order, indices: [measure_one(p, i) for p, i in zip(order, indices, strict=True)]


def run_pairs(
    sides: tuple[Prepared, Prepared],
    n_pairs: int,
    measure_pair: Callable[[list[Prepared], list[int]], list[dict]],
    *,
    rng: np.random.Generator,
    start: int = 0,
    asked: list[str] | None = None,
    log=print,
) -> list[dict]:
    """``n_pairs`` pairs of processes, each ``{"pair", "order", "asked", "BASE": record, "HEAD": record}``;
    ``measure_pair([first, second], [process_index, ...])`` runs a pair's two processes (in that
    order, or taking turns from the first) and returns their records. ``asked``: the cases the
    pair was run for (None: every case), which its verdicts then count it for.

    A side whose processes fail before any pair of the run measured it (``start`` 0: the first set's
    first pairs) cannot run at all: ``SideFailed`` (a ``UsageError``) at once. A failure in a later
    pair (a grown or confirming set's) is an error of the cases it spoils; the pairs measured are kept."""
    pairs = []
    first = None
    for i in range(n_pairs):
        processes.raise_if_terminated()  # a SIGTERM whose exit was swallowed stops the run here at the latest
        if i % 2 == 0:
            first = LABELS[int(rng.integers(2))]
        else:
            first = LABELS[1 - LABELS.index(first)]  # the block's second pair in the other order
        order = [first, LABELS[1 - LABELS.index(first)]]
        pair = {"pair": start + i, "order": order, "asked": asked}
        records = measure_pair([sides[LABELS.index(x)] for x in order], [2 * (start + i), 2 * (start + i) + 1])
        for label, record in zip(order, records, strict=True):
            if record.get("error") and start == 0 and not any(p[label].get("cases") for p in pairs):
                raise SideFailed(label, record["error"])  # the side cannot run at all: say why at once
            pair[label] = record
        pairs.append(pair)
        log(f"cnn-bench ab: pair {start + i + 1} ({''.join(x[0] for x in order)}): " + _pair_line(pair))
    return pairs


def _pair_line(pair: dict) -> str:
    """Each case's HEAD/BASE for this pair, as the verdict counts it (``verdict.pair_ratio``)."""
    base, head = pair["BASE"]["cases"], pair["HEAD"]["cases"]
    interleaved = all(pair[label].get("interleaved") for label in LABELS)
    parts = []
    for key in base:
        b, h = base[key], head.get(key) or {}
        ok = b.get("median") and h.get("median") and not b.get("error") and not h.get("error")
        ratio = f"{pair_ratio(b, h, interleaved=interleaved):.3f}" if ok else "error"
        parts.append(f"{key.split('-bs')[0]} {ratio}")
    return ", ".join(parts)


@contextlib.contextmanager
def prepared_sides(base: Side, head: Side, repo: Path, *, log=print):
    """Both sides prepared; their worktrees removed at the end."""
    with contextlib.ExitStack() as stack:
        prepared = (prepare("BASE", base, repo, stack, log=log), prepare("HEAD", head, repo, stack, log=log))
        for note in same_versions(*prepared):
            log(note)
        yield prepared


def installed(prepared: Prepared) -> dict[str, str]:
    """The side's installed distributions by canonical name: its environment's, or this interpreter's."""
    from importlib import metadata

    from packaging.utils import canonicalize_name

    packages = prepared.environment["packages"]
    if packages is None:  # no pkg: part: the side runs this interpreter
        packages = {d.metadata["Name"]: d.version for d in metadata.distributions() if d.metadata["Name"]}
    return {canonicalize_name(name): version for name, version in packages.items()}


def same_versions(*prepared: Prepared) -> list[str]:
    """A note for each side whose pinned packages (``pkg:NAME==V``, ``==latest`` once pinned) are the
    versions the other side runs already: for those packages the A/B is an A/A, which a reader of
    "no change" should know (e.g. no release newer than the project's pins)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    notes = []
    for mine, other in (prepared, prepared[::-1]):
        pins = {}
        for req in map(Requirement, mine.side.packages):
            spec = list(req.specifier)
            if len(spec) == 1 and spec[0].operator == "==":
                pins[canonicalize_name(req.name)] = spec[0].version
        theirs = installed(other) if pins else {}
        if pins and all(theirs.get(name) == version for name, version in pins.items()):
            said = ", ".join(f"{name} {version}" for name, version in pins.items())
            notes.append(
                f"cnn-bench ab: note: {mine.label} pins {said}, the version{'s' if len(pins) > 1 else ''}"
                f" {other.label} runs already: for {'them' if len(pins) > 1 else 'it'} this A/B is an A/A"
            )
    return notes
