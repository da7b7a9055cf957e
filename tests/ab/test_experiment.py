"""``python -m bench ab`` from arguments to exit status, with the processes replaced by synthetic ones:
confirmation, the calibration's round trip through baselines.json, the outputs."""

import json

import numpy as np
import pytest

from bench.__main__ import main
from bench.ab import runner
from tests.ab.fakes import CASES


@pytest.fixture
def slowdown(monkeypatch):
    """Set ``slowdown["HEAD"]`` to make HEAD's processes slower; records each process's ``-k`` cases."""
    state = {"HEAD": 0.0, "calls": [], "timeouts": [], "rng": np.random.default_rng(0)}

    def measure(prepared, throughput_args, out, *, cases=None, drop_backend=False, timeout=None):
        state["calls"].append((prepared.label, cases, list(throughput_args)))
        state["timeouts"].append(timeout)
        factor = 1.0 - (state["HEAD"] if prepared.label == "HEAD" else 0.0)
        chosen = {k: v for k, v in CASES.items() if cases is None or k in cases}
        return {
            "cases": {
                k: {
                    "median": v * factor * float(np.exp(state["rng"].normal(0, 0.01))),
                    "samples": [v] * 3,
                    "error": None,
                }
                for k, v in chosen.items()
            },
            "loadavg_before": [2.0, 2.0, 2.0],
            "wall_s": 1.0,
            "device_class": "cpu:fake x2",
            "machine_info": {"keras": "3.15.1", "backend": "tensorflow", "tensorflow": "2.21.0"},
        }

    monkeypatch.setattr(runner, "measure", measure)
    monkeypatch.setattr(
        runner,
        "measure_interleaved",
        lambda order, args, outs, **kw: [measure(p, args, o, **kw) for p, o in zip(order, outs, strict=True)],
    )
    return state


def ab(tmp_path, *extra):
    out = tmp_path / "out"
    code = main(
        ["ab", ".", ".", "--out", str(out), "--baselines", str(tmp_path / "b.json"), "--order-seed", "1", *extra]
    )
    return code, out


def test_a_confirmed_regression_exits_1_with_its_evidence(tmp_path, slowdown, capsys):
    slowdown["HEAD"] = 0.10
    code, out = ab(tmp_path, "--pairs", "4", "--confirm-pairs", "3", "--mode", "infer")
    assert code == 1
    doc = json.loads((out / "ab.json").read_text())
    assert len(doc["pairs"]) == 4 and len(doc["confirmation_pairs"]) == 3
    assert all(r["verdict"] == "slower" and r["confirmed"] for r in doc["cases"].values())
    confirming = slowdown["calls"][8:]
    assert all(sorted(cases) == sorted(CASES) for _, cases, _ in confirming)  # -k: the flagged cases only
    assert ["--mode", "infer"] == slowdown["calls"][0][2][:2]
    text = capsys.readouterr().out
    assert "confirmed" in text and "FAIL: confirmed regression" in text
    assert "| verdict | confirmed |" in (out / "ab.md").read_text()


def test_no_change_exits_0_without_confirmation(tmp_path, slowdown):
    code, out = ab(tmp_path)
    assert code == 0
    doc = json.loads((out / "ab.json").read_text())
    assert doc["confirmation_pairs"] == [] and doc["threshold"]["calibration"] is None
    assert doc["sides"]["BASE"]["versions"]["keras"] == "3.15.1"


def calibrations(tmp_path) -> dict:
    return json.loads((tmp_path / "b.json").read_text())["ab_calibration"]


def set_threshold(tmp_path, value: float) -> None:
    """Every recorded calibration's threshold set to ``value``, as if its A/A had been that noisy."""
    data = json.loads((tmp_path / "b.json").read_text())
    for entry in data["ab_calibration"].values():
        entry["threshold"] = value
    (tmp_path / "b.json").write_text(json.dumps(data))


