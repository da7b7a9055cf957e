"""Turn-taking between a pair's two processes (``bench.throughput.turns`` in the processes,
``bench.ab.runner.give_turns`` in the A/B runner), with real processes and pipes: no two turns
overlap, the order is ABBA..., a process that dies leaves the other to finish, and a process whose
runner is gone stops."""

import os
import subprocess
import sys
import time

import pytest

from bench.ab import runner
from bench.environment import REPO_ROOT
from bench.errors import UsageError
from bench.throughput import turns

# a stand-in for a throughput process: waits for the turn before each of N units of work (20 ms of
# CPU), logs when each ran; exits abruptly at unit DIE (-1: never)
CHILD = """
import os, sys, time
from bench.throughput import turns
name, n, die, log = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
for k in range(n):
    turns.wait()
    if k == die:
        os._exit(9)
    t0 = time.monotonic_ns()
    while time.monotonic_ns() - t0 < 20_000_000:
        pass
    with open(log, "a") as f:
        f.write(f"{name} {k} {t0} {time.monotonic_ns()}\\n")
"""


def start(name: str, n: int, log, *, die: int = -1):
    child_read, runner_write = os.pipe()
    runner_read, child_write = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, name, str(n), str(die), str(log)],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), turns.ENV: f"{child_read},{child_write}"},
        pass_fds=(child_read, child_write),
    )
    os.close(child_read)
    os.close(child_write)
    return proc, runner_write, runner_read


def run_pair(tmp_path, n_a: int, n_b: int, *, die_b: int = -1):
    log = tmp_path / "work.log"
    children = [start("A", n_a, log), start("B", n_b, log, die=die_b)]
    procs, to_child, from_child = (list(x) for x in zip(*children, strict=True))
    try:
        ended = runner.give_turns(procs, to_child, from_child)
    finally:
        for fd in (*to_child, *from_child):
            os.close(fd)
    work = [line.split() for line in log.read_text().splitlines()]
    return procs, ended, [(name, int(k), int(t0), int(t1)) for name, k, t0, t1 in work]


def test_turns_never_overlap_and_pass_abba(tmp_path):
    procs, ended, work = run_pair(tmp_path, 6, 6)
    assert [p.returncode for p in procs] == [0, 0] and all(t is not None for t in ended)
    assert [f"{name}{k}" for name, k, *_ in work] == "A0 B0 B1 A1 A2 B2 B3 A3 A4 B4 B5 A5".split()
    spans = sorted((t0, t1) for *_, t0, t1 in work)
    assert all(end <= start for (_, end), (start, _) in zip(spans, spans[1:], strict=False))


def test_a_process_that_dies_leaves_the_other_to_finish(tmp_path):
    procs, ended, work = run_pair(tmp_path, 5, 5, die_b=2)
    assert [p.returncode for p in procs] == [0, 9]
    assert [k for name, k, *_ in work if name == "A"] == [0, 1, 2, 3, 4]
    assert [k for name, k, *_ in work if name == "B"] == [0, 1]


def test_a_process_whose_runner_is_gone_stops(tmp_path):
    proc, to_child, from_child = start("A", 3, tmp_path / "work.log")
    assert os.read(from_child, 1) == turns.YIELD  # waiting for its first turn
    os.close(to_child)
    assert proc.wait(timeout=30) == turns.RUNNER_GONE
    os.close(from_child)
    assert not (tmp_path / "work.log").exists()  # it did no work alone


def test_without_the_variable_nothing_waits(monkeypatch):
    monkeypatch.delenv(turns.ENV, raising=False)
    monkeypatch.setattr(turns, "_state", {})
    t0 = time.perf_counter()
    turns.wait()
    assert turns.current() is None and time.perf_counter() - t0 < 1


@pytest.mark.parametrize("spec", ["", "3", "a,b", "1,2,3"])
def test_a_malformed_variable_is_a_usage_error(spec):
    with pytest.raises(UsageError, match=turns.ENV):
        turns.from_spec(spec)


def test_a_closed_descriptor_is_a_usage_error():
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    os.close(write_fd)
    with pytest.raises(UsageError, match=f"file descriptor {read_fd} is not open"):
        turns.from_spec(f"{read_fd},{write_fd}")
