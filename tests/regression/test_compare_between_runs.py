"""compare judged against the spread between runs (or the A/A calibration), not the rounds of one run:
drift between days on a shared machine is not a regression."""

import argparse

import pytest

from bench.regression import rules
from bench.regression import throughput as compare
from tests.throughput.documents import DC, bench, case, doc

KEY = f"{DC}/resnet20-train-bs128-fp32-xla_off-synthetic-tensorflow"
ARGS = argparse.Namespace(tolerance=None, provenance=None)


def entries(*medians):
    docs = [(f"run{i}.json", doc([bench(case(), m)])) for i, m in enumerate(medians)]
    return compare.baseline_entries(docs, ARGS)


def verdict(median, base, **kwargs):
    current = compare.results(doc([bench(case(), median)]))
    (finding,) = compare.judge_all(current, base, **kwargs)
    return finding


def test_several_runs_make_one_entry_with_their_medians():
    base = entries(500.0, 400.0, 460.0)
    assert base[KEY]["images_per_s"] == 460.0  # the median run
    assert base[KEY]["between_run"]["medians"] == [400.0, 460.0, 500.0]
    assert compare.validate_entries(base) is base


def test_entries_from_fewer_than_three_runs_get_a_warning():
    assert "1 benchmark(s) recorded from fewer than 3 runs" in compare.few_runs_warning(entries(500.0))
    assert "fewer than 3 runs" in compare.few_runs_warning(entries(500.0, 480.0))
    assert compare.few_runs_warning(entries(500.0, 400.0, 460.0)) is None


def test_a_drop_within_the_between_run_spread_passes():
    # rounds of each run are tight (±2 %), so the rank test alone calls a 15 % drop significant ...
    one_run = verdict(391.0, entries(460.0), alpha=0.1)  # 3 rounds a side: p >= 0.05 at best
    assert one_run.verdict == rules.Verdict.REGRESSION and "rounds of one run only" in one_run.reason
    # ... but runs on other days spread that far: not a regression
    found = verdict(391.0, entries(500.0, 400.0, 460.0), alpha=0.1)
    assert found.verdict == rules.Verdict.PASS and "between 3 runs" in found.reason


def test_a_drop_beyond_a_tight_between_run_spread_is_a_regression():
    found = verdict(400.0, entries(500.0, 498.0, 503.0))
    assert found.verdict == rules.Verdict.REGRESSION


@pytest.mark.parametrize("median, expected", [(432.0, rules.Verdict.PASS), (380.0, rules.Verdict.REGRESSION)])
def test_the_aa_calibration_stands_in_for_runs(median, expected):
    # one recorded run; the machine's A/A threshold (3 rounds a process, as these runs) is 10 %: a 6 % drop passes, a 17 % drop does not
    found = verdict(median, entries(460.0), calibration={KEY: {3: 0.10}})
    assert found.verdict == expected and "A/A calibration" in found.reason


def test_only_an_aa_run_between_processes_stands_in_for_runs():
    """An A/A with turns (the default) cancels the drift between runs that compare must allow for:
    its narrow threshold would turn that drift into regressions, so compare takes only one whose
    processes ran one after the other."""
    case_key = KEY.split("/", 1)[1]
    section = {
        "cpu:turns x2": {"threshold": 0.026, "interleave": "rounds", "cases": {case_key: {}}},
        "cpu:older x2": {"threshold": 0.03, "cases": {case_key: {}}},  # recorded before the field: turns then too
        "cpu:apart x2": {"threshold": 0.12, "interleave": "processes", "cases": {case_key: {}}},
    }
    assert compare.between_run_calibrations(section) == {
        f"cpu:apart x2/{case_key}": {10: 0.12}
    }  # no --rounds: the default
    found = verdict(
        391.0, entries(460.0), alpha=0.1, calibration=compare.between_run_calibrations({DC: section["cpu:turns x2"]})
    )
    assert "rounds of one run only" in found.reason and "--interleave processes" in found.reason


def test_an_aa_calibration_stands_in_only_for_the_cases_it_ran():
    """A 12 % between-run threshold from an A/A of resnet56 says nothing of how far resnet20's runs
    drift apart: resnet20's 15 % drop is judged without it (here: the rounds of one run), and the
    reason says why the calibration was not used. Its own case takes it."""
    other = KEY.split("/", 1)[1].replace("resnet20", "resnet56")
    calibration = compare.between_run_calibrations(
        {DC: {"threshold": 0.20, "interleave": "processes", "throughput_args": ["--rounds", "3"], "cases": {other: {}}}}
    )
    assert calibration == {f"{DC}/{other}": {3: 0.20}}
    found = verdict(391.0, entries(460.0), alpha=0.1, calibration=calibration)
    assert found.verdict == rules.Verdict.REGRESSION
    assert "ran other cases and does not apply" in found.reason and "A/A calibration ±" not in found.reason
    ran = compare.between_run_calibrations(
        {
            DC: {
                "threshold": 0.20,
                "interleave": "processes",
                "throughput_args": ["--rounds", "3"],
                "cases": {KEY.split("/", 1)[1]: {}},
            }
        }
    )
    found = verdict(391.0, entries(460.0), alpha=0.1, calibration=ran)
    assert found.verdict == rules.Verdict.PASS and "A/A calibration ±20.0%" in found.reason


