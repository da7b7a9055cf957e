"""Child processes that never outlive the command that started them.

A benchmark's child left running loads whatever the machine measures next. Two guards, used wherever
the harness starts one (``ab``'s timed processes and training runs, ``throughput``'s isolated cases
and backends, ``--workers N``'s workers):

- ``child_options()``, options for ``subprocess.Popen``/``run``: on Linux the child gets SIGKILL when
  its parent dies, however the parent dies (SIGKILL, a closed terminal), and starts with SIGINT's
  default action whatever the parent inherited: the SIGINT a parent sends means "write what you
  finished and stop", and a parent started in the background by a non-interactive shell (``nohup``,
  ``cmd &``) ignores SIGINT, which its children would otherwise inherit and never see;
- ``exit_on_sigterm()`` and, for a stretch of code, ``sigterm_exits()``: SIGTERM raises ``SystemExit``
  (exit 143) instead of ending the process on the spot, so the ``finally`` blocks that kill and reap
  the children and remove temporary files run. Where that exception is discarded (it landed in a
  gc callback), the signal comes again a moment later, in ordinary code.
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
    """``subprocess.Popen`` options for a child that must die with this process and that takes the
    SIGINT this process sends it (empty off Linux)."""
    if _PRCTL is None:
        return {}
    parent = os.getpid()

    def die_with_parent() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # a Python child then installs its Ctrl-C handler
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took hold
            os._exit(1)

    return {"preexec_fn": die_with_parent}


_received: int | None = None  # the signal ``_exit`` turned into ``SystemExit``
_redelivered = 0
REDELIVER_S = 0.05  # how long after a swallowed exit the signal comes again
MAX_REDELIVER = 20  # then the default action: the process ends on the spot


def _exit(signum, _frame):
    global _received
    _received = signum
    _guard_unraisable()
    sys.exit(128 + signum)


def _guard_unraisable() -> None:
    """Where the handler's ``SystemExit`` lands in code whose exceptions Python discards (a gc
    callback such as jax's ``_xla_gc_callback``, a ``__del__``), it reaches ``sys.unraisablehook``
    instead of ending the process: the run would go on. Then the signal is sent again a moment later,
    when the process is back in ordinary code, and the exit happens there."""
    if getattr(sys.unraisablehook, "_cnn_bench", False):
        return
    previous = sys.unraisablehook

    def hook(unraisable):
        exc = unraisable.exc_value
        if _received is not None and isinstance(exc, SystemExit) and exc.code == 128 + _received:
            _redeliver(_received)
            return
        previous(unraisable)

    hook._cnn_bench = True
    sys.unraisablehook = hook


def _redeliver(signum: int) -> None:
    global _redelivered
    _redelivered += 1
    if _redelivered > MAX_REDELIVER:  # swallowed every time: end now (children die with us: child_options)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    timer = threading.Timer(REDELIVER_S, os.kill, (os.getpid(), signum))
    timer.daemon = True
    timer.start()


def terminated() -> bool:
    """Whether a SIGTERM was turned into ``SystemExit`` (for a check at a safe point: ``raise_if_terminated``)."""
    return _received is not None


def raise_if_terminated() -> None:
    """``SystemExit`` when a SIGTERM came and its exit was swallowed; called between units of work."""
    if _received is not None:
        sys.exit(128 + _received)


def exit_on_sigterm() -> None:
    """SIGTERM ends this process as an exception would (exit 143), for the rest of its life, even
    when it arrives inside code whose exceptions are discarded (``_guard_unraisable``)."""
    signal.signal(signal.SIGTERM, _exit)


@contextlib.contextmanager
def sigterm_exits():
    """``exit_on_sigterm`` while the block runs (the handler before it is restored after). Signal
    handlers belong to the main thread: elsewhere the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    global _received
    previous = signal.signal(signal.SIGTERM, _exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
        _received = None  # the block's SystemExit was taken, or caught on purpose by its caller
