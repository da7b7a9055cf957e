"""What the hardware says beside a benchmark: its practical matmul FLOP/s, peak memory, and out-of-memory errors.

The matmul reference is the device's practical FLOP/s in the benchmark's precision, measured in
the same process right after the benchmark, against which utilization is stated.
"""

from __future__ import annotations

import math
import re
from pathlib import Path


def out_of_memory(e: BaseException) -> str | None:
    """A one-line description when ``e`` is an out-of-memory error (TF, XLA or host), else None."""
    import tensorflow as tf

    from bench.errors import first_line

    if isinstance(e, (tf.errors.ResourceExhaustedError, MemoryError)):
        return f"out of memory: {first_line(e)}"
    if isinstance(e, tf.errors.OpError) and re.search(r"RESOURCE_EXHAUSTED|out of memory|OOM", str(e)):
        return f"out of memory: {first_line(e)}"
    return None


# ---------------------------------------------------------------------------------------------
# The matmul reference: what the device's matrix units deliver in practice at this precision.


def matmul_reference(
    strategy, dtype: str, *, n: int | None = None, chain: int = 4, rounds: int = 5, target_round_s: float = 0.25
) -> dict:
    """FLOP/s of square ``n x n`` matmuls in ``dtype`` on every replica at once (best round).

    ``n`` defaults to 1024 on CPUs and 4096 on accelerators. Each call chains ``chain`` dependent
    matmuls (so none can be skipped) and reduces the result to a scalar read back to the host.
    """
    import numpy as np
    import tensorflow as tf

    from bench.throughput.timing import steps_for, time_call

    on_cpu = all("CPU" in d.upper() for d in getattr(strategy.extended, "worker_devices", ["CPU"]))
    n = n or (1024 if on_cpu else 4096)
    rng = np.random.default_rng(0)
    a = tf.constant(rng.standard_normal((n, n), dtype=np.float32), dtype=dtype)
    # entries ~ N(0, 1/n) keep the chained product's scale steady, so fp16 does not overflow
    b = tf.constant(rng.standard_normal((n, n), dtype=np.float32) / math.sqrt(n), dtype=dtype)
    values = strategy.experimental_distribute_values_from_function(lambda ctx: (tf.identity(a), tf.identity(b)))

    def body(ab):
        c, m = ab
        for _ in range(chain):
            c = tf.matmul(c, m)
        return tf.reduce_sum(tf.cast(c, tf.float32))

    @tf.function
    def call(ab):
        return strategy.run(body, args=(ab,))

    def sync(out):
        return [float(v) for v in strategy.experimental_local_results(out)]

    sync(call(values))  # trace and compile
    one = time_call(lambda: sync(call(values)))
    reps = steps_for(one, target_round_s, hi=50)

    def run_round():
        out = None
        for _ in range(reps):
            out = call(values)
        return sync(out)

    times = [time_call(run_round) for _ in range(rounds)]
    flops = 2.0 * n**3 * chain * reps * int(strategy.num_replicas_in_sync)
    rates = [flops / t for t in times]
    return {
        "dtype": dtype,
        "n": n,
        "chain": chain,
        "calls_per_round": reps,
        "replicas": int(strategy.num_replicas_in_sync),
        "flops_per_s": max(rates),
        "samples": rates,
    }


# ---------------------------------------------------------------------------------------------
# Peak memory: the GPU/TPU allocator's own count, or the process's resident set on the CPU.


def _accelerators() -> list[str]:
    import tensorflow as tf

    return [d.name.split("device:")[-1] for kind in ("GPU", "TPU") for d in tf.config.list_logical_devices(kind)]


def reset_peak_memory() -> None:
    """Start a new peak: reset the allocators' statistics, or the kernel's RSS high-water mark."""
    import tensorflow as tf

    devices = _accelerators()
    for dev in devices:
        try:
            tf.config.experimental.reset_memory_stats(dev)
        except (ValueError, tf.errors.OpError):
            pass
    if not devices:
        try:  # Linux: writing 5 to clear_refs resets VmHWM, the peak resident set size
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass


def peak_memory() -> dict:
    """``{"kind": "device"|"rss", "bytes": ..., "source": ...}``; bytes None when unavailable."""
    import tensorflow as tf

    devices = _accelerators()
    if devices:
        total, found = 0, False
        for dev in devices:
            try:
                total += int(tf.config.experimental.get_memory_info(dev)["peak"])
                found = True
            except (ValueError, KeyError, tf.errors.OpError):
                pass
        return {
            "kind": "device",
            "bytes": total if found else None,
            "source": f"tf.config.experimental.get_memory_info over {', '.join(devices)}",
        }
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
