"""What the hardware says beside a benchmark: its practical matmul FLOP/s, peak memory, and out-of-memory errors.

The matmul reference is the device's practical FLOP/s in the benchmark's precision, measured in
the same process right after the benchmark, against which utilization is stated. The backend's
module (``bench.backends``) builds the matmuls and reads its allocator; timing and the CPU's
resident-set peak are here, the same for every backend.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from bench.backends import Placement
from bench.throughput.timing import steps_for, time_call


def matmul_reference(
    backend: ModuleType,
    placement: Placement,
    dtype: str,
    *,
    n: int | None = None,
    chain: int = 4,
    rounds: int = 5,
    target_round_s: float = 0.25,
) -> dict:
    """FLOP/s of square ``n x n`` matmuls in ``dtype`` on every replica at once (best round).

    ``n`` defaults to 1024 on CPUs and 4096 on accelerators. Each call chains ``chain`` dependent
    matmuls (so none can be skipped) and reduces the result to a scalar read back to the host.
    """
    n = n or (1024 if placement.device == "cpu" else 4096)
    call, sync = backend.matmul(placement, dtype, n, chain)
    sync(call())  # trace and compile
    one = time_call(lambda: sync(call()))
    reps = steps_for(one, target_round_s, hi=50)

    def run_round():
        out = None
        for _ in range(reps):
            out = call()
        return sync(out)

    times = [time_call(run_round) for _ in range(rounds)]
    flops = 2.0 * n**3 * chain * reps * placement.replicas
    rates = [flops / t for t in times]
    return {
        "dtype": dtype,
        "n": n,
        "chain": chain,
        "calls_per_round": reps,
        "replicas": placement.replicas,
        "flops_per_s": max(rates),
        "samples": rates,
    }


def reset_peak_memory(backend: ModuleType, placement: Placement) -> None:
    """Start a new peak: the accelerator allocator's (where the backend can), else the kernel's RSS high-water mark."""
    if backend.reset_peak_memory(placement):
        return
    try:  # Linux: writing 5 to clear_refs resets VmHWM, the peak resident set size
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_memory(backend: ModuleType, placement: Placement) -> dict:
    """``{"kind": "device"|"rss", "bytes": ..., "source": ...}``; bytes None when unavailable."""
    found = backend.peak_memory(placement)
    if found is not None:
        return found
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return {"kind": "rss", "bytes": int(line.split()[1]) * 1024, "source": "VmHWM (/proc/self/status)"}
    except OSError:
        pass
    import resource

    return {
        "kind": "rss",
        "bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "source": "ru_maxrss (process lifetime)",
    }
