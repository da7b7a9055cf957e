"""Resolving the throughput options into a plan: every value checked once, axes expanded into cases."""

import pytest

from bench.errors import UsageError
from bench.throughput import plan as throughput


def opts(**changes):
    base = {throughput.dest(flag): kw.get("default") for flag, kw in throughput.OPTIONS.items()}
    return {**base, **changes}


def test_default_plan_is_small_and_on_the_cpu():
    plan = throughput.resolve(opts())
    assert plan.device == "cpu"
    assert [c.id for c in plan.cases] == [
        "resnet20-train-bs128-fp32-xla_off-synthetic-tensorflow",
        "resnet20-infer-bs128-fp32-xla_off-synthetic-tensorflow",
    ]


def test_plan_expands_globs_lists_and_auto_batch():
    plan = throughput.resolve(
        opts(models="resnet2*,resnet50", mode="train", batch_size="auto,8", precision="fp32,mixed_bf16", device="gpu")
    )
    ids = {c.id for c in plan.cases}
    assert "resnet20-train-bs512-fp32-xla_off-synthetic-tensorflow" in ids  # CIFAR-sized auto batch on a GPU
    assert "resnet50-train-bs128-mixed_bf16-xla_off-synthetic-tensorflow" in ids  # ImageNet-sized
    assert "resnet50-train-bs8-fp32-xla_off-synthetic-tensorflow" in ids
    assert len(plan.cases) == 2 * 2 * 2  # models x batch sizes x precisions


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(models="nosuchnet"), "unknown model"),
        (dict(models="zz*"), "matches no registered model"),
        (dict(mode="training"), "--mode"),
        (dict(precision="fp16"), "--precision"),
        (dict(batch_size="0"), "--batch-size"),
        (dict(xla="yes"), "--xla"),
        (dict(data="imagenet"), "--data"),
        (dict(rounds=1), "--rounds"),
        (dict(max_rounds=3), "--max-rounds"),
        (dict(cpu_replicas=2, device="gpu"), "--cpu-replicas"),
        (dict(device="quantum"), "--device 'quantum' is invalid; valid: cpu, gpu, tpu"),
    ],
)
def test_bad_options_are_one_line_errors(change, message):
    with pytest.raises((UsageError, KeyError), match=message):
        throughput.resolve(opts(**change))
