"""The A/B runner's guard against a process that never finishes: killed at ``--process-timeout``
and recorded as an error (which fails the case), whether the pair's processes run one after the
other or take turns; a hang never hangs the runner."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.ab import runner
from bench.ab.sides import parse
from bench.throughput import turns
from tests.bench.children import assert_children_die_with

# a side whose `python -m bench throughput` hangs: before its first turn, or (HANG_AFTER_TURN) inside it
HANGING_MAIN = """
import os, time
if os.environ.get("PID_FILE"):
    with open(os.environ["PID_FILE"] + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(os.environ["PID_FILE"] + ".tmp", os.environ["PID_FILE"])
if os.environ.get("HANG_AFTER_TURN"):
    from bench.throughput import turns
    turns.wait()
time.sleep(600)
"""


def hanging_side(tmp_path, label: str, *, after_turn: bool = False, pid_file: Path | None = None) -> runner.Prepared:
    tree = tmp_path / label
    (tree / "bench" / "throughput").mkdir(parents=True)
    (tree / "bench" / "__init__.py").write_text("")
    (tree / "bench" / "__main__.py").write_text(HANGING_MAIN)
    (tree / "bench" / "throughput" / "__init__.py").write_text("")
    (tree / "bench" / "throughput" / "turns.py").write_text(Path(turns.__file__).read_text())
    (tree / "bench" / "errors.py").write_text("class UsageError(Exception):\n    pass\n")
    env = {"PYTHONPATH": str(tree), **({"HANG_AFTER_TURN": "1"} if after_turn else {})}
    env.update({"PID_FILE": str(pid_file)} if pid_file else {})
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


# an A/B process (``runner.measure`` or ``measure_interleaved``) timing sides that never finish
AB_MAIN = """
import pickle, sys
from bench import processes
from bench.ab import runner
sides, mode = pickle.loads(bytes.fromhex(sys.argv[1])), sys.argv[2]
processes.exit_on_sigterm()
if mode == "processes":
    runner.measure(sides[0], [], sides[0].tree.parent / "000-BASE.json")
else:
    runner.measure_interleaved(sides, [], [s.tree.parent / f"{i:03d}-{s.label}.json" for i, s in enumerate(sides)])
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="dying with the parent uses Linux's prctl")
@pytest.mark.parametrize("mode", ["processes", "rounds"])
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_killed_ab_leaves_no_timed_process_running(tmp_path, mode, how):
    """Killing ``ab`` (by SIGKILL, or SIGTERM which it turns into an orderly exit) kills the processes
    it was timing, instead of leaving them to load whatever the machine measures next."""
    import pickle

    labels = ("BASE",) if mode == "processes" else ("BASE", "HEAD")
    pids = [tmp_path / f"{label}.pid" for label in labels]
    sides = [hanging_side(tmp_path, label, pid_file=pid) for label, pid in zip(labels, pids, strict=True)]
    argv = [sys.executable, "-c", AB_MAIN, pickle.dumps(sides).hex(), mode]
    ab = subprocess.Popen(argv, env={**os.environ, "PYTHONPATH": str(Path(runner.__file__).parents[2])})
    assert_children_die_with(ab, pids, how)


def side_running(label: str, spec: str, packages: dict | None) -> runner.Prepared:
    """A prepared side: ``spec`` parsed and ``packages`` its environment's (None: this interpreter)."""
    return runner.Prepared(label, parse(spec), Path("."), sys.executable, {}, {"packages": packages})


def test_pins_the_other_side_runs_already_are_an_a_a_and_say_so():
    from importlib import metadata

    base = side_running("BASE", ".", {"Keras": "3.15.1", "tensorflow-cpu": "2.21.0"})
    same = side_running("HEAD", "pkg:keras==3.15.1,tensorflow_cpu==2.21.0", {"keras": "3.15.1"})
    (note,) = runner.same_versions(base, same)
    assert note.endswith(
        "HEAD pins keras 3.15.1, tensorflow-cpu 2.21.0, the versions BASE runs already: for them this A/B is an A/A"
    )
    newer = side_running("HEAD", "pkg:keras==3.16.0,tensorflow-cpu==2.21.0", {"keras": "3.16.0"})
    assert runner.same_versions(base, newer) == []  # one package differs: a real A/B
    assert runner.same_versions(base, side_running("HEAD", "pkg:keras>=3.15", {})) == []  # not a pin
    # a side without pkg: runs this interpreter, whose versions count
    here = side_running("HEAD", f"pkg:pytest=={metadata.version('pytest')}", {"pytest": "0.1"})
    assert runner.same_versions(side_running("BASE", ".", None), here)[0].startswith(
        "cnn-bench ab: note: HEAD pins pytest"
    )


# a side whose `python -m bench throughput` fails at once, as a broken commit's does
CRASHING_MAIN = """
raise SystemExit("error: broken")
"""


