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


def test_the_result_file_may_not_replace_the_archive_the_run_reads(tmp_path):
    archive = tmp_path / "cifar.tar.gz"
    archive.write_bytes(b"not checked before the outputs")
    with pytest.raises(UsageError, match=r"--bench-out '.*cifar.tar.gz' is the input"):
        throughput.resolve(opts(data="real", data_archive=str(archive), bench_out=str(archive)))
    assert archive.read_bytes() == b"not checked before the outputs"


def test_a_missing_default_archive_is_one_line_naming_data_archive(tmp_path, monkeypatch):
    monkeypatch.setenv("CIFAR10_JPEG_ARCHIVE", str(tmp_path / "missing.tar.gz"))
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))  # nothing extracted there
    with pytest.raises(UsageError, match=r"--data-archive '.*missing.tar.gz' is not a file"):
        throughput.resolve(opts(data="real", bench_out=str(tmp_path / "r.json")))
    with pytest.raises(UsageError, match=r"--bench-out '.*missing.tar.gz' is the input"):
        throughput.resolve(opts(data="real", bench_out=str(tmp_path / "missing.tar.gz")))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--bogus-flag"], "pytest arguments after -- are invalid: unrecognized arguments: --bogus-flag"),
        (["--benchmark-disable"], "--benchmark-disable after -- makes pytest measure nothing"),
        (["--benchmark-skip"], "--benchmark-skip after -- makes pytest measure nothing"),
        (["--co"], "--collect-only after -- makes pytest measure nothing"),
        (["-q", "--collect-only"], "--collect-only after -- makes pytest measure nothing"),
    ],
)
def test_pytest_arguments_that_cannot_measure_are_refused_up_front(args, message):
    with pytest.raises(UsageError, match=message):
        throughput.check_pytest_args(args)


def test_pytest_arguments_that_measure_pass():
    throughput.check_pytest_args(["-k", "infer", "--benchmark-autosave", "-s"])
    throughput.check_pytest_args([])


def test_the_mode_help_says_what_mode_takes():
    """'both' is spelled train,infer (the default); the help must not offer a value --mode refuses."""
    help_text = throughput.OPTIONS["--mode"]["help"]
    assert "train,infer" in help_text and "or both (" not in help_text
    assert {c.mode for c in throughput.resolve(opts(mode="train,infer")).cases} == {"train", "infer"}


def test_the_figure_takes_the_result_file_s_time_and_the_device(tmp_path):
    """``--plot`` fills ``{time}`` and ``{device}`` as ``--bench-out`` does (it wrote a file named
    ``{time}-{device}.png``), with the result file's time, so a run's figure and results pair up."""
    plan = throughput.resolve(
        opts(bench_out=str(tmp_path / "{time}-{device}.json"), plot=str(tmp_path / "fig-{time}-{device}.png"))
    )
    results = throughput.out_file(plan.bench_out, plan.device)
    figure = throughput.plot_file(plan, results)
    assert figure.path == tmp_path / f"fig-{results.stamp}-cpu.png"
    assert throughput.plot_file(plan, None).path.name.startswith("fig-2")  # no result file: the time now
    mine = throughput.resolve(opts(bench_out="", plot=str(tmp_path / "mine.png")))
    assert throughput.plot_file(mine, None).path == tmp_path / "mine.png"
