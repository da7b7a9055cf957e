"""What produced a number: software versions (Keras and its backend), CPU/GPU model, and the commit, recorded with every result.

The shapes follow pytest-benchmark's ``machine_info`` and ``commit_info`` so that both kinds of
result file (throughput and training) read alike.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else platform's guess."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity: ``taskset``, a container's cpuset), which is
    what it is measured with; ``os.cpu_count()`` where affinity is not known (macOS)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def machine_info() -> dict:
    """Versions and hardware, in pytest-benchmark's ``machine_info`` spirit, plus Keras, its backend
    (the one Keras runs on in this process) and that backend's versions and accelerators."""
    import keras

    from bench import backends

    backend = backends.current()
    return {
        "node": platform.node(),
        "system": platform.system(),
        "release": platform.release(),
        "machine": platform.machine(),
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "cpu": {"brand_raw": cpu_model(), "count": usable_cpus()},
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        **backend.versions(),
        "accelerators": backend.accelerators(),
        "argv": sys.argv,
    }


def commit_info(repo: Path = REPO_ROOT) -> dict:
    """The commit and whether the tree had uncommitted changes; empty fields outside git."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "id": commit,
        "time": git("log", "-1", "--format=%cI") if commit else None,
        "branch": git("rev-parse", "--abbrev-ref", "HEAD") if commit else None,
        "dirty": bool(status) if status is not None else None,
        "project": "cnn-bench",
    }


def machine_line(machine: dict) -> str:
    """One line naming what produced a result, for report headers (several backends in a merged file).
    A field of an unexpected type (a hand-edited ``cpu: "Xeon"``) is shown as it is, never a crash."""

    def section(value) -> dict:
        return value if isinstance(value, dict) else {}

    machine = section(machine)
    accelerators = machine.get("accelerators")
    models = (
        [a.get("model") if isinstance(a, dict) else a for a in accelerators] if isinstance(accelerators, list) else []
    )
    acc = ", ".join(str(m) for m in models) or "no accelerator"
    names = str(machine.get("backend", "tensorflow")).split(",")  # files before the backend axis ran tensorflow
    each = section(machine.get("backends")) or {names[0]: machine}
    running = " + ".join(f"{n} {section(each.get(n)).get(n)}" for n in names)
    cpu = machine.get("cpu")
    brand, count = (cpu.get("brand_raw"), cpu.get("count")) if isinstance(cpu, dict) else (cpu, None)
    return (
        f"Keras {machine.get('keras')} on {running} / Python {machine.get('python_version')}"
        f" on {brand}{'' if count is None else f' x{count}'} ({acc})"
    )