def crashing_side(tmp_path, label: str) -> runner.Prepared:
    side = hanging_side(tmp_path, label)
    (side.tree / "bench" / "__main__.py").write_text(CRASHING_MAIN)
    return side


STALE = {"benchmarks": [], "harness": {"device_class": "cpu:stale"}, "machine_info": {"stale": True}}


def test_a_crashed_process_never_reads_an_earlier_runs_result(tmp_path):
    """A rerun into the same --out: the crashed process's result file is an earlier run's, not its own."""
    import json

    out = tmp_path / "000-BASE.json"
    out.write_text(json.dumps(STALE))
    record = runner.measure(crashing_side(tmp_path, "BASE"), [], out, timeout=60)
    assert record["error"] == "BASE (.) exited 1 without a result: broken"
    assert "machine_info" not in record and not out.exists()


def test_a_process_that_exits_non_zero_is_an_error_whatever_file_it_leaves(tmp_path):
    import json

    side = crashing_side(tmp_path, "BASE")
    out = tmp_path / "000-BASE.json"
    main = f"import pathlib\npathlib.Path({str(out)!r}).write_text({json.dumps(json.dumps(STALE))})\n" + CRASHING_MAIN
    (side.tree / "bench" / "__main__.py").write_text(main)
    record = runner.measure(side, [], out, timeout=60)
    assert record["error"] == "BASE (.) exited 1 (its result is not counted): broken" and record["cases"] == {}


def test_a_crashed_pair_taking_turns_never_reads_an_earlier_runs_results(tmp_path):
    import json

    order = [crashing_side(tmp_path, label) for label in ("BASE", "HEAD")]
    outs = [tmp_path / "000-BASE.json", tmp_path / "001-HEAD.json"]
    for out in outs:
        out.write_text(json.dumps(STALE))
    records = runner.measure_interleaved(order, [], outs, timeout=60)
    assert [r["error"] for r in records] == [
        f"{label} (.) exited 1 without a result: broken" for label in runner.LABELS
    ]


def _measured(label):
    return {"cases": {"c": {"median": 100.0, "samples": [100.0], "error": None}}, "loadavg_before": [1.0] * 3}


def test_only_a_failure_before_any_pair_is_a_side_that_cannot_run():
    import numpy as np

    from bench.errors import UsageError
    from tests.ab.fakes import SIDES

    failed = {"cases": {}, "error": "HEAD (.) exited -9 without a result: killed", "loadavg_before": [1.0] * 3}
    first = lambda order, idx: [failed if p.label == "HEAD" else _measured(p.label) for p in order]  # noqa: E731
    with pytest.raises(UsageError, match="exited -9") as e:
        runner.run_pairs(SIDES, 2, first, rng=np.random.default_rng(0), log=lambda *a: None)
    assert e.value.label == "HEAD"
    # a grown or confirming set (start > 0): the failure is the cases', and the pair is kept
    later = runner.run_pairs(SIDES, 2, first, rng=np.random.default_rng(0), start=3, log=lambda *a: None)
    assert len(later) == 2 and all(p["HEAD"]["error"] for p in later)


def test_a_process_that_failed_a_case_keeps_its_other_cases(tmp_path):
    """pytest's exit 1 for a case that ran out of memory: that case fails by its own error, the others count."""
    import json

    side = crashing_side(tmp_path, "BASE")
    out = tmp_path / "000-BASE.json"
    doc = {
        "harness": {"device_class": "cpu:fake x2"},
        "benchmarks": [{"param": "c1", "extra_info": {"images_per_s": {"median": 100.0, "samples": [99.0, 101.0]}}}],
        "errors": [{"id": "c2", "error": "out of memory"}],
    }
    main = f"import pathlib, sys\npathlib.Path({str(out)!r}).write_text({json.dumps(json.dumps(doc))})\nsys.exit(1)\n"
    (side.tree / "bench" / "__main__.py").write_text(main)
    record = runner.measure(side, [], out, timeout=60)
    assert "error" not in record and record["returncode"] == 1
    assert record["cases"]["c1"]["median"] == 100.0 and record["cases"]["c2"]["error"] == "out of memory"


def test_a_crashed_training_run_never_reads_an_earlier_runs_result(tmp_path):
    """The accuracy A/B into an --out that holds an earlier run's result: a run that exits non-zero is an error."""
    import json

    from bench.ab import accuracy

    out = tmp_path / "BASE-seed0"
    out.mkdir()
    (out / "old.json").write_text(json.dumps({"kind": "bench.train", "status": "ok", "top1": 50.0}))
    record = accuracy.train_one(crashing_side(tmp_path, "BASE"), "r", 0, [], out)
    assert record["error"] == "exited 1 without a result" and "top1" not in record