def test_calibration_is_recorded_and_then_raises_the_threshold(tmp_path, slowdown, capsys):
    assert ab(tmp_path, "--calibrate", "--pairs", "3")[0] == 0
    ((key, stored),) = calibrations(tmp_path).items()
    assert key.startswith("cpu:fake x2 | rounds | --rounds 10 ")  # the device class and the design
    assert 0 < stored["threshold"] < 0.2 and stored["pairs"] == 3 and set(stored["cases"]) == set(CASES)
    assert "A/A threshold" in capsys.readouterr().out
    set_threshold(tmp_path, 0.5)  # a threshold of 50 % lets a 10 % slowdown through
    slowdown["HEAD"] = 0.10
    code, out = ab(tmp_path)
    doc = json.loads((out / "ab.json").read_text())
    assert code == 0 and doc["threshold"] == {"value": 0.5, "rule": "throughput:-3%", "calibration": 0.5}


@pytest.mark.parametrize(
    ("recorded", "differs"),
    [(["--rounds", "5"], "throughput_args"), (["--interleave", "processes"], "interleave"), ([], None)],
)
def test_a_calibration_counts_only_for_a_run_of_the_same_design(tmp_path, slowdown, capsys, recorded, differs):
    assert ab(tmp_path, "--calibrate", "--pairs", "3", *recorded)[0] == 0
    set_threshold(tmp_path, 0.5)  # would let a 10 % slowdown through
    slowdown["HEAD"] = 0.10
    capsys.readouterr()
    code, out = ab(tmp_path)
    threshold = json.loads((out / "ab.json").read_text())["threshold"]
    if differs is None:
        assert code == 0 and threshold["calibration"] == 0.5 and "calibration_note" not in threshold
        return
    assert code == 1 and threshold["value"] == 0.03 and threshold["calibration"] is None
    note = threshold["calibration_note"]
    assert f"ran other options ({differs} " in note and "does not apply" in note and "\n" not in note
    assert note in capsys.readouterr().out  # the summary says why the recorded threshold was not used


def test_each_design_keeps_its_own_calibration(tmp_path, slowdown):
    """An A/A between processes (for compare) and one with turns (for ab) live side by side; a new
    A/A of a design replaces only that design's entry, also one stored under the device class alone
    (as written before the key named the design)."""
    assert ab(tmp_path, "--calibrate", "--pairs", "3")[0] == 0
    assert ab(tmp_path, "--calibrate", "--pairs", "3", "--interleave", "processes")[0] == 0
    stored = calibrations(tmp_path)
    assert sorted(e["interleave"] for e in stored.values()) == ["processes", "rounds"]
    data = json.loads((tmp_path / "b.json").read_text())
    turns = next(k for k, e in stored.items() if e["interleave"] == "rounds")
    data["ab_calibration"]["cpu:fake x2"] = {**data["ab_calibration"].pop(turns), "threshold": 0.5}
    (tmp_path / "b.json").write_text(json.dumps(data))
    slowdown["HEAD"] = 0.10
    assert ab(tmp_path)[0] == 0  # the older key is read: its 50 % lets the 10 % slowdown through
    slowdown["HEAD"] = 0.0
    assert ab(tmp_path, "--calibrate", "--pairs", "3")[0] == 0
    again = calibrations(tmp_path)
    assert sorted(again) == sorted(stored) and again[turns]["threshold"] < 0.2  # the older key replaced
    assert again[next(k for k in stored if k != turns)] == stored[next(k for k in stored if k != turns)]


def test_the_defaults_are_the_measured_design_and_a_calibration_runs_fixed_sets():
    import argparse

    from bench.commands import ab as command

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    judged = command.decision(parser.parse_args(["git:HEAD"]))
    assert judged == {
        "pairs": 3,
        "confirm_pairs": 3,
        "rule": "throughput:-3%",
        "max_pairs": 8,
        "detect": 5.0,
    }
    assert command.throughput_args(parser.parse_args(["git:HEAD"]))[:2] == ["--rounds", "10"]
    assert command.decision(parser.parse_args(["git:HEAD", "--max-pairs", "0"]))["max_pairs"] is None
    calibrating = command.decision(parser.parse_args(["--calibrate", "--pairs", "6"]))
    assert calibrating["pairs"] == 6 and calibrating["confirm_pairs"] == 0 and calibrating["max_pairs"] is None


def test_the_tolerance_is_the_rules():
    from bench.ab.experiment import Settings

    assert Settings().tolerance == 3.0
    assert Settings(rule="throughput:-2.5%").tolerance == 2.5


