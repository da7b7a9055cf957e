"""The accuracy gate and baselines update, on fixture JSONs (no TensorFlow model is built)."""

import json
import shutil
import types
from pathlib import Path

import pytest

from bench import fingerprint
from bench.__main__ import main
from bench.errors import BaselinesError, UsageError
from bench.regression import accuracy
from bench.regression.rules import Verdict
from bench.training import recipes

FIX = Path(__file__).parent / "fixtures" / "accuracy"
OK = str(FIX / "baselines_ok.json")
RES = FIX / "results"


def one(name, baselines=OK):
    (finding,) = accuracy.gate([str(RES / name)], baselines)
    return finding


def test_pass_within_tolerance():
    f = one("result_pass.json")
    assert f.verdict is Verdict.PASS and f.baseline == 75.0 and f.change == pytest.approx(-0.4)
    assert f.key == "smoke_resnet20_cifar10_jpeg|cifar10_jpeg|epochs=3|cpu@tensorflow"


def test_regression_beyond_tolerance_fails_with_reason():
    f = one("result_regression.json")
    assert f.verdict is Verdict.REGRESSION and f.failed
    assert "top1 fell 4.90 pt, beyond the ±1.5 pt band" in f.reason
    assert "baseline 75.00 ± 0.50 pt (sd of 3 seeds)" in f.reason and "z " not in f.reason


def test_a_gain_beyond_the_band_fails_as_unexpected_unless_allowed(tmp_path):
    f = one("result_improvement.json")
    assert f.verdict is Verdict.UNEXPECTED and f.failed
    assert "rose" in f.reason and "unexpected improvement; update the baseline if intended" in f.reason
    (allowed,) = accuracy.gate([str(RES / "result_improvement.json")], OK, allow_improvement=True)
    assert allowed.verdict is Verdict.IMPROVEMENT and not allowed.failed
    doc = json.loads(Path(OK).read_text())
    for entry in doc["accuracy"].values():
        entry["allow_improvement"] = True  # the per-entry setting
    (tmp_path / "b.json").write_text(json.dumps(doc))
    assert one("result_improvement.json", str(tmp_path / "b.json")).verdict is Verdict.IMPROVEMENT


def test_failed_nan_run_is_an_error():
    f = one("result_failed_nan.json")
    assert f.verdict is Verdict.ERROR and "nan" in f.reason


def test_missing_baseline_fails():
    f = one("result_no_baseline.json")
    assert f.verdict is Verdict.NO_BASELINE and f.failed


def test_partial_test_split_is_an_error():
    f = one("result_partial_eval.json")
    assert f.verdict is Verdict.ERROR and "1280 of the 10000" in f.reason


def test_reported_baseline_matches_any_device():
    f = one("result_reported_match.json")
    assert f.verdict is Verdict.PASS and "matched preact_resnet164_cifar10|cifar10|epochs=100|*" in f.reason


def test_cifar10_jpeg_never_meets_a_cifar10_baseline():
    f = one("result_jpeg_not_cifar10.json")
    assert f.verdict is Verdict.NO_BASELINE and "|cifar10_jpeg|" in f.key


def test_minutes_budget_keys_on_the_full_device_class():
    doc = {
        "kind": "bench.train",
        "recipe": "r",
        "dataset": "d",
        "budget": "minutes=5",
        "device": "cpu",
        "device_class": "cpu:X x2",
    }
    assert accuracy.key_of(doc) == "r|d|minutes=5|cpu:X x2@tensorflow"
    assert accuracy.key_of({**doc, "budget": "epochs=5"}) == "r|d|epochs=5|cpu@tensorflow"


@pytest.mark.parametrize(
    "name,message",
    [
        ("baselines_corrupt.json", "not valid JSON"),
        ("baselines_bad_schema.json", "has std None"),
        ("baselines_bad_mean.json", "has mean '75'"),
    ],
)
def test_invalid_baselines_are_an_error_never_a_pass(name, message):
    with pytest.raises(BaselinesError, match=message):
        accuracy.gate([str(RES / "result_pass.json")], str(FIX / name))


