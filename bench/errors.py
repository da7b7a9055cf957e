"""Errors that are the user's to fix: the CLI prints them as one line and exits 2, no traceback."""


class UsageError(Exception):
    """A bad argument, file or environment the user can correct; the message says how."""


class WorkerLost(RuntimeError):
    """A multi-worker job lost a worker; the message names it (``bench.cluster.lost``). The CLI prints
    it as one line and ends the process at once with ``bench.cluster.EXIT_LOST``."""


class BaselinesError(UsageError):
    """baselines.json is missing, corrupt or does not follow the schema."""


def first_line(e: BaseException, *, limit: int = 240) -> str:
    """``Type: first line of the message`` (at most ``limit`` characters of it), for one-line reports
    of errors that come from libraries in many types and with many-line messages."""
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0][:limit] if lines else ''}".rstrip(": ")
