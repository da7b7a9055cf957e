"""The check that a killed parent leaves no child running: for ``ab``'s timed processes
(``tests/ab/test_runner.py``) and the harness's other starters (``tests/bench/test_processes.py``)."""

import os
import signal
import subprocess
import time
from pathlib import Path


def gone(pid: int) -> bool:
    """No such process, or only its exit status left (a zombie nobody reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return True


def assert_children_die_with(parent: subprocess.Popen, pid_files: list[Path], how: signal.Signals) -> None:
    """Once every child has written its pid file, send ``how`` to ``parent``: it must exit (SIGTERM:
    an orderly exit, 143) and every child be gone within 20 s. Whatever is left is killed at the end."""
    try:
        deadline = time.monotonic() + 60
        while not all(p.exists() for p in pid_files):
            assert parent.poll() is None and time.monotonic() < deadline, "the children never started"
            time.sleep(0.05)
        children = [int(p.read_text()) for p in pid_files]
        parent.send_signal(how)
        assert parent.wait(timeout=30) == (-how if how == signal.SIGKILL else 128 + how)
        deadline = time.monotonic() + 20
        while not all(gone(c) for c in children) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(gone(c) for c in children), f"still running after {how.name} of their parent: {children}"
    finally:
        parent.kill()
        for p in pid_files:
            if p.exists() and not gone(int(p.read_text())):
                os.kill(int(p.read_text()), signal.SIGKILL)
