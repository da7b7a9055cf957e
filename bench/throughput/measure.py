"""One throughput benchmark, timed through pytest-benchmark, and the evidence it leaves in ``extra_info``.

Order of events: set precision, compilation (XLA or torch.compile) and seed; build and compile the model; time the first step
(tracing and compilation, reported as ``compile_s``, never part of a rate) and one warm step (to
size rounds); then ``benchmark.pedantic`` runs warm-up rounds and timed rounds of several steps,
each ending with a read-back. When the rounds vary by more than ``max_cv``, more rounds are timed
(and added to pytest-benchmark's own statistics) up to ``max_rounds``; a result still above it is
marked ``noisy``. Last, the matmul reference is measured at the benchmark's precision, so that
utilization compares the model with what the device delivered under the same load. An out-of-memory error is recorded with the case and the sweep goes on.

In a process of an interleaved A/B pair (``bench.throughput.turns``), every timed step runs in the
process's turn; the first case's build and compilation run before the first turn, beside the other
side's (no round of either has begun), and no matmul reference is taken: the A/B keeps only the
rounds, so the reference would only lengthen every pair.
"""

from __future__ import annotations

import dataclasses
import os
import time
from types import ModuleType

from bench import backends, devices, stats
from bench import cluster as cluster_mod
from bench.backends import Placement
from bench.errors import UsageError
from bench.throughput import hardware, timing, turns, workload
from bench.throughput.workload import Case

ERROR_FIELDS = ("id", "case", "device", "device_class", "error")


@dataclasses.dataclass
class DeviceSession:
    """What all benchmarks of one run share: the backend, the placement, the matmul references taken."""

    backend: ModuleType
    placement: Placement
    seed: int = 0
    data_options: dict = dataclasses.field(default_factory=dict)
    references: dict = dataclasses.field(default_factory=dict)  # precision -> [matmul_reference(), ...]
    errors: list = dataclasses.field(default_factory=list)  # one dict per errored case

    @classmethod
    def open(
        cls,
        device: str,
        *,
        backend: str = "tensorflow",
        tpu: str | None = None,
        cpu_replicas: int = 1,
        seed: int = 0,
        data_options: dict | None = None,
        cluster=None,
    ) -> DeviceSession:
        """Open ``device`` on ``backend``, which must be the one Keras runs on (or will: see ``bench.backends.activate``);
        with ``cluster`` (``bench.cluster.Cluster``), as one worker of a multi-worker job."""
        module = backends.activate(backend)
        placement = module.open(device, tpu=tpu, cpu_replicas=cpu_replicas, cluster=cluster)
        return cls(module, placement, seed, dict(data_options or {}))

    @property
    def device(self) -> str:
        return self.placement.device

    @property
    def device_class(self) -> str:
        return self.placement.device_class

    def reference(self, precision: str) -> dict:
        """Measure the matmul reference for ``precision`` now (each benchmark takes its own, right after
        its rounds, so that both see the same machine load); every measurement is kept for the record."""
        ref = hardware.matmul_reference(self.backend, self.placement, devices.compute_dtype(precision))
        ref["loadavg"] = list(os.getloadavg())
        self.references.setdefault(precision, []).append(ref)
        return ref

    def record(self) -> dict:
        return {**self.placement.record(), "versions": self.backend.versions()}