def test_calibrate_refuses_two_different_sides(tmp_path, capsys):
    assert main(["ab", "git:HEAD", ".", "--calibrate"]) == 2
    assert "must be the same side" in capsys.readouterr().err


def test_accuracy_ab_trains_both_sides_on_the_same_seeds(tmp_path, monkeypatch, capsys):
    from bench.ab import accuracy

    seen = []

    def train(prepared, recipe, seed, train_args, out):
        seen.append((prepared.label, seed, list(train_args)))
        return {"seed": seed, "top1": 70.0 + seed - (0.4 if prepared.label == "HEAD" else 0.0)}

    monkeypatch.setattr(accuracy, "train_one", train)
    argv = ["ab", ".", ".", "--recipe", "smoke_resnet20_cifar10_jpeg", "--seeds", "3", "--budget", "steps=5"]
    assert main([*argv, "--out", str(tmp_path)]) == 1
    assert sorted(seen) == sorted((label, s, ["--budget", "steps=5"]) for label in ("BASE", "HEAD") for s in range(3))
    assert [label for label, s, _ in seen[:4]] == ["BASE", "HEAD", "HEAD", "BASE"]
    assert "mean -0.40 points" in capsys.readouterr().out
    assert json.loads((tmp_path / "ab-accuracy.json").read_text())["verdict"] == "lower"
    assert main(["ab", ".", "--recipe", "nope"]) == 2


@pytest.mark.parametrize(
    "extra, named",
    [
        (["--recipe", "smoke_resnet20_cifar10_jpeg", "--models", "resnet56"], "--models with --recipe"),
        (
            ["--recipe", "smoke_resnet20_cifar10_jpeg", "--pairs", "6", "--mode", "infer"],
            "--pairs, --mode with --recipe",
        ),
        (["--recipe", "smoke_resnet20_cifar10_jpeg", "--calibrate"], "--calibrate with --recipe"),
        (["--recipe", "smoke_resnet20_cifar10_jpeg", "--tolerance", "throughput:-5%"], "--tolerance with --recipe"),
        (["--seeds", "5"], "--seeds without --recipe"),
        (["--budget", "steps=3", "--models", "resnet20"], "--budget without --recipe"),
    ],
)
def test_an_option_of_the_other_ab_is_refused(tmp_path, monkeypatch, capsys, extra, named):
    """An option the chosen A/B (accuracy with --recipe, else throughput) would ignore: one line, exit 2,
    before a side is prepared."""
    from bench.ab import accuracy

    monkeypatch.setattr(runner, "prepared_sides", lambda *a, **kw: pytest.fail("prepared a side"))
    monkeypatch.setattr(accuracy, "train_one", lambda *a, **kw: pytest.fail("trained"))
    assert main(["ab", ".", ".", "--out", str(tmp_path / "out"), *extra]) == 2
    err = capsys.readouterr().err
    assert named in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_pairs_take_turns_by_default_and_one_after_the_other_when_asked(tmp_path, slowdown, monkeypatch, capsys):
    taken = []
    interleaved = runner.measure_interleaved
    monkeypatch.setattr(runner, "measure_interleaved", lambda *a, **kw: taken.append(1) or interleaved(*a, **kw))
    code, out = ab(tmp_path, "--pairs", "2", "--max-pairs", "0")
    assert code == 0 and json.loads((out / "ab.json").read_text())["interleave"] == "rounds" and len(taken) == 2
    assert "2 pair(s) + 0 confirmation pair(s), their rounds interleaved" in capsys.readouterr().out
    code, out = ab(tmp_path, "--pairs", "2", "--max-pairs", "0", "--interleave", "processes")
    assert code == 0 and json.loads((out / "ab.json").read_text())["interleave"] == "processes" and len(taken) == 2
    assert "one process after the other" in capsys.readouterr().out


def test_every_process_gets_the_timeout(tmp_path, slowdown):
    code, out = ab(tmp_path, "--pairs", "2", "--max-pairs", "0", "--process-timeout", "90")
    assert code == 0 and slowdown["timeouts"] == [90.0] * 4
    assert json.loads((out / "ab.json").read_text())["settings"]["process_timeout"] == 90.0
    ab(tmp_path, "--pairs", "2", "--max-pairs", "0", "--interleave", "processes")
    assert slowdown["timeouts"][4:] == [3600.0] * 4


