"""Hand-built shard result documents for the merge tests: a real ``ThroughputPlan`` (no registry, no
framework), split by ``bench.throughput.shard`` with made-up MACs, each shard's cases measured by
``tests.throughput.documents.bench``."""

from __future__ import annotations

import dataclasses

from bench.throughput import shard as sharding
from bench.throughput.plan import ThroughputPlan
from bench.throughput.workload import Case
from tests.throughput.documents import DC, bench

MACS = {"resnet20": 41, "resnet56": 126, "resnet110": 253}  # millions, as models.flops counts them


def plan(models=("resnet20", "resnet56", "resnet110"), modes=("train", "infer"), **over) -> ThroughputPlan:
    cases = tuple(Case(m, mode, 128) for m in models for mode in modes)
    fields = dict(backends=("tensorflow",), device="cpu", tpu=None, cases=cases, rounds=10, warmup_rounds=2)
    fields |= dict(max_rounds=20, max_cv=0.05, round_seconds=1.0, steps=None, cpu_replicas=1, seed=0)
    fields |= dict(data_archive=None, bench_out="results/throughput/{time}-{device}.json", plot=None)
    return ThroughputPlan(**(fields | over))


def shard_doc(whole: ThroughputPlan, index: int, count: int, *, commit="abc123", dc=DC, median=1000.0) -> dict:
    """Shard ``index``/``count`` of ``whole`` as ``python -m bench throughput --shard`` writes it."""
    mine, record = sharding.select(whole.cases, whole.identity(), index, count, MACS)
    part = dataclasses.replace(whole, cases=mine, shard=record, bench_out=f"results/shard-{index}.json")
    return {
        "machine_info": {"keras": "3.15.1", "backend": "tensorflow", "device_class": dc},
        "commit_info": {"id": commit, "dirty": False, "project": "cnn-bench"},
        "benchmarks": [bench(c.to_dict(), median + k, dc=dc) for k, c in enumerate(mine)],
        "datetime": "2026-01-01T00:00:00",
        "version": "5.3.1",
        "harness": {
            "kind": "throughput",
            "schema": 1,
            "backend": "tensorflow",
            "device_class": dc,
            "options": part.to_dict(),
            "shard": record.record(),
        },
        "errors": [],
    }


def shard_docs(count: int, whole: ThroughputPlan | None = None, **kwargs) -> list[dict]:
    whole = whole or plan()
    return [shard_doc(whole, i, count, **kwargs) for i in range(1, count + 1)]