def test_cli_exit_codes_and_table(capsys, tmp_path):
    assert main(["gate", str(RES / "result_pass.json"), "--baselines", OK]) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "gate: 1 pass: PASS" in out
    # a directory: every training result in it; any failure fails the whole gate
    assert main(["gate", str(RES), "--baselines", OK, "--json", str(tmp_path / "f.json")]) == 1
    out = capsys.readouterr().out
    for word in ("REGRESSION", "ERROR", "NO BASELINE", "UNEXPECTED IMPROVEMENT", "FAIL"):
        assert word in out
    saved = json.loads((tmp_path / "f.json").read_text())
    assert saved["exit_code"] == 1 and len(saved["findings"]) == 8
    # a corrupt baselines file: one line, exit 2
    assert main(["gate", str(RES / "result_pass.json"), "--baselines", str(FIX / "baselines_corrupt.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert main(["gate", str(tmp_path / "nope")]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["gate", str(empty), "--baselines", OK]) == 1


def test_unreadable_result_in_a_directory_is_an_error(tmp_path):
    shutil.copy(RES / "result_pass.json", tmp_path)
    (tmp_path / "broken.json").write_text('{"kind": "bench.train", "top1": ')
    (tmp_path / "other.json").write_text('{"benchmarks": []}')  # not a training result: skipped in a directory
    findings = {f.key: f for f in accuracy.gate([str(tmp_path)], OK)}
    assert len(findings) == 2 and findings["broken.json"].verdict is Verdict.ERROR
    with pytest.raises(UsageError, match="does not exist"):
        accuracy.gate([str(tmp_path / "missing.json")], OK)
    (finding,) = accuracy.gate([str(tmp_path / "other.json")], OK)  # named explicitly: an error
    assert finding.verdict is Verdict.ERROR and "not a training result" in finding.reason


def test_gate_never_changes_baselines(tmp_path):
    path = tmp_path / "b.json"
    shutil.copy(OK, path)
    before = path.read_bytes()
    main(["gate", str(RES), "--baselines", str(path)])
    assert path.read_bytes() == before


def _result(tmp_path, seed, value, **kw):
    doc = json.loads((RES / "result_pass.json").read_text())
    doc.update({"seed": seed, "top1": value, **kw})
    path = tmp_path / f"r{seed}.json"
    path.write_text(json.dumps(doc))
    return str(path)


def test_update_aggregates_seeds_then_gates(tmp_path, capsys):
    base = tmp_path / "baselines.json"
    base.write_text(json.dumps({"schema": 1, "throughput": {}, "accuracy": {}}))
    files = [_result(tmp_path, s, v) for s, v in ((101, 74.8), (102, 75.0), (103, 75.2))]
    assert main(["baselines", "update", *files, "--baselines", str(base)]) == 0
    assert "+ accuracy/smoke_resnet20_cifar10_jpeg|cifar10_jpeg|epochs=3|cpu@tensorflow" in capsys.readouterr().out
    entry = json.loads(base.read_text())["accuracy"]["smoke_resnet20_cifar10_jpeg|cifar10_jpeg|epochs=3|cpu@tensorflow"]
    assert entry["mean"] == 75.0 and entry["std"] == 0.2 and entry["n"] == 3 and entry["measured"] is True
    # t(0.9995, 2) = 31.599 (tables), x std 0.2 x sqrt(1 + 1/3): a 99.9 % prediction interval of +-7.30
    assert entry["tolerance"] == "top1:-7.3pt" and entry["samples"] == {"101": 74.8, "102": 75.0, "103": 75.2}
    assert "prediction interval" in entry["tolerance_method"] and entry["design_seeds"] == list(
        recipes.get("smoke_resnet20_cifar10_jpeg").design_seeds
    )
    accuracy.load_entries(base)  # what update writes, the gate reads
    assert main(["gate", _result(tmp_path, 9, 67.6), "--baselines", str(base)]) == 1
    assert main(["gate", _result(tmp_path, 9, 67.8), "--baselines", str(base)]) == 0


def test_update_refuses_the_seeds_a_recipe_was_designed_on(tmp_path):
    args = types.SimpleNamespace(tolerance=None, provenance=None)
    docs = [(s, json.loads(Path(_result(tmp_path, s, 75.0)).read_text())) for s in (3, 101, 102)]
    with pytest.raises(UsageError, match=r"seed\(s\) \[3\] were used to design smoke_resnet20_cifar10_jpeg"):
        accuracy.baseline_entries(docs, args)


@pytest.mark.parametrize(
    "kw,message",
    [
        (dict(status="failed", error="loss became nan", top1=None), "failed run"),
        (dict(modified=["schedule.base=20"]), "modified recipe"),
        (dict(test_examples=1280), "1280 of 10000"),
    ],
)
def test_update_refuses_bad_results(tmp_path, kw, message):
    args = types.SimpleNamespace(tolerance=None, provenance=None)
    doc = json.loads(Path(_result(tmp_path, 1, 75.0, **kw)).read_text())
    with pytest.raises(UsageError, match=message):
        accuracy.baseline_entries([("x.json", doc)], args)


def test_update_refuses_a_seed_twice(tmp_path):
    args = types.SimpleNamespace(tolerance=None, provenance=None)
    docs = [("a", json.loads(Path(_result(tmp_path, 1, 75.0)).read_text()))] * 2
    with pytest.raises(UsageError, match="given twice"):
        accuracy.baseline_entries(docs, args)


def test_reported_figures_become_provenance_marked_entries(tmp_path):
    base = tmp_path / "baselines.json"
    assert main(["baselines", "update", "--reported", "--baselines", str(base)]) == 0
    entries = accuracy.load_entries(base)
    assert len(entries) == 3
    e = entries["preact_resnet164_cifar10|cifar10|epochs=100|*"]
    assert e["mean"] == 94.2 and e["measured"] is False and "1,280" in e["provenance"]
    assert entries["resnet56_cifar10|cifar10|steps=64000|*"]["mean"] == 93.58
    assert entries["fashion_resnet50|fashion_mnist|epochs=400|*"]["mean"] == 91.3


# ---------------------------------------------------------------------------------------------
# Fingerprints, the loss band, notes and impossible values (synthetic fingerprints: no model is built)

FP = {  # as the first fingerprints were: recipe, model and data (bench.fingerprint.REQUIRED)
    "recipe": {"label_smoothing": 0.1, "schedule": {"base": 0.2}},
    "model": {
        "params": 10,
        "groups": [{"config": {"class": "BatchNormalization", "momentum": 0.99}, "layers": ["bn1", "bn2"]}],
        "inputs": {"bn2": ["conv1"]},
    },
    "data": {"test_examples": 10000, "test_first_batch": "aaaa"},
    "environment": {"keras": "3.15.1", "tensorflow": "2.21.0"},
}
FP = fingerprint.with_digest(FP)
# as today's code writes them: every part, and the fields added since the first
FULL = fingerprint.with_digest(
    {
        **FP,
        "training": {"optimizer": {"class": "SGD", "nesterov": True}, "schedule": {"at 0%": 0.1}},
        "data": {**FP["data"], "train_first_batch": "cccc"},
        "evaluation": {"probe_top1": 10.0, "probe_loss": 2.5, "probe_images": 256},
    }
)


def _with(tmp_path, result_changes: dict, entry_changes: dict) -> list:
    doc = json.loads(Path(OK).read_text())
    key = "smoke_resnet20_cifar10_jpeg|cifar10_jpeg|epochs=3|cpu@tensorflow"
    doc["accuracy"][key].update({"fingerprint": json.loads(json.dumps(FP)), **entry_changes})
    (tmp_path / "b.json").write_text(json.dumps(doc))
    result = json.loads((RES / "result_pass.json").read_text())
    result.update({"fingerprint": json.loads(json.dumps(FP)), **result_changes})
    (tmp_path / "r.json").write_text(json.dumps(result))
    return accuracy.gate([str(tmp_path / "r.json")], str(tmp_path / "b.json"))


def _fp(base=FP, **changes) -> dict:
    """``base`` with ``changes`` (``part__field=value``; a value of ``DROP`` removes the field), and
    the digest of the result, as a run that produced it would record."""
    fp = json.loads(json.dumps(base))
    for path, value in changes.items():
        node = fp
        *parents, leaf = path.split("__")
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        if value is DROP:
            del node[leaf]
        else:
            node[leaf] = value
    return fingerprint.with_digest(fp) if isinstance(fp.get("model"), dict) else fp


DROP = object()


def test_same_fingerprint_is_judged_by_the_band(tmp_path):
    (f,) = _with(tmp_path, {}, {})
    assert f.verdict is Verdict.PASS and "fingerprint" not in f.reason


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"model__groups__0__config__momentum": 0.5}, "model changed: 2 layers (bn1, ...) momentum 0.99 -> 0.5"),
        ({"model__inputs__bn2": ["bn1"]}, 'model changed: bn2 inputs ["conv1"] -> ["bn1"]'),
        ({"recipe__label_smoothing": 0.0}, "recipe changed: label_smoothing 0.1 -> 0.0"),
        ({"data__test_examples": 5000}, "data changed: test_examples 10000 -> 5000"),
        ({"data__test_first_batch": "bbbb"}, "data changed: test_first_batch aaaa -> bbbb"),
    ],
)
def test_a_different_recipe_model_or_data_fails_as_changed_before_statistics(tmp_path, changes, words):
    (f,) = _with(tmp_path, {"fingerprint": _fp(**changes)}, {})
    assert f.verdict is Verdict.CHANGED and f.failed
    assert words in f.reason and f.reason.endswith("re-measure the baseline if intended")


