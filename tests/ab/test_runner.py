"""The A/B runner's guard against a process that never finishes: killed at ``--process-timeout``
and recorded as an error (which fails the case), whether the pair's processes run one after the
other or take turns; a hang never hangs the runner."""

import sys
import time
from pathlib import Path

import pytest

from bench.ab import runner
from bench.ab.sides import parse
from bench.throughput import turns

# a side whose `python -m bench throughput` hangs: before its first turn, or (HANG_AFTER_TURN) inside it
HANGING_MAIN = """
import os, time
if os.environ.get("HANG_AFTER_TURN"):
    from bench.throughput import turns
    turns.wait()
time.sleep(600)
"""


def hanging_side(tmp_path, label: str, *, after_turn: bool = False) -> runner.Prepared:
    tree = tmp_path / label
    (tree / "bench" / "throughput").mkdir(parents=True)
    (tree / "bench" / "__init__.py").write_text("")
    (tree / "bench" / "__main__.py").write_text(HANGING_MAIN)
    (tree / "bench" / "throughput" / "__init__.py").write_text("")
    (tree / "bench" / "throughput" / "turns.py").write_text(Path(turns.__file__).read_text())
    (tree / "bench" / "errors.py").write_text("class UsageError(Exception):\n    pass\n")
    env = {"PYTHONPATH": str(tree), **({"HANG_AFTER_TURN": "1"} if after_turn else {})}
    return runner.Prepared(label, parse("."), tree, sys.executable, env, {})


def test_a_process_past_its_timeout_is_killed_and_is_an_error(tmp_path):
    t0 = time.perf_counter()
    record = runner.measure(hanging_side(tmp_path, "BASE"), [], tmp_path / "000-BASE.json", timeout=2)
    assert time.perf_counter() - t0 < 30
    assert record["error"] == "BASE (.) was killed after 2 s without finishing (--process-timeout)"
    assert record["cases"] == {} and record["returncode"] != 0


@pytest.mark.parametrize("after_turn", [False, True], ids=["hangs-starting-up", "hangs-holding-its-turn"])
def test_a_hung_pair_taking_turns_is_killed_at_its_timeout(tmp_path, after_turn):
    order = [hanging_side(tmp_path, label, after_turn=after_turn) for label in ("BASE", "HEAD")]
    outs = [tmp_path / "000-BASE.json", tmp_path / "001-HEAD.json"]
    t0 = time.perf_counter()
    records = runner.measure_interleaved(order, [], outs, timeout=3)
    assert time.perf_counter() - t0 < 30
    assert [r["error"] for r in records] == [
        f"{label} (.) was killed after 3 s without finishing (--process-timeout)" for label in ("BASE", "HEAD")
    ]
    assert all(r["interleaved"] and r["wall_s"] >= 3 for r in records)