def measure(
    benchmark,
    case: Case,
    session: DeviceSession,
    *,
    rounds: int = 10,
    warmup_rounds: int = 2,
    max_rounds: int = 30,
    max_cv: float = 0.05,
    round_seconds: float = 1.0,
    steps: int | None = None,
) -> dict:
    """Time ``case`` with the pytest-benchmark fixture ``benchmark``; returns (and stores) its ``extra_info``.
    Raises ``MeasurementError`` after recording an out-of-memory error; other errors propagate."""
    extra = benchmark.extra_info
    extra.update(id=case.id, case=case.to_dict(), **session.record(), loadavg_start=list(os.getloadavg()))
    benchmark.group = f"{case.model} {case.mode}"
    timer = getattr(benchmark, "_timer", time.perf_counter)  # pytest-benchmark's own clock
    if case.backend != session.placement.backend:
        raise UsageError(f"case {case.id} is for {case.backend}; this process runs {session.placement.backend}")
    devices.set_precision(case.precision)
    jit = session.backend.jit_compile(case.compile)
    session.backend.seed(session.seed, tf_data=case.data == "real")
    hardware.reset_peak_memory(session.backend, session.placement)
    turn = turns.current()  # in an interleaved A/B pair: time only while holding the turn
    work = None
    try:
        work = workload.build(
            case, session.placement, jit_compile=jit, seed=session.seed, data_options=session.data_options
        )
        first = timing.time_call(lambda: work.sync(work.step()), timer)
        turns.wait()  # the first case compiled beside the other side's (no turn given yet); a later one, in its turn
        warm = timing.time_call(lambda: work.sync(work.step()), timer)
        n_steps = steps or timing.steps_for(warm, round_seconds)
        if session.placement.cluster is not None:  # a job's workers run the same steps, and no extra rounds
            n_steps = int(max(session.backend.gather_replicas(session.placement, n_steps)))
            max_rounds = rounds
        run_round = timing.make_round(work.step, n_steps, work.sync)
        if getattr(benchmark, "disabled", False):  # --benchmark-disable: run once, record nothing
            run_round()
            return extra
        benchmark.pedantic(run_round, setup=turn, rounds=rounds, warmup_rounds=warmup_rounds, iterations=1)
        samples = list(benchmark.stats.stats.data)
        noisy = timing.extend_until_steady(
            run_round,
            samples,
            max_rounds=max_rounds,
            max_cv=max_cv,
            timer=timer,
            record=benchmark.stats.update,
            before=turn,
        )
        synthetic = None
        if work.synthetic_step is not None:  # --data real: the same model on device-resident batches
            synth_round = timing.make_round(work.synthetic_step, n_steps, work.sync)
            synthetic = timing.time_rounds(synth_round, rounds=rounds, warmup_rounds=1, timer=timer, before=turn)
        memory = hardware.peak_memory(session.backend, session.placement)
        ref = None if turn is not None else session.reference(case.precision)  # an A/B keeps the rounds only
    except Exception as e:
        lost = cluster_mod.lost(e, session.placement.cluster)
        if lost:  # the job is over: every collective from now on would fail
            cluster_mod.exit_lost(lost)
        _record_out_of_memory(e, benchmark, session)  # raises MeasurementError, or re-raises e
    finally:
        workload.release(work)
    extra.update(evidence(work, samples, n_steps, noisy=noisy, first=first, warm=warm, memory=memory, ref=ref))
    if synthetic is not None:
        synth = stats.summary(stats.rates(synthetic, work.images_per_step * n_steps))
        extra.update(
            synthetic_images_per_s=synth["median"],
            real_over_synthetic=extra["images_per_s"]["median"] / synth["median"],
        )
    return extra


def _record_out_of_memory(e: Exception, benchmark, session: DeviceSession):
    """Record an out-of-memory ``e`` as the case's error and raise ``MeasurementError``; re-raise anything else."""
    message = session.backend.out_of_memory(e)
    if message is None:
        raise e
    extra = benchmark.extra_info
    extra["error"] = message
    session.errors.append(
        {k: extra.get(k) for k in ERROR_FIELDS} | {"name": benchmark.name, "fullname": benchmark.fullname}
    )
    raise MeasurementError(message) from None


def evidence(
    work: workload.Workload,
    samples: list[float],
    n_steps: int,
    *,
    noisy: bool,
    first: float,
    warm: float,
    memory: dict,
    ref: dict | None,
) -> dict:
    """What a benchmark's ``extra_info`` records: rates and their spread, compile time, FLOPs and
    utilization against the matmul reference (None without one), peak memory, and the raw round times behind them."""
    images_per_round = work.images_per_step * n_steps
    rates = stats.rates(samples, images_per_round)
    summary = stats.summary(rates)
    flops_per_image = workload.FLOPS_PER_MAC[work.case.mode] * work.macs_per_image if work.macs_per_image else None
    achieved = flops_per_image * summary["median"] if flops_per_image else None
    return dict(
        images_per_s={k: summary[k] for k in ("median", "q1", "q3", "iqr", "min", "max", "mean")} | {"samples": rates},
        cv=summary["cv"],
        noisy=noisy,
        rounds=len(samples),
        steps_per_round=n_steps,
        images_per_round=images_per_round,
        round_seconds=samples,
        compile_s=max(0.0, first - warm),
        first_step_s=first,
        macs_per_image=work.macs_per_image,
        flops_per_image=flops_per_image,
        achieved_flops_per_s=achieved,
        matmul_flops_per_s=ref["flops_per_s"] if ref else None,
        matmul_reference={k: ref[k] for k in ("dtype", "n", "chain", "calls_per_round", "samples", "loadavg")}
        if ref
        else None,
        utilization=achieved / ref["flops_per_s"] if achieved and ref else None,
        peak_memory_bytes=memory["bytes"],
        peak_memory_kind=memory["kind"],
        replicas=work.replicas,
        loadavg_end=list(os.getloadavg()),
    )


class MeasurementError(RuntimeError):
    """A case that could not be measured (out of memory); its error is already recorded."""