def test_new_versions_are_a_note_and_the_decoder_digest_counts_only_with_the_same_versions(tmp_path):
    fp = _fp(environment__keras="3.16.0", data__test_first_batch="bbbb")
    (f,) = _with(tmp_path, {"fingerprint": fp}, {})
    assert f.verdict is Verdict.PASS and "versions differ (keras 3.15.1 -> 3.16.0): judged by the band" in f.reason


def test_missing_fingerprints_and_dirty_trees_are_said(tmp_path):
    before = {"id": "abcdef1234567", "dirty": True, "time": "2026-11-20T09:00:00+01:00"}  # code older than 631a30e
    (f,) = _with(tmp_path, {"fingerprint": None, "commit_info": before}, {})
    assert f.verdict is Verdict.PASS
    assert "result has no fingerprint" in f.reason and "dirty tree: uncommitted changes on abcdef1234" in f.reason
    (f,) = _with(tmp_path, {}, {"fingerprint": None})
    assert "baseline has no fingerprint: statistics only" in f.reason


@pytest.mark.parametrize(
    "when, verdict, words",
    [
        ({"commit_info": {"id": "9f51af5", "time": "2026-11-25T00:03:47+00:00"}}, Verdict.ERROR, "its commit is of"),
        ({"commit_info": {"id": None, "time": None}, "datetime": "2026-11-25T00:04:04+00:00"}, Verdict.ERROR, "ran on"),
        ({}, Verdict.ERROR, "no commit or run time"),
        ({"commit_info": {"id": None, "time": None}, "datetime": "2026-11-24T10:59:04+00:00"}, Verdict.PASS, "before"),
    ],
)
def test_a_result_without_a_fingerprint_from_code_that_writes_one_is_an_error(tmp_path, when, verdict, words):
    """Results did not change schema when fingerprints came (commit 631a30e): the time of the code
    that wrote one (its commit's, or outside git when it ran) says whether it could lack one."""
    (f, *_) = _with(tmp_path, {"fingerprint": None, **when}, {})
    assert f.verdict is verdict and words in f.reason


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"schema": 2, "fingerprint": None}, "has no fingerprint, which every result of schema 2 records"),
        ({"schema": 3}, "field 'schema' is 3; this harness reads schema 1 to 2 (a newer one wrote it?)"),
        ({"schema": 0}, "field 'schema' is 0"),
        ({"schema": "2"}, "field 'schema' is '2'; expected a whole number"),
    ],
)
def test_a_result_of_a_schema_this_harness_does_not_write_is_an_error(tmp_path, changes, words):
    """Schema 2 (today's) requires a fingerprint, whatever the result's dates say; a later schema was
    written by a newer harness, whose fields this one would misread."""
    (f, *_) = _with(tmp_path, changes, {})
    assert f.verdict is Verdict.ERROR and words in f.reason, f.reason