def test_a_growing_set_catches_what_fixed_sets_of_two_cannot(tmp_path, slowdown, capsys):
    slowdown["HEAD"] = 0.05
    rule = ["--tolerance", "throughput:-2%", "--pairs", "2", "--confirm-pairs", "2"]
    code, out = ab(tmp_path, *rule, "--max-pairs", "0")
    doc = json.loads((out / "ab.json").read_text())
    assert any(r["verdict"] == "inconclusive" for r in doc["cases"].values())  # 2 pairs: too wide to tell
    code, out = ab(tmp_path, *rule, "--max-pairs", "8")
    doc = json.loads((out / "ab.json").read_text())
    assert code == 1 and all(r["verdict"] == "slower" and r["confirmed"] for r in doc["cases"].values())
    assert 2 < len(doc["pairs"]) <= 8 and 2 < len(doc["confirmation_pairs"]) <= 8
    counts = [r["n"] for r in doc["cases"].values()]  # a case stops growing once decided
    assert max(counts) == len(doc["pairs"]) and min(counts) >= 2
    assert "undecided after 2 pair(s); 2 more" in capsys.readouterr().out
    assert doc["settings"]["max_pairs"] == 8 and doc["settings"]["detect"] == 5.0


def test_a_growing_set_stops_once_the_slowdown_to_detect_is_ruled_out(tmp_path, slowdown):
    code, out = ab(tmp_path, "--pairs", "2", "--max-pairs", "12", "--detect", "5")
    doc = json.loads((out / "ab.json").read_text())
    assert code == 0 and len(doc["pairs"]) < 12 and doc["confirmation_pairs"] == []
    assert all(r["lo"] >= 0.95 for r in doc["cases"].values())


@pytest.mark.parametrize(
    ("lo", "hi", "detect", "says"),
    [
        (0.97, 1.09, 5.0, "OK: cleared of a 5 % slowdown (interval above 0.95, though not inside the threshold): c"),
        (0.97, 1.09, 2.0, "OK: inconclusive (interval wider than the threshold"),  # a 2 % slowdown not ruled out
        (0.93, 1.02, 5.0, "OK: inconclusive (interval wider than the threshold"),
        (0.93, 1.02, None, "OK: inconclusive (interval wider than the threshold"),  # a document without --detect
    ],
)
def test_the_summary_clears_an_inconclusive_case_of_the_slowdown_its_interval_rules_out(lo, hi, detect, says):
    from bench.ab import experiment

    row = {"verdict": "inconclusive", "ratio": 1.0, "lo": lo, "hi": hi, "confirmed": None}
    settings = {} if detect is None else {"detect": detect}
    doc = {"cases": {"c": row}, "regressions": [], "settings": settings, "threshold": {"calibration": 0.05}}
    assert experiment.summary(doc).startswith(says)
    assert ("cleared" in experiment.summary(doc)) != ("inconclusive" in experiment.summary(doc))


def failing_from(slowdown, monkeypatch, first_failing: int):
    """``slowdown``'s processes, each from the ``first_failing``-th on (0-based) killed without a result."""
    measure = runner.measure

    def failing(prepared, throughput_args, out, **kw):
        record = measure(prepared, throughput_args, out, **kw)
        if len(slowdown["calls"]) > first_failing:
            return {**record, "cases": {}, "error": f"{prepared.label} (.) exited -9 without a result: killed"}
        return record

    monkeypatch.setattr(runner, "measure", failing)
    monkeypatch.setattr(
        runner,
        "measure_interleaved",
        lambda order, args, outs, **kw: [failing(p, args, o, **kw) for p, o in zip(order, outs, strict=True)],
    )


def test_a_failed_confirming_set_is_an_error_not_an_ok(tmp_path, slowdown, monkeypatch, capsys):
    slowdown["HEAD"] = 0.10
    failing_from(slowdown, monkeypatch, 8)  # the 4 pairs flag it; the confirming set crashes
    code, out = ab(tmp_path, "--pairs", "4", "--confirm-pairs", "3", "--max-pairs", "0")
    assert code == 1
    doc = json.loads((out / "ab.json").read_text())
    assert all(r["confirmed"] is None and "exited -9" in r["confirmation_error"] for r in doc["cases"].values())
    assert doc["summary"].startswith("FAIL: flagged slower, but the confirming set failed")
    assert "not confirmed" not in capsys.readouterr().out


