"""``python -m bench fingerprint``: record a baseline's fingerprint once, then --check catches a change
without training (mock data, no steps run)."""

import dataclasses
import json

import pytest

from bench import fingerprint
from bench.__main__ import main
from bench.training import recipes

RECIPE = "smoke_resnet20_cifar10_jpeg"
KEY = "smoke_resnet20_cifar10_jpeg|mock_cifar10_jpeg|steps=1|cpu@tensorflow"
ARGS = ["fingerprint", RECIPE, "--mock", "16", "--budget", "steps=1"]


@pytest.fixture(autouse=True)
def small_batches(monkeypatch):
    """The recipe registered with batches of 8, for 16 mock examples: --record refuses --set."""
    monkeypatch.setitem(recipes.RECIPES, RECIPE, dataclasses.replace(recipes.RECIPES[RECIPE], batch_size=8))


def _baselines(tmp_path):
    entry = {
        "recipe": "smoke_resnet20_cifar10_jpeg",
        "dataset": "mock_cifar10_jpeg",
        "budget": "steps=1",
        "device": "cpu@tensorflow",
        "metric": "top1",
        "mean": 10.0,
        "std": None,
        "n": 1,
        "samples": {"1": 10.0},
        "tolerance": "top1:-5pt",
        "measured": True,
        "provenance": "test",
    }
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"schema": 1, "throughput": {}, "accuracy": {KEY: entry}}))
    return str(path)


def test_record_then_check_then_a_changed_recipe_fails(tmp_path, capsys):
    base = _baselines(tmp_path)
    assert main([*ARGS, "--check", "--baselines", base]) == 1
    assert "has no fingerprint (record it with --record): FAIL" in capsys.readouterr().out
    assert main([*ARGS, "--record", "--baselines", base]) == 0
    digest = json.loads(open(base).read())["accuracy"][KEY]["fingerprint"]["digest"]
    assert f"recorded {digest}" in capsys.readouterr().out
    assert main([*ARGS, "--check", "--baselines", base]) == 0
    assert "matches the baseline's" in capsys.readouterr().out
    assert main([*ARGS, "--check", "--baselines", base, "--set", "label_smoothing=0.0"]) == 1
    out = capsys.readouterr().out
    assert "recipe changed: label_smoothing 0.1 -> 0.0" in out and "CHANGED" in out
    before = open(base).read()
    assert main([*ARGS, "--record", "--baselines", base, "--set", "label_smoothing=0.0"]) == 2
    assert "--record with --set label_smoothing=0.0" in capsys.readouterr().err and open(base).read() == before


def test_record_adds_the_fields_an_older_fingerprint_predates_and_nothing_else(tmp_path, capsys):
    base = _baselines(tmp_path)
    assert main([*ARGS, "--record", "--baselines", base]) == 0
    doc = json.loads(open(base).read())
    full = doc["accuracy"][KEY]["fingerprint"]
    old = {k: v for k, v in full.items() if k not in ("training", "evaluation", "digest")}
    old["data"] = {k: v for k, v in old["data"].items() if k != "train_first_batch"}
    doc["accuracy"][KEY]["fingerprint"] = fingerprint.with_digest(old)  # as the first fingerprints were
    open(base, "w").write(json.dumps(doc))
    capsys.readouterr()
    assert main([*ARGS, "--check", "--baselines", base]) == 0  # what it predates is a note, not a change
    assert "not compared: training, data.train_first_batch, evaluation, which" in capsys.readouterr().out
    assert main([*ARGS, "--record", "--baselines", base]) == 0
    assert "the fields its old one predates added" in capsys.readouterr().out
    assert json.loads(open(base).read())["accuracy"][KEY]["fingerprint"] == full
    doc["accuracy"][KEY]["fingerprint"]["data"]["test_first_batch"] = "something else"
    doc["accuracy"][KEY]["fingerprint"] = fingerprint.with_digest(doc["accuracy"][KEY]["fingerprint"])
    open(base, "w").write(json.dumps(doc))
    assert main([*ARGS, "--record", "--baselines", base]) == 2  # a recorded field differs: re-measure
    assert "test_first_batch something else -> " in capsys.readouterr().err


@pytest.mark.parametrize(
    "given",
    [
        ["--set", "schedule.base=0.1"],
        ["--precision", "mixed_bf16"],
        ["--deterministic", "off"],
        ["--steps-per-execution", "2"],
        ["--cpu-replicas", "1"],
    ],
)
def test_record_refuses_what_changes_the_fingerprint_but_not_the_entry(tmp_path, capsys, given):
    """Recorded, a modified recipe's fingerprint would fail every unmodified run as changed: one
    line, exit 2, before any data is read, and the file unchanged."""
    base = _baselines(tmp_path)
    before = open(base).read()
    assert main([*ARGS, "--record", "--baselines", base, *given]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--record with {' '.join(given)}" in err and open(base).read() == before


def test_an_edited_baseline_fingerprint_is_one_line_never_a_match(tmp_path, capsys):
    """A digest that is not its parts' (hand-edited, or corrupt) is a baselines error: exit 2."""
    base = _baselines(tmp_path)
    assert main([*ARGS, "--record", "--baselines", base]) == 0
    doc = json.loads(open(base).read())
    doc["accuracy"][KEY]["fingerprint"]["digest"] = "0000000000000000"
    open(base, "w").write(json.dumps(doc))
    capsys.readouterr()
    assert main([*ARGS, "--check", "--baselines", base]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and '"0000000000000000", which does not match its parts' in err


def test_json_never_writes_over_the_baselines_file(tmp_path, capsys):
    base = _baselines(tmp_path)
    link = tmp_path / "link.json"
    link.symlink_to(base)
    before = open(base).read()
    for out in (base, str(link)):
        assert main([*ARGS, "--check", "--baselines", base, "--json", out]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is the input" in err and open(base).read() == before
    assert link.is_symlink()


def test_where_a_run_goes_is_refused(tmp_path, capsys, monkeypatch):
    import bench.training.loop

    monkeypatch.setattr(bench.training.loop, "fingerprint_of", lambda *a: pytest.fail("built a model"))
    assert main([*ARGS, "--workers", "2", "--baselines", _baselines(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert "--workers 2 is train's: fingerprint reads the data and builds the model in one process" in err


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--plot"], "--plot is train's and ignored here: fingerprint trains nothing"),
        (["--fresh"], "--fresh is train's and ignored here: fingerprint trains nothing"),
        (["--eager"], "--eager is train's and ignored here: fingerprint builds the model and runs no step"),
        (["--out", "elsewhere"], "--out elsewhere is train's and ignored here: fingerprint trains nothing"),
    ],
)
def test_trains_other_options_are_named_as_ignored_never_silently(extra, words):
    """One command line serves train and fingerprint (``nox -s smoke -- --out D --fresh``): what
    fingerprint does not use is said on stderr (once the fingerprint is made), never silently."""
    import argparse

    from bench.commands import fingerprint
    from bench.training import options

    parser = argparse.ArgumentParser()
    fingerprint.add_arguments(parser)
    opts = options.Options.from_args(parser.parse_args([*ARGS[1:], *extra]))
    assert [n for n in fingerprint.ignored(opts) if words in n] and len(fingerprint.ignored(opts)) == 1
    assert fingerprint.ignored(options.Options.from_args(parser.parse_args(ARGS[1:]))) == []