@pytest.mark.parametrize("fp", ["abc", [1], {"recipe": "x", "model": 1, "data": []}, _fp(model="x")])
def test_a_fingerprint_of_the_wrong_type_is_an_error(tmp_path, fp):
    (f,) = _with(tmp_path, {"fingerprint": fp}, {})
    assert f.verdict is Verdict.ERROR and "'fingerprint'" in f.reason


def test_the_loss_band_is_gated_beside_top1(tmp_path):
    band = {"mean": 0.76, "std": 0.02, "samples": {}, "tolerance": "loss:+10%"}
    top1, loss = _with(tmp_path, {"loss": 0.95}, {"loss": band})
    assert top1.verdict is Verdict.PASS and loss.metric == "loss" and loss.verdict is Verdict.REGRESSION
    assert "loss rose 25.00 %, beyond the ±10 % band" in loss.reason
    top1, loss = _with(tmp_path, {"loss": 0.5}, {"loss": band})
    assert loss.verdict is Verdict.UNEXPECTED
    with pytest.raises(BaselinesError, match="invalid loss tolerance"):
        _with(tmp_path, {}, {"loss": {**band, "tolerance": "loss:-10%"}})


def test_a_loss_equal_to_its_band_s_mean_passes_a_zero_band(tmp_path):
    """Seeds that all gave one loss make a ±0 band; that loss again is no change, though the band's
    mean is stored to 6 decimals and the run's loss is not."""
    band = {"mean": round(0.7123456789, 6), "std": 0.0, "samples": {}, "tolerance": "loss:+0%"}
    _, loss = _with(tmp_path, {"loss": 0.7123456789}, {"loss": band})
    assert loss.verdict is Verdict.PASS and "unchanged" in loss.reason, loss.reason
    _, loss = _with(tmp_path, {"loss": 0.7124}, {"loss": band})
    assert loss.verdict is Verdict.REGRESSION


@pytest.mark.parametrize("top1", [1e9, -0.5, 100.01])
def test_an_impossible_top1_is_an_error_never_an_improvement(tmp_path, top1):
    (f,) = _with(tmp_path, {"top1": top1}, {})
    assert f.verdict is Verdict.ERROR and "a top-1 percentage lies in [0, 100]" in f.reason  # bench.results


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"loss": -0.5}, "'loss' is -0.5; a cross-entropy is a finite number above 0"),
        ({"loss": 0}, "'loss' is 0; a cross-entropy"),
        ({"loss_no_tta": 0.0}, "'loss_no_tta' is 0.0"),
        ({"steps_run": -1170}, "'steps_run' is -1170; a count is never negative"),
        ({"epochs_run": -3}, "'epochs_run' is -3"),
        ({"steps_run": 0, "epochs_run": 0}, "'steps_run' is 0 in an ok run"),
        ({"steps_run": 1.5}, "'steps_run' is 1.5; expected a whole number"),
        ({"wall_time_s": -5}, "'wall_time_s' is -5; expected a finite number above 0"),
        ({"wall_time_s": 0}, "'wall_time_s' is 0"),
        ({"images_per_s": -5}, "'images_per_s' is -5"),
        ({"train_time_s": -1}, "'train_time_s' is -1; expected a finite number 0 or more"),
        ({"error": "boom"}, "'status' is 'ok' but field 'error' is 'boom'"),
    ],
)
def test_an_impossible_value_is_an_error_even_where_improvement_is_allowed(tmp_path, changes, words):
    band = {"mean": 0.76, "std": 0.02, "samples": {}, "tolerance": "loss:+10%"}
    for allow in (False, True):
        (f,) = _with(
            tmp_path, {"steps_run": 1170, "epochs_run": 3, **changes}, {"loss": band, "allow_improvement": allow}
        )
        assert f.verdict is Verdict.ERROR and words in f.reason, f.reason


def test_possible_values_of_a_failed_run_stay_readable(tmp_path):
    """A failed run may have no steps, no time in training and a non-finite loss (the gate names it)."""
    from bench import results

    doc = {**json.loads((RES / "result_pass.json").read_text()), "status": "failed", "error": "loss became nan"}
    doc.update(top1=None, loss=float("nan"), steps_run=0, epochs_run=0, train_time_s=0.0)
    assert results.check_training(doc, "x") is doc
    (f,) = _with(tmp_path, {k: v for k, v in doc.items() if k != "loss"}, {})
    assert f.verdict is Verdict.ERROR and "run failed: loss became nan" in f.reason


KEY = "smoke_resnet20_cifar10_jpeg|cifar10_jpeg|epochs=3|cpu@tensorflow"
THROUGHPUT_RUN = Path(__file__).parent / "fixtures" / "throughput" / "run_noise.json"


