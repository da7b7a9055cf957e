"""bench.results: the per-image bits a training result records for each evaluation; impossible values."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from bench import results
from bench.errors import UsageError
from bench.results import decode_correct, encode_correct


@pytest.mark.parametrize("n", [1, 7, 8, 9, 10_000])
def test_per_image_bits_round_trip_at_any_length(n):
    right = np.random.default_rng(n).random(n) < 0.7
    text = encode_correct(right)
    assert len(text) == 4 * -(-((n + 7) // 8) // 3)  # base64 of one bit per image, packed
    np.testing.assert_array_equal(decode_correct(text, n), right)


@pytest.mark.parametrize(
    ("text", "n", "message"),
    [
        (encode_correct([True] * 16), 24, "16 bits recorded for 24 test images"),
        (encode_correct([True] * 16), 8, "16 bits recorded for 8 test images"),
        ("not base64!", 8, "not base64"),
    ],
)
def test_bits_that_do_not_fit_the_test_split_are_refused(text, n, message):
    with pytest.raises(ValueError, match=message):
        decode_correct(text, n)


# ---------------------------------------------------------------------------------------------
# A training result's impossible values: one line naming the field, whoever reads it (gate,
# baselines update, report)

RESULT = Path(__file__).parents[1] / "regression" / "fixtures" / "accuracy" / "results" / "result_pass.json"


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"top1_no_tta": float("nan")}, "'top1_no_tta' is nan; a top-1 percentage lies in [0, 100]"),
        ({"top1": float("inf")}, "'top1' is inf"),
        ({"stopped_by": "non-finite loss"}, "'status' is 'ok' but training stopped on a non-finite loss"),
        ({"stopped_by": "boredom"}, "'stopped_by' is 'boredom'; expected one of budget, steps, deadline"),
        ({"epochs_run": 0}, "'epochs_run' is 0 in an ok run"),
        ({"processes": 0}, "'processes' is 0 in an ok run"),
        ({"schema": 3}, "'schema' is 3; this harness reads schema 1 to 2"),
    ],
)
def test_an_impossible_training_result_is_one_line(changes, words):
    doc = {**json.loads(RESULT.read_text()), **changes}
    with pytest.raises(UsageError, match=re.escape(words)):
        results.check_training(doc, "r.json")


def test_a_failed_run_may_have_stopped_on_a_nan_with_no_top1():
    doc = json.loads(RESULT.read_text())
    doc.update(status="failed", error="loss became nan", stopped_by="non-finite loss", top1=float("nan"), processes=1)
    assert results.check_training(doc, "r.json") is doc


# ---------------------------------------------------------------------------------------------
# A throughput result's impossible cases and quartiles: a baseline key no run can match, a spread below 0


def _throughput(**case_changes) -> dict:
    from tests.throughput.documents import bench, case, doc

    return doc([bench({**case(), **case_changes}, 1000.0)])


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"batch_size": -128}, "field 'batch_size' is -128; a batch holds 1 image or more"),
        ({"batch_size": 0}, "field 'batch_size' is 0"),
        ({"mode": "trian"}, "field 'mode' is 'trian'; valid: train, infer"),
        ({"precision": "fp64"}, "field 'precision' is 'fp64'; valid: fp32, mixed_bf16, mixed_fp16"),
        ({"backend": "tensorflw"}, "field 'backend' is 'tensorflw'; valid: tensorflow, jax, torch"),
        ({"compile": "maybe"}, "field 'compile' is 'maybe'; valid: on, off, auto"),
        ({"data": "fake"}, "field 'data' is 'fake'; valid: synthetic, real"),
    ],
)
def test_a_case_the_harness_cannot_run_is_one_line(changes, words):
    doc = _throughput(**changes)
    with pytest.raises(UsageError, match=re.escape(f"benchmarks[0].extra_info.case: {words}")):
        results.check_throughput(doc, "result file 'x.json'")
    doc["errors"] = [{"error": "oom", "id": "x", "case": doc["benchmarks"].pop()["extra_info"]["case"]}]
    with pytest.raises(UsageError, match=re.escape(f"errors[0].case: {words}")):
        results.check_throughput(doc, "result file 'x.json'")


def test_every_case_the_harness_can_run_is_accepted():
    for changes in [{"mode": "infer", "precision": "mixed_bf16", "backend": "jax", "compile": "auto"}, {}]:
        results.check_throughput(_throughput(**changes), "x")
    old = _throughput()
    old["benchmarks"][0]["extra_info"]["case"] = {"model": "resnet20", "mode": "train", "xla": "on", "batch_size": 1}
    results.check_throughput(old, "x")  # written before the backend axis


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"q1": 1100.0, "q3": 900.0, "iqr": -200.0}, "field 'q1' is 1100.0, above field 'q3' 900.0; expected q1 <= q3"),
        ({"iqr": -200.0}, "field 'iqr' is -200.0; an interquartile range is 0 or more"),
    ],
)
def test_quartiles_out_of_order_are_one_line(changes, words):
    doc = _throughput()
    doc["benchmarks"][0]["extra_info"]["images_per_s"].update(changes)
    with pytest.raises(UsageError, match=re.escape(f"benchmarks[0].extra_info.images_per_s: {words}")):
        results.check_throughput(doc, "x")


@pytest.mark.parametrize("cases", ["abc", [1, 2], [["resnet20-train"]]])
def test_planned_cases_that_are_not_a_list_of_ids_are_one_line(cases):
    """``compare`` holds a run to the cases it planned: a string was read as one case per letter and
    a list of numbers as no case at all (a pass)."""
    doc = _throughput()
    doc["harness"]["options"] = {"cases": cases}
    with pytest.raises(UsageError, match=re.escape("x harness.options: field 'cases' is ") + ".*a list of strings"):
        results.check_throughput(doc, "x")