def test_an_aa_calibration_holds_only_for_runs_of_as_many_rounds():
    """A process median over 10 rounds is steadier than one over 3, so an A/A of 10-round processes
    draws the between-run line too narrow for runs of 3 rounds: it does not stand in for them (the
    reason says so). Of the A/As that timed no more rounds than the runs, the widest holds."""
    case_key = KEY.split("/", 1)[1]

    def aa(threshold, rounds):
        args = ["--rounds", str(rounds), "--max-rounds", str(rounds)]
        return {"threshold": threshold, "interleave": "processes", "throughput_args": args, "cases": {case_key: {}}}

    longer = compare.between_run_calibrations({f"{DC} | processes | 10": aa(0.20, 10)})
    assert longer == {KEY: {10: 0.20}}
    found = verdict(391.0, entries(460.0), alpha=0.1, calibration=longer)  # runs of 3 rounds
    assert found.verdict == rules.Verdict.REGRESSION and "A/A calibration ±" not in found.reason
    assert "timed 10 rounds a process, more than these runs' 3, and does not apply" in found.reason
    both = compare.between_run_calibrations(
        {
            f"{DC} | processes | 10": aa(0.20, 10),
            f"{DC} | processes | 2": aa(0.16, 2),
            f"{DC} | processes | 3": aa(0.18, 3),
        }
    )
    assert compare.usable_calibration(both[KEY], 3) == 0.18 and compare.usable_calibration(both[KEY], 1) is None
    found = verdict(391.0, entries(460.0), alpha=0.1, calibration=both)  # a 15 % drop: inside 18 %
    assert found.verdict == rules.Verdict.PASS and "A/A calibration ±18.0%" in found.reason


def _runs(*medians, start=0):
    return [(f"run{start + i}.json", doc([bench(case(), m)])) for i, m in enumerate(medians)]


def test_a_rerecorded_entry_keeps_its_hand_set_rule_and_provenance(capsys):
    old = entries(500.0, 400.0, 460.0)
    old[KEY].update(rule="throughput:-10%", provenance="three runs by hand")
    new = compare.baseline_entries(_runs(470.0, 480.0, 490.0, start=3), ARGS, existing=old)
    assert new[KEY]["rule"] == "throughput:-10%" and new[KEY]["provenance"] == "three runs by hand"
    assert new[KEY]["between_run"]["medians"] == [470.0, 480.0, 490.0]  # new runs: a new recording
    given = argparse.Namespace(tolerance="throughput:-3%", provenance="new words")
    new = compare.baseline_entries(_runs(470.0, start=3), given, existing=old)
    assert new[KEY]["rule"] == "throughput:-3%" and new[KEY]["provenance"] == "new words"
    assert compare.baseline_entries(_runs(470.0), ARGS)[KEY]["rule"] == "throughput:-5%"  # a new entry: the default


def test_runs_already_in_an_entry_change_nothing(capsys):
    old = entries(500.0, 400.0, 460.0)
    old[KEY].update(rule="throughput:-10%", provenance="three runs by hand")
    for again in (_runs(400.0), _runs(500.0, 400.0, 460.0)):  # one of its runs, or all three, again
        assert compare.baseline_entries(again, ARGS, existing=old) == old
    assert "replace" not in capsys.readouterr().err
    given = argparse.Namespace(tolerance="throughput:-3%", provenance=None)
    new = compare.baseline_entries(_runs(400.0), given, existing=old)
    assert new[KEY] == {**old[KEY], "rule": "throughput:-3%"}  # what was given, and only that


def test_a_new_run_replacing_a_spread_of_more_runs_says_so(capsys):
    old = entries(500.0, 400.0, 460.0)
    capsys.readouterr()
    new = compare.baseline_entries(_runs(470.0, start=3), ARGS, existing=old)
    assert "between_run" not in new[KEY] and new[KEY]["images_per_s"] == 470.0
    err = capsys.readouterr().err
    assert f"warning: {KEY}: 1 new run(s) replace the entry recorded from 3 runs" in err
    assert "its between-run spread of 3 runs goes with them" in err
    compare.baseline_entries(_runs(470.0, 480.0, 490.0, start=3), ARGS, existing=old)
    assert "replace" not in capsys.readouterr().err  # as many runs as before: a spread still
