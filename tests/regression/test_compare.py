"""The throughput gate (bench.regression.throughput) on fixture results: every verdict, bad files, baseline updates.

The fixtures are made by tests/regression/fixtures/throughput/generate.py (seeded draws).
"""

import json
import shutil
from pathlib import Path

import pytest

from bench.__main__ import main
from bench.regression import throughput as compare

FIX = Path(__file__).parent / "fixtures" / "throughput"
BASE = str(FIX / "baselines.json")
DC = "cpu:Fixture CPU x2"
A = f"{DC}/resnet20-train-bs128-fp32-xla_off-synthetic"


def run_compare(capsys, run, *extra, baselines=BASE):
    code = main(["compare", str(FIX / run), "--baselines", str(baselines), *extra])
    out, err = capsys.readouterr()
    return code, out, err


def verdict_of(out, key):
    row = next(line for line in out.splitlines() if line.startswith(key + " "))
    for v in ("REGRESSION", "IMPROVEMENT", "NO BASELINE", "ERROR", "PASS"):
        if f"  {v}  " in row:
            return v
    raise AssertionError(row)


def test_noise_only_passes(capsys):
    code, out, _ = run_compare(capsys, "run_noise.json")
    assert code == 0
    assert [verdict_of(out, k) for k in (A, f"{DC}/resnet20-infer-bs128-fp32-xla_off-synthetic")] == ["PASS", "PASS"]


def test_a_ten_percent_drop_is_a_regression(capsys):
    code, out, _ = run_compare(capsys, "run_regression.json")
    assert code == 1
    assert verdict_of(out, A) == "REGRESSION"
    assert verdict_of(out, f"{DC}/resnet20-infer-bs128-fp32-xla_off-synthetic") == "PASS"
    assert "-10." in out and "p=" in out


def test_a_looser_tolerance_lets_the_drop_pass(capsys):
    code, out, _ = run_compare(capsys, "run_regression.json", "--tolerance", "throughput:-15%")
    assert code == 0 and verdict_of(out, A) == "PASS"


def test_improvement_passes_and_is_named(capsys):
    code, out, _ = run_compare(capsys, "run_improvement.json")
    assert code == 0 and verdict_of(out, A) == "IMPROVEMENT"


def test_a_drop_beyond_tolerance_that_is_not_significant_passes(capsys):
    code, out, _ = run_compare(capsys, "run_noisy_drop.json")
    assert code == 0 and verdict_of(out, A) == "PASS"
    assert "not significant" in out and "noisy run" in out


def test_missing_baseline_fails(capsys):
    code, out, _ = run_compare(capsys, "run_missing.json")
    assert code == 1 and verdict_of(out, f"{DC}/resnet32-train-bs128-fp32-xla_off-synthetic") == "NO BASELINE"


def test_errored_results_fail(capsys):
    code, out, _ = run_compare(capsys, "run_errored.json")
    assert code == 1
    assert verdict_of(out, f"{DC}/resnet20-infer-bs128-fp32-xla_off-synthetic") == "ERROR"
    assert verdict_of(out, f"{DC}/resnet56-train-bs128-fp32-xla_off-synthetic") == "ERROR"
    assert "out of memory" in out


def test_another_device_class_has_no_baselines(capsys):
    code, out, _ = run_compare(capsys, "run_noise.json", "--device-class", "gpu:Some GPU")
    assert code == 1 and "NO BASELINE" in out


@pytest.mark.parametrize("bad", ["baselines_corrupt.json", "baselines_bad_entry.json", "does_not_exist.json"])
def test_a_bad_baselines_file_is_a_one_line_error_not_a_pass(capsys, bad):
    code, out, err = run_compare(capsys, "run_noise.json", baselines=FIX / bad)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1


