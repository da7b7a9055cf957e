"""The accuracy A/B (``bench.ab.accuracy``, ``ab --recipe``): each run's own result, read from where it wrote it."""

from __future__ import annotations

import json
import sys

import pytest

from bench.__main__ import main
from bench.ab import accuracy, runner
from bench.ab.sides import parse

RECIPE = "smoke_resnet20_cifar10_jpeg"

# a side's `python -m bench train ... --out OUT`: writes its result into OUT (as given: relative to its cwd)
TRAIN_MAIN = """
import json, pathlib, sys
out = pathlib.Path(sys.argv[sys.argv.index("--out") + 1])
out.mkdir(parents=True, exist_ok=True)
(out / "r-steps3-seed0.json").write_text(json.dumps({"kind": "bench.train", "status": "ok", "top1": 61.0}))
"""


def training_side(tmp_path, label: str) -> runner.Prepared:
    tree = tmp_path / f"tree-{label}"
    (tree / "bench").mkdir(parents=True)
    (tree / "bench" / "__init__.py").write_text("")
    (tree / "bench" / "__main__.py").write_text(TRAIN_MAIN)
    return runner.Prepared(label, parse("."), tree, sys.executable, {"PYTHONPATH": str(tree)}, {})


def test_a_run_reads_the_result_it_wrote_not_an_earlier_one(tmp_path):
    """An earlier run's result in the directory (it sorts first: steps10 before steps3) is not this run's."""
    out = tmp_path / "BASE-seed0"
    out.mkdir()
    (out / "r-steps10-seed0.json").write_text(json.dumps({"kind": "bench.train", "status": "ok", "top1": 50.0}))
    record = accuracy.train_one(training_side(tmp_path, "BASE"), "r", 0, [], out)
    assert record["top1"] == 61.0 and "error" not in record


def test_a_relative_out_is_written_where_the_parent_reads_it(tmp_path, monkeypatch):
    """A relative --out (the default's) handed to a run whose cwd is the side's tree (a git: worktree):
    the run writes where the A/B reads, not inside the tree."""
    monkeypatch.chdir(tmp_path)
    side = training_side(tmp_path, "BASE")
    record = accuracy.train_one(side, "r", 0, [], accuracy.Path("results/ab/x/runs/BASE-seed0"))
    assert record["top1"] == 61.0
    assert (tmp_path / "results/ab/x/runs/BASE-seed0/r-steps3-seed0.json").exists()
    assert not (side.tree / "results").exists()


def test_ab_hands_its_runs_an_absolute_out(tmp_path, monkeypatch, capsys):
    """`ab --recipe` with a relative --out (as the default is): every run gets an absolute directory."""
    seen = []
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(
        accuracy, "train_one", lambda p, r, seed, a, out: seen.append(out) or {"seed": seed, "top1": 70.0}
    )
    assert main(["ab", ".", ".", "--recipe", RECIPE, "--seeds", "2", "--out", "rel/{time}"]) == 0
    assert seen and all(out.is_absolute() and str(out).startswith(str(tmp_path)) for out in seen)


def test_a_second_ab_into_the_same_out_is_refused(tmp_path, monkeypatch, capsys):
    """An --out whose runs/ holds an earlier A/B's runs (results, maybe a checkpoint of other code): one
    line, exit 2, before a side is prepared."""
    monkeypatch.setattr(runner, "prepared_sides", lambda *a, **kw: pytest.fail("prepared a side"))
    (tmp_path / "runs" / "BASE-seed0").mkdir(parents=True)
    assert main(["ab", ".", ".", "--recipe", RECIPE, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "already holds 'BASE-seed0'" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "extra, named",
    [
        (["--seeds", "3"], "--seeds without --recipe"),  # 3 is --seeds' default: given all the same
        (["--recipe", RECIPE, "--models", "resnet20"], "--models with --recipe"),  # resnet20: the default
        (["--recipe", RECIPE, "--pairs", "10"], "--pairs with --recipe"),
    ],
)
def test_an_option_given_at_its_default_value_still_counts_as_given(tmp_path, monkeypatch, capsys, extra, named):
    monkeypatch.setattr(runner, "prepared_sides", lambda *a, **kw: pytest.fail("prepared a side"))
    monkeypatch.setattr(accuracy, "train_one", lambda *a, **kw: pytest.fail("trained"))
    assert main(["ab", "git:HEAD", ".", "--out", str(tmp_path / "out"), *extra]) == 2
    err = capsys.readouterr().err
    assert named in err and err.count("\n") == 1
