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
        (lambda d: _ips(d).pop("median"), "is not a positive number"),
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


def test_an_interrupted_run_without_its_plan_fails(capsys, tmp_path):
    """A partial file that lists no plan cannot say what it missed: it never passes."""
    code, out, _ = run_compare(capsys, _edited(tmp_path, lambda d: d.update(partial=True)))
    assert code == 1 and "records no plan" in out, out
    assert verdict_of(out, A) == "PASS"  # what it did measure is still judged


@pytest.mark.parametrize(
    "extra, named",
    [
        (["--alpha", "0.5"], "--alpha 0.5"),
        (["--alpha", "0.6"], "--alpha 0.6"),
        (["--tolerance", ""], "--tolerance ''"),
        (["--device-class", " "], "--device-class ' '"),
        (["--device-class", "gpu:RTX/PCIe"], "--device-class 'gpu:RTX/PCIe'"),
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
        (
            lambda d: _ips(d).update(median=-100.0),
            "images_per_s: field 'median' holds -100.0; images/s is a number above",
        ),
        (lambda d: _ips(d).update(median=0), "images_per_s: field 'median' holds 0; images/s is a number above 0"),
        (lambda d: _ips(d)["samples"].append(0.0), "images_per_s: field 'samples' holds 0.0; images/s is a number"),
        (lambda d: _ips(d).update(median=float("inf")), "field 'median' is inf; expected a finite number"),
        (lambda d: d["benchmarks"][0]["extra_info"].update(utilization=float("nan")), "field 'utilization' is nan"),
        (
            lambda d: d["benchmarks"][0]["extra_info"].update(loadavg_start=[1.0, float("nan")]),
            "'loadavg_start[1]' is nan",
        ),
        (
            lambda d: d["benchmarks"][0]["extra_info"].update(case={"model": 20}),
            "case: field 'model' is 20; expected a",
        ),
        (lambda d: d["benchmarks"].append(d["benchmarks"][0]), "is recorded twice in result file"),
        (
            lambda d: [b["extra_info"].update(device_class="gpu:RTX/PCIe") for b in d["benchmarks"]],
            "device_class 'gpu:RTX/PCIe' holds a '/'",
        ),
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


def _entry(samples, medians=None):
    entry = {"images_per_s": sorted(samples)[len(samples) // 2], "samples": samples, "rule": "throughput:-5%"}
    if medians:
        entry["between_run"] = {"medians": medians, "n": len(medians)}
    return entry


def _current(samples, key=A):
    median = sorted(samples)[len(samples) // 2]
    return {"key": key, "median": median, "samples": samples, "noisy": False, "cv": None, "error": None, "rounds": 3}


def test_a_test_that_cannot_reach_the_level_never_passes_a_drop():
    """Three rounds a side: the rank test's smallest p is 1/20 = 0.05, so at alpha 0.01 a halving
    is "not significant" whatever happened; three runs whose interval at alpha 1e-6 reaches 0
    images/s cannot call any drop significant. Neither may pass it."""
    (f,) = compare.judge_all([_current([50.0, 51.0, 52.0])], {A: _entry([100.0, 101.0, 102.0])}, alpha=0.01)
    assert f.verdict.value == "error" and "cannot reach p < 0.01 (its smallest p is 0.05)" in f.reason
    base = {A: _entry([100.0, 101.0, 102.0, 103.0, 104.0], medians=[100.0, 102.0, 98.0])}
    (f,) = compare.judge_all([_current([50.0, 51.0, 52.0, 53.0, 54.0])], base, alpha=1e-6)
    assert f.verdict.value == "error" and "interval reaches 0 images/s, so no drop is significant" in f.reason
    (f,) = compare.judge_all([_current([50.0, 51.0, 52.0, 53.0, 54.0])], base, alpha=0.01)
    assert f.verdict.value == "regression"  # the same interval at 0.01 can, and finds it
    wide = compare.between_run_significance(50.0, _entry([100.0, 101.0, 102.0]), alpha=0.01, calibration=1.0)
    assert wide["significant"] is False and "no drop is significant" in wide["untestable"]
    assert (
        compare.between_run_significance(50.0, _entry([100.0] * 3), alpha=0.01, calibration=0.2)["untestable"] is None
    )


@pytest.mark.parametrize("alpha", ["1e-17", "0", "nan", "0.5"])
def test_an_alpha_outside_its_range_is_one_line(capsys, alpha):
    code, out, err = run_compare(capsys, "run_noise.json", "--alpha", alpha)
    assert code == 2 and out == "" and err.count("\n") == 1 and "expected 1e-06 <= alpha < 0.5" in err, err


def test_rates_near_the_float_limit_are_an_error_without_warnings(capsys, tmp_path):
    import warnings

    def huge(d):
        for b in d["benchmarks"]:
            b["extra_info"]["images_per_s"].update(median=1e308, samples=[1e308] * 4)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        code, out, _ = run_compare(capsys, _edited(tmp_path, huge))
    assert code == 1 and verdict_of(out, A) == "ERROR" and "not finite (rates near the float limit)" in out


def test_a_result_written_before_the_backend_axis_has_its_planned_cases_measured(capsys, tmp_path):
    """Its options list the old ids (no backend, ``xla``); its results read as tensorflow's new ids,
    and so must its plan, or each measured case would also be "no result"."""
    from bench.throughput.workload import Case
    from tests.throughput.documents import bench, doc, old_case, old_id

    cases = [old_case(), old_case(mode="infer")]
    result = doc([bench(c, 400.0) for c in cases])
    result["harness"]["options"] = {"cases": [old_id(c) for c in cases]}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(result))
    ips = result["benchmarks"][0]["extra_info"]["images_per_s"]
    keys = [f"{result['harness']['device_class']}/{Case.from_dict(c).id}" for c in cases]
    base = tmp_path / "baselines.json"
    base.write_text(
        json.dumps(
            {
                "schema": 1,
                "throughput": {k: {"images_per_s": 400.0, "samples": ips["samples"]} for k in keys},
                "accuracy": {},
            }
        )
    )
    code, out, _ = run_compare(capsys, path, baselines=base)
    assert code == 0 and "no result" not in out and out.count("PASS") == 2, out


def _update(*paths, baselines):
    return main(["baselines", "update", *map(str, paths), "--baselines", str(baselines)])


def test_one_run_given_twice_is_refused_and_nothing_written(capsys, tmp_path):
    """It would count as runs that agree exactly: a between-run spread of 0 that calls noise a regression."""
    baselines = tmp_path / "baselines.json"
    run = FIX / "run_noise.json"
    shutil.copy(run, tmp_path / "copy.json")
    other = json.loads((FIX / "run_regression.json").read_text()) | {"datetime": "2026-01-02T00:00:00+00:00"}
    (tmp_path / "other.json").write_text(json.dumps(other))
    for paths, words in [
        ((run, run, run), "the same file is given twice: "),
        ((tmp_path / ".." / tmp_path.name / "copy.json", tmp_path / "copy.json"), "the same file is given twice"),
        ((run, tmp_path / "copy.json"), "the same result is given twice: "),
    ]:
        assert _update(*paths, baselines=baselines) == 2
        out, err = capsys.readouterr()
        assert err.count("\n") == 1 and words in err and "one run counts once" in err, err
        assert not baselines.exists()
    copied = json.loads(run.read_text()) | {"datetime": "2026-12-01T10:00:00", "commit_info": {"id": "abc"}}
    (tmp_path / "a.json").write_text(json.dumps(copied))
    copied["benchmarks"][0]["extra_info"]["cv"] = 0.5  # a copy edited a little: still the same run
    (tmp_path / "b.json").write_text(json.dumps(copied))
    assert _update(tmp_path / "a.json", tmp_path / "b.json", baselines=baselines) == 2
    assert "the run of 2026-12-01T10:00:00 (commit abc) is given twice" in capsys.readouterr().err
    assert _update(run, tmp_path / "other.json", baselines=baselines) == 0  # two runs: recorded


@pytest.mark.parametrize(
    "change, code",
    [
        (lambda d: d.update(errors=None), 0),
        (lambda d: d.update(machine_info={"cpu": "Xeon", "accelerators": "none", "backends": 3}), 2),  # mistyped
        (lambda d: d["benchmarks"][0]["extra_info"].update(noisy=True, cv=float("nan")), 2),
        (lambda d: d["benchmarks"][0]["extra_info"].update(utilization=float("nan")), 2),
    ],
)
def test_baselines_update_reads_any_file_compare_reads_without_a_traceback(capsys, tmp_path, change, code):
    baselines = tmp_path / "baselines.json"
    assert _update(_edited(tmp_path, change), baselines=baselines) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err and (code == 0 or err.count("\n") == 1), err
    assert baselines.exists() == (code == 0)