def test_schema_checks(tmp_path):
    entries = json.loads((FIX / "baselines.json").read_text())["throughput"]
    compare.validate_entries(entries)
    for broken in (
        {"samples": [1.0, -2.0]},
        {"rule": "throughput:+5%"},
        {"rule": "top1:-1pt"},
        {"images_per_s": float("nan")},
        {"images_per_s": 1e300},  # beyond its own samples: hand-edited or corrupt
        {"images_per_s": -100.0},
        {"samples": []},
        {"rule": 5},
    ):
        bad = {A: {**entries[A], **broken}}
        with pytest.raises(Exception) as info:
            compare.validate_entries(bad)
        assert type(info.value).__name__ == "BaselinesError"
    with pytest.raises(Exception, match="device class"):
        compare.validate_entries({"no-slash": entries[A]})


def _edited(tmp_path, change, run="run_noise.json"):
    doc = json.loads((FIX / run).read_text())
    change(doc)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(doc))
    return path


def _ips(doc, k=0):
    return doc["benchmarks"][k]["extra_info"]["images_per_s"]


@pytest.mark.parametrize(
    "change, why",
    [
        (lambda d: _ips(d).update(median=-100.0), "is not a positive number"),
        (lambda d: _ips(d).update(median=0), "is not a positive number"),
        (lambda d: _ips(d).update(median=1e30), "outside the range of its own samples"),
        (lambda d: _ips(d).update(median=_ips(d)["median"] * 4), "outside the range of its own samples"),
        (lambda d: _ips(d).update(samples=[]), "has no valid samples"),
    ],
)
def test_an_impossible_median_is_an_error_not_a_pass(capsys, tmp_path, change, why):
    """A median that is not a positive number within its own rounds' range (a hand edit, a corrupt
    file, a broken writer) is judged as nothing: ERROR, exit 1, never a PASS or an IMPROVEMENT."""
    code, out, _ = run_compare(capsys, _edited(tmp_path, change))
    assert code == 1 and verdict_of(out, A) == "ERROR" and why in out


def _with_plan(doc, *, partial=False, drop=()):
    doc["harness"]["options"] = {"cases": [b["extra_info"]["id"] for b in doc["benchmarks"]]}
    doc["benchmarks"] = [b for k, b in enumerate(doc["benchmarks"]) if k not in drop]
    if partial:
        doc["partial"] = True


def test_a_planned_case_without_a_result_fails(capsys, tmp_path):
    """An interrupted run (partial), a case deselected with ``-k``, a merge with a shard missing:
    a case the run planned and did not measure is an ERROR, so the run cannot pass as a whole."""
    code, out, _ = run_compare(capsys, _edited(tmp_path, lambda d: _with_plan(d)))
    assert code == 0 and "ERROR" not in out  # every planned case measured
    code, out, _ = run_compare(capsys, _edited(tmp_path, lambda d: _with_plan(d, partial=True, drop=(0,))))
    assert code == 1 and verdict_of(out, A) == "ERROR" and "no result: the run was interrupted" in out
    code, out, _ = run_compare(capsys, _edited(tmp_path, lambda d: _with_plan(d, drop=(0,))))
    assert code == 1 and verdict_of(out, A) == "ERROR" and "no result: the run did not measure it" in out

    def merged_without_shard_2(doc):
        _with_plan(doc, drop=(0,))
        doc["harness"]["options"]["cases"].pop(0)  # a merge's options hold the cases of the shards it has
        doc["harness"]["shard"] = {
            "count": 2,
            "plan": "0123abcd",
            "plan_cases": [
                b["extra_info"]["id"] for b in json.loads((FIX / "run_noise.json").read_text())["benchmarks"]
            ],
            "merged": [1],
            "missing": [2],
        }

    code, out, _ = run_compare(capsys, _edited(tmp_path, merged_without_shard_2))
    assert code == 1 and verdict_of(out, A) == "ERROR"


