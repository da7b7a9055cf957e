"""Child processes that never outlive the command that started them.

A benchmark's child left running loads whatever the machine measures next. Two guards, used wherever
the harness starts one (``ab``'s timed processes and training runs, ``throughput``'s isolated cases
and backends, ``--workers N``'s workers):

- ``child_options()``, options for ``subprocess.Popen``/``run``: on Linux the child gets SIGKILL when
  its parent dies, however the parent dies (SIGKILL, a closed terminal);
- ``exit_on_sigterm()`` and, for a stretch of code, ``sigterm_exits()``: SIGTERM raises ``SystemExit``
  (exit 143) instead of ending the process on the spot, so the ``finally`` blocks that kill and reap
  the children and remove temporary files run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _prctl():
    """libc's ``prctl`` on Linux (looked up in the parent: a child between fork and exec must not import)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()


def child_options() -> dict:
    """``subprocess.Popen`` options for a child that must die with this process (empty off Linux)."""
    if _PRCTL is None:
        return {}
    parent = os.getpid()

    def die_with_parent() -> None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took hold
            os._exit(1)

    return {"preexec_fn": die_with_parent}


def _exit(signum, _frame):
    sys.exit(128 + signum)


def exit_on_sigterm() -> None:
    """SIGTERM ends this process as an exception would (exit 143), for the rest of its life."""
    signal.signal(signal.SIGTERM, _exit)


@contextlib.contextmanager
def sigterm_exits():
    """``exit_on_sigterm`` while the block runs (the handler before it is restored after). Signal
    handlers belong to the main thread: elsewhere the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