def _baselines_with_seeds(tmp_path, seeds):
    base = tmp_path / "baselines.json"
    base.write_text(json.dumps({"schema": 1, "throughput": {}, "accuracy": {}}))
    files = [_result(tmp_path, s, 75.0 + (s % 3) / 10) for s in seeds]
    assert main(["baselines", "update", *files, "--baselines", str(base)]) == 0
    return base


def test_update_validates_every_file_before_writing_any_section(tmp_path, capsys):
    """A good throughput file and a NaN training result: exit 2 and the file unchanged, byte for byte."""
    base = tmp_path / "baselines.json"
    base.write_text(json.dumps({"schema": 1, "throughput": {}, "accuracy": {}}))
    before = base.read_bytes()
    nan = _result(tmp_path, 101, None, status="failed", error="loss became nan")
    assert main(["baselines", "update", str(THROUGHPUT_RUN), nan, "--baselines", str(base)]) == 2
    assert "failed run" in capsys.readouterr().err and base.read_bytes() == before


def test_update_adds_seeds_to_an_entry_and_replaces_only_when_asked(tmp_path, capsys):
    base = _baselines_with_seeds(tmp_path, (101, 102, 103, 104, 105))
    assert main(["baselines", "update", _result(tmp_path, 106, 75.1), "--baselines", str(base)]) == 0
    entry = json.loads(base.read_text())["accuracy"][KEY]
    assert entry["n"] == 6 and sorted(entry["samples"]) == ["101", "102", "103", "104", "105", "106"]
    assert entry["tolerance_method"]  # from the six seeds' spread, not the recipe's default
    # the same seed with another value: refused, nothing written
    before = base.read_bytes()
    assert main(["baselines", "update", _result(tmp_path, 101, 70.0), "--baselines", str(base)]) == 2
    assert "--replace" in capsys.readouterr().err and base.read_bytes() == before
    assert main(["baselines", "update", _result(tmp_path, 101, 70.0), "--baselines", str(base), "--replace"]) == 0
    entry = json.loads(base.read_text())["accuracy"][KEY]
    assert entry["n"] == 1 and entry["samples"] == {"101": 70.0}


def test_concurrent_updates_all_land_and_the_file_keeps_its_mode(tmp_path, capsys):
    """Eight updates at once, each adding a seed: every seed is in the entry (the lock serialises
    the read-modify-writes); the file keeps the mode it had."""
    import concurrent.futures
    import os

    base = _baselines_with_seeds(tmp_path, (101, 102, 103))
    os.chmod(base, 0o644)
    files = [_result(tmp_path, s, 75.0) for s in range(110, 118)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda f: main(["baselines", "update", f, "--baselines", str(base)]), files))
    assert codes == [0] * 8
    entry = json.loads(base.read_text())["accuracy"][KEY]
    assert entry["n"] == 11 and os.stat(base).st_mode & 0o777 == 0o644


def test_a_baseline_seed_rerun_says_whether_it_reproduces_its_sample(tmp_path):
    """Same fingerprint and versions, op determinism, one of the baseline's seeds: the exact sample
    back, or a note that the numbers moved (a fresh draw: the band still decides)."""
    entry = {"samples": {"11": 74.6, "12": 75.4, "13": 75.0}}  # n 3, mean 75.0: the entry's
    (same,) = _with(tmp_path, {"config": {"deterministic": True}}, entry)
    assert same.verdict is Verdict.PASS and "reproduces the baseline's seed 11 exactly" in same.reason
    (moved,) = _with(tmp_path, {"config": {"deterministic": True}, "top1": 74.2}, entry)
    assert moved.verdict is Verdict.PASS and "numerics changed: seed 11 gave 74.6 in the baseline" in moved.reason
    (other,) = _with(tmp_path, {"config": {"deterministic": False}, "top1": 74.2}, entry)
    assert "numerics" not in other.reason and "reproduces" not in other.reason
    (new_versions,) = _with(
        tmp_path,
        {"config": {"deterministic": True}, "top1": 74.2, "fingerprint": _fp(environment__keras="3.16.0")},
        entry,
    )
    assert "numerics" not in new_versions.reason and "versions differ" in new_versions.reason


def test_adding_seeds_keeps_what_was_set_by_hand_and_a_seed_already_there_changes_nothing(tmp_path, capsys):
    base = _baselines_with_seeds(tmp_path, (101, 102, 103))
    doc = json.loads(base.read_text())
    doc["accuracy"][KEY].update(provenance="3 seeds by hand", allow_improvement=True, owner="ci team")
    base.write_text(json.dumps(doc))
    capsys.readouterr()
    assert main(["baselines", "update", _result(tmp_path, 104, 75.3), "--baselines", str(base)]) == 0
    entry = json.loads(base.read_text())["accuracy"][KEY]
    assert entry["n"] == 4 and entry["provenance"] == "3 seeds by hand"
    assert entry["allow_improvement"] is True and entry["owner"] == "ci team"
    # a seed already there with the same top-1: no change, nothing written (not even the time of update)
    before = base.read_bytes()
    capsys.readouterr()
    assert main(["baselines", "update", _result(tmp_path, 102, 75.0), "--baselines", str(base)]) == 0
    assert capsys.readouterr().out.strip() == "no change" and base.read_bytes() == before
    # --provenance gives another; --replace starts the entry over
    args = ["--baselines", str(base), "--provenance", "new words"]
    assert main(["baselines", "update", _result(tmp_path, 105, 75.1), *args]) == 0
    entry = json.loads(base.read_text())["accuracy"][KEY]
    assert entry["provenance"] == "new words" and entry["allow_improvement"] is True
    assert main(["baselines", "update", _result(tmp_path, 106, 75.1), "--baselines", str(base), "--replace"]) == 0
    entry = json.loads(base.read_text())["accuracy"][KEY]
    assert "allow_improvement" not in entry and entry["provenance"].startswith("measured: 1 seed(s) [106]")