@pytest.mark.parametrize(
    "extra, named",
    [
        (["--alpha", "0.5"], "--alpha 0.5"),
        (["--alpha", "0.6"], "--alpha 0.6"),
        (["--tolerance", ""], "--tolerance ''"),
        (["--device-class", " "], "--device-class ' '"),
    ],
)
def test_an_empty_or_meaningless_option_is_refused(capsys, extra, named):
    code, out, err = run_compare(capsys, "run_noise.json", *extra)
    assert code == 2 and out == "" and named in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda d: d["harness"].update(schema=2), "harness: field 'schema' is 2; this harness reads schema 1 (a newer"),
        (lambda d: d["benchmarks"][0]["extra_info"].update(rounds=-3), "field 'rounds' is -3; a measured case ran 1"),
        (lambda d: d["benchmarks"][0]["extra_info"].update(rounds=0), "field 'rounds' is 0"),
        (lambda d: d["benchmarks"][0]["extra_info"].update(cv=float("nan")), "field 'cv' is nan; expected a finite"),
        (lambda d: d["benchmarks"][0]["extra_info"].update(cv=-0.1), "field 'cv' is -0.1"),
    ],
)
def test_a_later_schema_or_an_impossible_field_is_one_line(capsys, tmp_path, change, words):
    """Fields compare shows but does not judge (rounds, CV) are still checked: an edited or corrupt
    file is refused whole, not judged by its other fields; a newer harness's file is not misread."""
    code, out, err = run_compare(capsys, _edited(tmp_path, change))
    assert code == 2 and out == "" and words in err and err.count("\n") == 1, err


def test_not_a_result_file_is_a_usage_error(capsys, tmp_path):
    other = tmp_path / "train.json"
    other.write_text(json.dumps({"benchmarks": [], "kind": "train"}))
    code, _, err = run_compare(capsys, other)
    assert code == 2 and "not a throughput result" in err
    assert compare.is_result(json.loads((FIX / "run_noise.json").read_text()))
    assert not compare.is_result([1, 2])


def test_baselines_update_then_compare_round_trip(capsys, tmp_path):
    baselines = tmp_path / "baselines.json"
    baselines.write_text(json.dumps({"schema": 1, "throughput": {}, "accuracy": {}}))
    shutil.copy(FIX / "run_noise.json", tmp_path / "run.json")
    # dry run writes nothing
    assert main(["baselines", "update", str(tmp_path / "run.json"), "--baselines", str(baselines), "--dry-run"]) == 0
    assert json.loads(baselines.read_text())["throughput"] == {}
    assert (
        main(
            [
                "baselines",
                "update",
                str(tmp_path / "run.json"),
                "--baselines",
                str(baselines),
                "--tolerance",
                "throughput:-8%",
                "--provenance",
                "fixture",
            ]
        )
        == 0
    )
    assert "3 benchmark(s) recorded from fewer than 3 runs" in capsys.readouterr().err  # one run: said so
    recorded = json.loads(baselines.read_text())["throughput"]
    assert set(recorded) == {
        A,
        f"{DC}/resnet20-infer-bs128-fp32-xla_off-synthetic",
        f"{DC}/resnet56-train-bs128-fp32-xla_off-synthetic",
    }
    assert (
        recorded[A]["rule"] == "throughput:-8%"
        and recorded[A]["provenance"] == "fixture"
        and len(recorded[A]["samples"]) == 12
    )
    capsys.readouterr()
    code, out, _ = run_compare(capsys, tmp_path / "run.json", baselines=baselines)
    assert code == 0 and out.count("PASS") == 3
    # the regression fixture is judged with the recorded (looser) rule: -10 % still fails
    code, out, _ = run_compare(capsys, "run_regression.json", baselines=baselines)
    assert code == 1 and "beyond the 8 % tolerance" in out


def test_errored_results_are_not_recorded_as_baselines(capsys, tmp_path):
    baselines = tmp_path / "baselines.json"
    assert main(["baselines", "update", str(FIX / "run_errored.json"), "--baselines", str(baselines)]) == 0
    _, err = capsys.readouterr()
    assert "skipping" in err and "out of memory" in err
    assert list(json.loads(baselines.read_text())["throughput"]) == [A]
    bad_rule = main(
        ["baselines", "update", str(FIX / "run_noise.json"), "--baselines", str(baselines), "--tolerance", "top1:-1pt"]
    )
    assert bad_rule == 2