def test_a_failure_after_the_first_pairs_keeps_them_and_fails_the_cases(tmp_path, slowdown, monkeypatch, capsys):
    slowdown["rng"] = np.random.default_rng(5)
    failing_from(slowdown, monkeypatch, 6)  # the first process of the first grown block
    code, out = ab(tmp_path, "--pairs", "3", "--max-pairs", "8", "--detect", "0.1")
    assert code == 1
    doc = json.loads((out / "ab.json").read_text())
    assert len(doc["pairs"]) == 5 and all(doc["pairs"][i]["BASE"]["cases"] for i in range(3))
    assert all(r["verdict"] == "error" for r in doc["cases"].values())
    assert doc["summary"].startswith("FAIL: no result for")


def test_a_side_that_fails_at_once_is_one_line_exit_2(tmp_path, slowdown, monkeypatch, capsys):
    failing_from(slowdown, monkeypatch, 0)
    code, out = ab(tmp_path)
    assert code == 2 and "exited -9" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--backend", "tensorflow,jax"], "--backend 'tensorflow,jax': an A/B runs one backend per side"),
        (["--out", ""], "--out '' is empty"),
        (["--out", "{time.year}"], "'{time.year}' is an invalid file name template"),
        (["--out", "x/{time[0]}"], "'x/{time[0]}' is an invalid file name template ({time[0]}); it may hold {time}"),
        (["--recipe", ""], "--recipe '' is empty"),
        (["--recipe", "smoke_resnet20_cifar10_jpeg", "--repo", "/nonexistent"], "is not a git repository"),
        (["--recipe", "smoke_resnet20_cifar10_jpeg", "--repo", "/"], "--repo '/' is not a git repository"),
        (["--baselines", "{out}/ab.json"], "ab.json' is the input"),  # ab would write over what it reads
        (["--baselines", "{out}/ab.md", "--calibrate"], "ab.md' is the input"),
        (["--baselines", "/proc/nope/b.json", "--calibrate"], "--baselines '/proc/nope/b.json'"),
    ],
)
def test_bad_options_are_one_line_before_any_work(tmp_path, monkeypatch, capsys, extra, named):
    from bench.ab import accuracy

    monkeypatch.setattr(runner, "prepared_sides", lambda *a, **kw: pytest.fail("prepared a side"))
    monkeypatch.setattr(accuracy, "train_one", lambda *a, **kw: pytest.fail("trained"))
    out = tmp_path / "out"
    extra = [x.replace("{out}", str(out)) for x in extra]
    given = [] if "--recipe" in extra or "--baselines" in extra else ["--baselines", str(tmp_path / "b.json")]
    argv = ["ab", *([] if "--calibrate" in extra else [".", "."]), "--out", str(out), *given, *extra]
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert named in err and err.count("\n") == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_an_a_a_too_noisy_to_calibrate_records_nothing(tmp_path, slowdown, monkeypatch, capsys):
    from bench.ab import verdict

    monkeypatch.setattr(verdict, "calibration", lambda rows: 19.8)  # an interval reaching [0.019, 20.8]
    code, out = ab(tmp_path, "--calibrate", "--pairs", "2")
    assert code == 1
    err = capsys.readouterr().err
    assert "too noisy to calibrate" in err and err.count("\n") == 1
    assert not (tmp_path / "b.json").exists() and (out / "ab.json").exists()
    assert main(["ab", ".", ".", "--baselines", str(tmp_path / "b.json"), "--out", str(tmp_path / "o2")]) == 0


def test_a_calibration_whose_processes_failed_writes_its_report_and_records_nothing(
    tmp_path, slowdown, monkeypatch, capsys
):
    failing_from(slowdown, monkeypatch, 2)  # every process after the first pair
    code, out = ab(tmp_path, "--calibrate", "--pairs", "3")
    assert code == 1
    err = capsys.readouterr().err
    assert "has no result for" in err and "nothing recorded" in err and "Traceback" not in err
    assert not (tmp_path / "b.json").exists()
    assert len(json.loads((out / "ab.json").read_text())["pairs"]) == 3