@pytest.mark.parametrize("samples", [[1, 2], "x", {"400": float("nan")}, {"400": 175.0}, {"x": 75.0}])
def test_entry_samples_that_are_not_seed_to_top1_are_a_baselines_error(tmp_path, capsys, samples):
    base = _baselines_with_seeds(tmp_path, (101, 102, 103))
    doc = json.loads(base.read_text())
    doc["accuracy"][KEY]["samples"] = samples
    base.write_text(json.dumps(doc))
    capsys.readouterr()
    for argv in (["gate", _result(tmp_path, 9, 75.0)], ["baselines", "show"]):
        assert main([*argv, "--baselines", str(base)]) == 2
        err = capsys.readouterr().err
        words = "samples: field '400' is nan" if "nan" in repr(samples) else "has samples"  # NaN: load's check
        assert err.count("\n") == 1 and words in err and "Traceback" not in err
    doc["accuracy"][KEY].update(samples={"101": 75.0}, n=1, mean=75.0, std=None)
    doc["accuracy"][KEY]["loss"] = {"mean": 0.7, "tolerance": "loss:+10%", "samples": [0.7]}
    base.write_text(json.dumps(doc))
    with pytest.raises(BaselinesError, match="has loss samples"):
        accuracy.load_entries(base)


REPORTED = {
    "kind": "bench.reported",
    "recipe": "resnet56_cifar10",
    "dataset": "cifar10",
    "budget": "steps=64000",
    "top1": 93.0,
    "tolerance": "top1:-1pt",
    "provenance": "an article",
}


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"dataset": None}, "field 'dataset' is missing; expected a string"),
        ({"top1": "50"}, "field 'top1' is '50'; expected a number"),
        ({"top1": 101}, "a top-1 percentage lies in [0, 100]"),
        ({"provenance": ""}, "field 'provenance'"),
        ({"recipe": "x"}, "recipe 'x' is unknown"),
        ({"dataset": "cifar10_jpeg"}, "trains on cifar10, not 'cifar10_jpeg'"),
        ({"tolerance": None}, "no tolerance"),
        (
            {"budget": "epochs=-5"},
            "field 'budget' 'epochs=-5' is invalid; expected epochs=N, steps=N, minutes=M or full",
        ),
        ({"budget": "banana"}, "field 'budget' 'banana' is invalid"),
        ({"budget": "epochs=0"}, "field 'budget' 'epochs=0' is invalid; expected a positive number"),
    ],
)
def test_a_reported_figure_is_checked_before_it_becomes_an_entry(tmp_path, capsys, changes, words):
    doc = {k: v for k, v in {**REPORTED, **changes}.items() if v is not None}
    (tmp_path / "r.json").write_text(json.dumps(doc))
    base = tmp_path / "b.json"
    assert main(["baselines", "update", str(tmp_path / "r.json"), "--baselines", str(base)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err and "Traceback" not in err and not base.exists()
    (tmp_path / "r.json").write_text(json.dumps(REPORTED))
    assert main(["baselines", "update", str(tmp_path / "r.json"), "--baselines", str(base)]) == 0


@pytest.mark.parametrize("budget, key_budget", [("full", "steps=64000"), ("epochs=03", "epochs=3")])
def test_a_reported_budget_is_stored_as_the_gate_keys_a_run(tmp_path, capsys, budget, key_budget):
    """``full`` is the recipe's full budget and a number is written as runs write it: else the entry
    would match no result."""
    (tmp_path / "r.json").write_text(json.dumps({**REPORTED, "budget": budget}))
    base = tmp_path / "b.json"
    assert main(["baselines", "update", str(tmp_path / "r.json"), "--baselines", str(base)]) == 0
    (key,) = accuracy.load_entries(base)
    assert key == f"resnet56_cifar10|cifar10|{key_budget}|*"


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"mean": 90.0}, "has mean 90.0, but its 3 samples average 75.1"),
        ({"n": 50}, "has n 50 but 3 samples; n counts the seeds in samples"),
        ({"budget": "epochs=03"}, "has budget 'epochs=03'; expected it as runs record it, 'epochs=3'"),
        ({"budget": "banana"}, "has budget 'banana' is invalid; expected epochs=N"),
        (
            {"loss": {"mean": 0.9, "tolerance": "loss:+10%", "samples": {"101": 0.7, "102": 0.7, "103": 0.7}}},
            "has loss mean 0.9, but its 3 samples average 0.7",
        ),
    ],
)
def test_an_entry_whose_numbers_contradict_its_samples_is_a_baselines_error(tmp_path, capsys, changes, words):
    """The gate judges against the entry's mean: one its own seeds contradict (a hand edit) is refused."""
    base = _baselines_with_seeds(tmp_path, (101, 102, 103))  # top-1 75.2, 75.0, 75.1
    doc = json.loads(base.read_text())
    entry = doc["accuracy"][KEY]
    assert entry["mean"] == 75.1 and entry["n"] == 3
    entry.update(mean=75.10004)  # within the stored rounding of its samples' mean: fine
    base.write_text(json.dumps(doc))
    assert accuracy.load_entries(base)
    entry.update(changes)
    if "budget" in changes:  # the key follows its fields, so that only the budget is wrong
        doc["accuracy"] = {"|".join((entry["recipe"], entry["dataset"], entry["budget"], entry["device"])): entry}
    base.write_text(json.dumps(doc))
    capsys.readouterr()
    assert main(["baselines", "show", "--baselines", str(base)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err and "Traceback" not in err


def test_a_bad_fingerprint_is_one_file_error_and_the_others_are_judged(tmp_path, capsys):
    good = _result(tmp_path, 11, 74.6)
    bad = _result(tmp_path, 12, 74.6, fingerprint={"recipe": "x", "model": 1, "data": []})
    findings = accuracy.gate([good, bad], OK)
    assert [f.verdict for f in findings] == [Verdict.PASS, Verdict.ERROR] and "fingerprint" in findings[1].reason
    base = tmp_path / "b.json"
    assert main(["baselines", "update", bad, "--baselines", str(base)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'fingerprint' has recipe" in err and not base.exists()


def test_empty_paths_are_refused_and_a_new_baselines_folder_is_made(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(RES / "result_pass.json", tmp_path)  # '' must not read the current directory
    assert main(["gate", "", "--baselines", OK]) == 2
    assert "result path '' is empty" in capsys.readouterr().err
    assert main(["gate", str(RES / "result_pass.json"), "--baselines", OK, "--json", ""]) == 2
    assert "--json '' names no file" in capsys.readouterr().err
    new = tmp_path / "new" / "sub" / "b.json"
    assert main(["baselines", "update", "--reported", "--baselines", str(new), "--dry-run"]) == 0
    assert not (tmp_path / "new").exists()
    assert main(["baselines", "update", "--reported", "--baselines", str(new)]) == 0
    assert len(accuracy.load_entries(new)) == 3
    # an update that fails leaves no folder behind
    other = tmp_path / "other" / "b.json"
    assert main(["baselines", "update", _result(tmp_path, 3, 75.0), "--baselines", str(other)]) == 2
    assert not (tmp_path / "other").exists()


@pytest.mark.parametrize("extra", [["{res}"], ["--replace"], ["--provenance", "x"], ["--dry-run"]])
def test_baselines_show_refuses_what_only_update_reads(capsys, extra):
    argv = [a.replace("{res}", str(RES / "result_pass.json")) for a in extra]
    assert main(["baselines", "show", *argv, "--baselines", OK]) == 2
    assert "baselines show takes no result files or update options" in capsys.readouterr().err


@pytest.mark.parametrize("fp", [{"recipe": {}, "model": {"groups": "x"}, "data": {}}, {**FP, "model": "x"}])
def test_an_entry_fingerprint_the_gate_cannot_read_is_a_baselines_error(tmp_path, fp):
    with pytest.raises(BaselinesError, match="has a fingerprint that has model"):
        _with(tmp_path, {}, {"fingerprint": fp})


# ---------------------------------------------------------------------------------------------
# Outputs that are inputs, edited fingerprints, disagreeing workers, the loss band kept


def test_gate_json_never_writes_over_what_the_gate_reads(tmp_path, capsys):
    """--json naming the baselines, a result (named, in a named directory, or through a symlink):
    one line, exit 2, every file as it was."""
    base = tmp_path / "b.json"
    shutil.copy(OK, base)
    results = tmp_path / "results"
    results.mkdir()
    shutil.copy(RES / "result_pass.json", results / "r.json")
    link = tmp_path / "link.json"
    link.symlink_to(results / "r.json")
    before = {p: p.read_bytes() for p in (base, results / "r.json")}
    for given, out in (
        ([str(results / "r.json")], base),
        ([str(results / "r.json")], results / "r.json"),
        ([str(results)], results / "r.json"),
        ([str(results / "r.json")], link),
    ):
        assert main(["gate", *given, "--baselines", str(base), "--json", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is the input" in err and "Traceback" not in err
        assert {p: p.read_bytes() for p in before} == before and link.is_symlink()


def test_gate_json_writes_through_a_symlink_and_refuses_a_fifo(tmp_path, capsys):
    import os

    target = tmp_path / "findings" / "f.json"
    target.parent.mkdir()
    target.write_text("{}")
    link = tmp_path / "f.json"
    link.symlink_to(target)
    assert main(["gate", str(RES / "result_pass.json"), "--baselines", OK, "--json", str(link)]) == 0
    assert link.is_symlink() and json.loads(target.read_text())["exit_code"] == 0
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    capsys.readouterr()
    assert main(["gate", str(RES / "result_pass.json"), "--baselines", OK, "--json", str(fifo)]) == 2
    assert "is not a regular file" in capsys.readouterr().err and fifo.is_fifo()


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"fingerprint": {**FULL, "digest": "0000000000000000"}}, '"0000000000000000", which does not match its parts'),
        ({"fingerprint": {k: v for k, v in FULL.items() if k != "digest"}}, "has no digest"),
        ({"fingerprint": {**_fp(FULL, model__params=11), "digest": FULL["digest"]}}, "does not match its parts"),
        ({"fingerprint": _fp(FULL, training=DROP)}, "lacks training but has evaluation"),
        ({"fingerprint": _fp(FULL, data__train_first_batch=DROP)}, "lacks data.train_first_batch"),
        # stripped to what the first fingerprints held, digest and all: today's schema always has more
        (
            {"schema": 2, "fingerprint": FP},
            "lacks training, evaluation, data.train_first_batch, which every result of schema 2",
        ),
        (
            {"schema": 2, "fingerprint": _fp(FULL, data__train_first_batch=DROP, training=DROP, evaluation=DROP)},
            "lacks",
        ),
    ],
)
def test_an_edited_or_incomplete_fingerprint_is_an_error_never_a_pass(tmp_path, changes, words):
    (f,) = _with(tmp_path, changes, {"fingerprint": FULL})
    assert f.verdict is Verdict.ERROR and words in f.reason and "edited or corrupt" in f.reason, f.reason


def test_a_fingerprint_that_predates_parts_still_passes_with_a_note(tmp_path):
    """Schema 1, recorded before training and evaluation existed (its digest over what it has)."""
    (f,) = _with(tmp_path, {"fingerprint": FP}, {"fingerprint": FULL})
    assert f.verdict is Verdict.PASS and "not compared: training, data.train_first_batch, evaluation" in f.reason
    (f,) = _with(tmp_path, {"schema": 2, "fingerprint": FULL}, {"fingerprint": FULL})
    assert f.verdict is Verdict.PASS


def test_a_seed_whose_fingerprint_predates_parts_never_weakens_the_entrys(tmp_path, capsys):
    """The entry keeps its fuller fingerprint: a changed optimizer still fails as changed after."""
    base = tmp_path / "baselines.json"
    base.write_text(json.dumps({"schema": 1, "throughput": {}, "accuracy": {}}))
    files = [_result(tmp_path, s, 75.0 + s % 3 / 10, fingerprint=FULL) for s in (101, 102, 103)]
    assert main(["baselines", "update", *files, "--baselines", str(base)]) == 0
    nesterov = _result(tmp_path, 9, 75.0, fingerprint=_fp(FULL, training__optimizer__nesterov=False))
    assert main(["gate", nesterov, "--baselines", str(base)]) == 1
    assert main(["baselines", "update", _result(tmp_path, 104, 75.1, fingerprint=FP), "--baselines", str(base)]) == 0
    entry = json.loads(base.read_text())["accuracy"][KEY]
    assert entry["n"] == 4 and entry["fingerprint"] == FULL
    capsys.readouterr()
    assert main(["gate", nesterov, "--baselines", str(base)]) == 1
    assert "training changed: optimizer nesterov true -> false" in capsys.readouterr().out


def test_a_job_whose_workers_disagree_is_an_error_and_never_a_baseline(tmp_path, capsys):
    job = {"workers": 2, "task_index": 0, "weights_sha256": "ab" * 32, "workers_agree": False}
    (f,) = _with(tmp_path, {"cluster": job}, {})
    assert f.verdict is Verdict.ERROR and "2 workers ended with different weights" in f.reason
    (f,) = _with(tmp_path, {"cluster": {**job, "workers_agree": True}}, {})
    assert f.verdict is Verdict.PASS
    base = tmp_path / "new.json"
    assert main(["baselines", "update", _result(tmp_path, 101, 75.0, cluster=job), "--baselines", str(base)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "different weights" in err and not base.exists()


def test_a_run_without_a_loss_cannot_drop_an_entrys_loss_band(tmp_path, capsys):
    base = tmp_path / "baselines.json"
    base.write_text(json.dumps({"schema": 1, "throughput": {}, "accuracy": {}}))
    files = [_result(tmp_path, s, 75.0 + s % 3 / 10, loss=0.7 + s % 3 / 1000) for s in (101, 102, 103)]
    assert main(["baselines", "update", *files, "--baselines", str(base)]) == 0
    assert json.loads(base.read_text())["accuracy"][KEY]["loss"]["samples"]
    before = base.read_bytes()
    capsys.readouterr()
    assert main(["baselines", "update", _result(tmp_path, 104, 75.1, loss=None), "--baselines", str(base)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has loss None" in err and "gates the test loss" in err
    assert base.read_bytes() == before


@pytest.mark.parametrize("mean", [0, 0.0, -0.1])
def test_a_loss_band_whose_mean_is_not_above_0_is_a_baselines_error(tmp_path, capsys, mean):
    band = {"mean": mean, "std": 0.02, "samples": {}, "tolerance": "loss:+10%"}
    with pytest.raises(BaselinesError, match=f"has loss .*'mean': {mean}.*above 0"):
        _with(tmp_path, {}, {"loss": band})
    capsys.readouterr()
    out = tmp_path / "f.json"
    assert main(["gate", str(tmp_path / "r.json"), "--baselines", str(tmp_path / "b.json"), "--json", str(out)]) == 2
    assert capsys.readouterr().err.count("\n") == 1 and not out.exists()
