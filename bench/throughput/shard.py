"""``--shard i/N``: the i-th of N even shares of a throughput plan, so that N runners measure one sweep.

Shards are numbered from 1 (``--shard 1/4`` to ``--shard 4/4``), as a CI matrix counts its jobs.
The split is a pure function of the whole plan: each case's estimated cost is the multiply-adds of
one step, MACs per image (``models.flops``, at the model's default input) x batch size x 3 for
training (forward plus two backward passes) or 1 for inference; cases go, dearest first (ties by
case id), each to the shard with the least cost so far (ties to the lowest index): greedy
longest-processing-time. Every case goes to exactly one shard, the same one on every machine, and
no shard's cost exceeds another's by more than the dearest case's. Each shard runs its cases in the
plan's order. With more shards than cases, the shards past the case count are empty: such a shard
runs nothing, says so, and still writes its (empty) result, so that ``python -m bench merge`` sees
all N.

A shard's result records ``harness.shard``: its index and count, the digest of the whole plan
(``plan``: the options that decide what is measured and how, and every case of the plan, not this
shard's share; not the output paths or the TPU's address, which differ between runners), the
plan's case ids and the estimated costs. ``bench.throughput.merge`` checks these before joining.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import heapq
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from bench.errors import UsageError
from bench.throughput.workload import FLOPS_PER_MAC, Case

# the options that do not change what a shard measures: where it writes, what it prints, the TPU's address
RUNNER_OPTIONS = ("tpu", "data_archive", "bench_out", "plot", "pytest_table", "shard", "isolate")
_SPEC = re.compile(r"\s*([0-9]+)\s*/\s*([0-9]+)\s*")


@dataclasses.dataclass(frozen=True)
class Shard:
    """One shard of a plan: its place among the shards, the whole plan's identity, the estimated costs."""

    index: int  # 1-based
    count: int
    plan: str  # digest of the whole plan (``digest``)
    plan_cases: tuple[str, ...]  # every case id of the whole plan, in plan order
    cost: int  # estimated multiply-adds of one step of each of this shard's cases, summed
    plan_cost: int

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"

    def record(self) -> dict:
        """The ``harness.shard`` section of this shard's result."""
        return dataclasses.asdict(self) | {"plan_cases": list(self.plan_cases)}


def parse(text: str | None) -> tuple[int, int] | None:
    """``(i, N)`` from ``--shard i/N`` (1 <= i <= N), None when not given; else a one-line ``UsageError``."""
    if text is None:
        return None
    m = _SPEC.fullmatch(str(text))
    if not m or not 1 <= int(m[1]) <= int(m[2]):
        raise UsageError(f"--shard {text!r} is invalid; valid: i/N with 1 <= i <= N (shards are numbered from 1)")
    return int(m[1]), int(m[2])


def cost(case: Case, macs: dict[str, int]) -> int:
    """A case's estimated cost: multiply-adds of one step (MACs per image x batch, x 3 for training)."""
    return macs[case.model] * case.batch_size * FLOPS_PER_MAC[case.mode] // FLOPS_PER_MAC["infer"]


def assign(ids: Sequence[str], costs: Sequence[int], count: int) -> list[list[int]]:
    """Greedy longest-processing-time over ``count`` shards: the positions of the cases each shard
    takes, in plan order. Dearest first, ties by id; each to the least-loaded shard, ties to the
    lowest index. Only the first ``min(count, len(ids))`` shards can take a case (every case costs
    more than nothing), so only they are listed: shards past them are empty."""
    order = sorted(range(len(ids)), key=lambda k: (-costs[k], ids[k]))
    loads = [(0, s) for s in range(min(count, len(ids)))]
    shards: list[list[int]] = [[] for _ in loads]
    for k in order:
        load, s = heapq.heappop(loads)
        shards[s].append(k)
        heapq.heappush(loads, (load + costs[k], s))
    return [sorted(s) for s in shards]


def digest(identity: dict) -> str:
    """A short, stable digest of a plan's identity (JSON with sorted keys)."""
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=list)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def select(
    cases: Sequence[Case], identity: dict, index: int, count: int, macs: dict[str, int]
) -> tuple[tuple[Case, ...], Shard]:
    """Shard ``index`` of ``count`` of the plan with these ``cases`` and ``identity``: its cases and record."""
    ids = [c.id for c in cases]
    costs = [cost(c, macs) for c in cases]
    shares = assign(ids, costs, count)
    mine = shares[index - 1] if index <= len(shares) else []
    record = Shard(index, count, digest(identity), tuple(ids), sum(costs[k] for k in mine), sum(costs))
    return tuple(cases[k] for k in mine), record


def model_macs(names: Iterable[str]) -> dict[str, int]:
    """MACs per image of each model at its default input, as ``models.flops`` counts them.

    Counted on Keras's numpy backend: in this process when it runs that backend (the parent of
    ``--backend a,b``), else in a process of its own. Building a model here would start TensorFlow's
    runtime before the device session configures it (``--cpu-replicas``, GPU memory growth) and
    raise the peak memory the benchmarks report."""
    return dict(_macs(tuple(sorted(set(names)))))


@functools.cache
def _macs(names: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    if not names:
        return ()
    from bench import backends

    if backends.running() == "numpy":
        return tuple(_count(names).items())
    env = {**os.environ, "KERAS_BACKEND": backends.planning()}
    root = Path(__file__).resolve().parents[2]  # where ``-m bench...`` finds this source, installed or not
    run = subprocess.run(
        [sys.executable, "-m", "bench.throughput.shard", *names], cwd=root, env=env, capture_output=True, text=True
    )
    if run.returncode != 0:
        tail = (run.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"counting the models' MACs for --shard failed: {tail}")
    return tuple(json.loads(run.stdout.strip().splitlines()[-1]).items())


def _count(names: Sequence[str]) -> dict[str, int]:
    import keras

    import models
    from models.flops import count_macs

    out = {}
    for name in names:
        out[name] = int(count_macs(models.create(name)))
        keras.backend.clear_session()
    return out


if __name__ == "__main__":  # ``python -m bench.throughput.shard NAME...``: model_macs's own process
    print(json.dumps(_count(sys.argv[1:])))
