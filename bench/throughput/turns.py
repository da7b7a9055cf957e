"""Taking turns with the other side of an A/B pair: rounds of two processes interleaved, never overlapping.

``python -m bench ab`` (``bench.ab.runner.measure_interleaved``) can run a pair's two processes at
the same time. Each may then use the CPU only while it holds the turn: before each case and before
each round (warm-up or timed), the process gives the turn back and waits until it is given again.
The runner gives it to one process at a time, and only while the other is waiting, so no round of
either side overlaps any work of the other, and rounds of the two sides a few seconds apart see the
same machine: a load that comes and goes slows both alike, and their ratio cancels it.

The runner passes two inherited pipe ends as ``CNN_BENCH_TURNS=READ_FD,WRITE_FD``. The protocol is
one byte each way: the process writes ``YIELD`` and blocks reading; the runner writes ``GO``. An
end of file instead of ``GO`` means the runner is gone, and the process stops rather than time
rounds alone. Without the variable, ``current()`` is None and nothing waits.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from bench.errors import UsageError

ENV = "CNN_BENCH_TURNS"
YIELD, GO = b"y", b"g"
RUNNER_GONE = 75  # the exit status of a process whose runner stopped giving turns

_state: dict = {}


def current() -> Callable[[], None] | None:
    """This process's ``wait_turn`` (read from, and removed from, the environment once), or None."""
    if "turn" not in _state:
        spec = os.environ.pop(ENV, None)  # a child this process starts must not share the pipe
        _state["turn"] = None if spec is None else from_spec(spec)
    return _state["turn"]


def from_spec(spec: str) -> Callable[[], None]:
    """``wait_turn`` over the pipe ends named by ``spec`` ("READ_FD,WRITE_FD")."""
    try:
        read_fd, write_fd = (int(x) for x in spec.split(","))
    except ValueError:
        raise UsageError(f"{ENV}={spec!r}: expected two file descriptors, READ_FD,WRITE_FD") from None
    for fd in (read_fd, write_fd):
        try:
            os.fstat(fd)
        except OSError:
            raise UsageError(f"{ENV}={spec!r}: file descriptor {fd} is not open in this process") from None

    def wait_turn() -> None:
        os.write(write_fd, YIELD)
        if os.read(read_fd, 1) != GO:
            print("cnn-bench: the A/B runner stopped giving turns; stopping", file=sys.stderr, flush=True)
            os._exit(RUNNER_GONE)

    return wait_turn


def wait() -> None:
    """Wait for the turn when taking turns; return at once otherwise."""
    turn = current()
    if turn is not None:
        turn()
