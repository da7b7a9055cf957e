import math

import pytest

from bench.errors import UsageError
from bench.regression import rules
from bench.regression.rules import Finding, Rule, Verdict, exit_code, format_table, judge


def test_rule_parsing_and_direction():
    r = Rule.parse("throughput:-5%")
    assert (r.metric, r.tolerance, r.unit, r.higher_is_better) == ("throughput", 5.0, "%", True)
    assert str(r) == "throughput:-5%"
    lat = Rule.parse(" latency:+2.5% ")
    assert not lat.higher_is_better
    acc = Rule.parse("top1:-0.5pt")
    assert acc.change(93.0, 93.4) == pytest.approx(-0.4)
    assert r.change(90.0, 100.0) == pytest.approx(-10.0)
    assert lat.change(110.0, 100.0) == pytest.approx(-10.0)  # slower is worse


@pytest.mark.parametrize(
    "bad",
    ["throughput", "throughput:5%", "throughput:-5", "top1:-x pt", ":-5%", "a:-5%%", "throughput:-٥%", 5, None, ["x"]],
)
def test_bad_rules_are_usage_errors(bad):
    with pytest.raises(UsageError, match="invalid; expected METRIC"):
        Rule.parse(bad)


RULE = Rule.parse("throughput:-5%")


@pytest.mark.parametrize(
    "current, baseline, kwargs, verdict",
    [
        (100.0, 100.0, {}, Verdict.PASS),
        (96.0, 100.0, {}, Verdict.PASS),
        (90.0, 100.0, {}, Verdict.REGRESSION),
        (90.0, 100.0, {"significant": True}, Verdict.REGRESSION),
        (90.0, 100.0, {"significant": False}, Verdict.PASS),
        (110.0, 100.0, {}, Verdict.IMPROVEMENT),
        (110.0, 100.0, {"significant": False}, Verdict.PASS),
        (110.0, 100.0, {"two_sided": True}, Verdict.UNEXPECTED),
        (104.0, 100.0, {"two_sided": True}, Verdict.PASS),
        (90.0, 100.0, {"two_sided": True}, Verdict.REGRESSION),
        (100.0, None, {}, Verdict.NO_BASELINE),
        (math.nan, 100.0, {}, Verdict.ERROR),
        (math.inf, 100.0, {}, Verdict.ERROR),
        (None, 100.0, {}, Verdict.ERROR),
        (100.0, math.nan, {}, Verdict.ERROR),
        (100.0, 100.0, {"error": "ResourceExhaustedError: OOM"}, Verdict.ERROR),
    ],
)
def test_verdicts(current, baseline, kwargs, verdict):
    f = judge("resnet20/train", RULE, current, baseline, **kwargs)
    assert f.verdict is verdict
    assert f.failed == (verdict in (Verdict.REGRESSION, Verdict.UNEXPECTED, Verdict.NO_BASELINE, Verdict.ERROR))


def test_exit_code_fails_on_any_failure_and_on_nothing():
    ok = judge("a", RULE, 100.0, 100.0)
    bad = judge("b", RULE, 50.0, 100.0)
    assert exit_code([ok]) == 0
    assert exit_code([ok, bad]) == 1
    assert exit_code([]) == 1  # a gate with nothing to judge never passes


def test_table_says_why():
    table = format_table([judge("resnet20/train", RULE, 90.0, 100.0), judge("x", RULE, 1.0, None)])
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["key", "metric", "current"]
    assert (
        "REGRESSION" in lines[2]
        and "-10.00%" in lines[2]
        and "throughput fell 10.00 %, beyond the 5 % tolerance" in lines[2]
    )
    assert "NO BASELINE" in lines[3]
    assert isinstance(judge("a", RULE, 1.0, 1.0).to_dict()["verdict"], str)
    assert Finding("k", "m", Verdict.PASS).to_dict()["verdict"] == "pass"


@pytest.mark.parametrize("text", ["top1:-1pt", "throughput:+5%", "throughput:-5pt"])
def test_a_rule_for_the_wrong_metric_unit_or_direction_is_refused(text):
    with pytest.raises(UsageError, match=r"expected 'throughput:-N%'"):
        rules.Rule.parse_for(text, metric="throughput", unit="%")
    assert str(rules.Rule.parse_for("throughput:-7%", metric="throughput", unit="%")) == "throughput:-7%"


def test_accuracy_tolerance_is_the_prediction_interval_rounded_up():
    # std of (74, 76, 74, 76) = 2/sqrt(3); t(0.9995, 3) = 12.924 (tables) x 2/sqrt(3) x sqrt(1.25) = 16.685 -> 16.69
    rule, how = rules.prediction_rule([74.0, 76.0, 74.0, 76.0])
    assert rule == "top1:-16.69pt" and "t(0.9995, 3) = 12.92" in how["tolerance_method"]
    # a loss band: lower is better, relative to the mean (16.685 / 75 = 22.25 %)
    loss, _ = rules.prediction_rule([0.74, 0.76, 0.74, 0.76], metric="loss", unit="%", higher_is_better=False)
    assert loss == "loss:+22.25%"


def test_reasons_read_naturally_in_both_directions():
    band = Rule.parse("loss:+10%")
    worse = judge("k", band, 1.2, 1.0, two_sided=True)
    assert worse.verdict is Verdict.REGRESSION and worse.reason == "loss rose 20.00 %, beyond the ±10 % band"
    better = judge("k", band, 0.8, 1.0, two_sided=True)
    assert better.verdict is Verdict.UNEXPECTED and better.reason.startswith("loss fell 20.00 %, beyond the ±10 % band")
    assert judge("k", band, 1.0, 1.0, two_sided=True).reason == "loss unchanged, within the ±10 % band"
    # a change past the tolerance that the noise explains passes, and is not called "within" it
    for current in (0.8, 1.2):
        noise = judge("k", band, current, 1.0, two_sided=True, significant=False, note="between 3 runs: ±25%")
        assert noise.verdict is Verdict.PASS
        assert noise.reason.endswith("beyond the ±10 % band but not significant; between 3 runs: ±25%")


def test_a_changed_fingerprint_is_its_own_failing_verdict():
    f = rules.changed("k", "top1", {"model": ["conv1_bn momentum 0.99 -> 0.5"]}, note="dirty tree")
    assert f.verdict is Verdict.CHANGED and f.failed
    assert f.reason == "model changed: conv1_bn momentum 0.99 -> 0.5; re-measure the baseline if intended; dirty tree"


def test_numbers_in_the_table_stay_short_whatever_their_size():
    """A hand-edited or overflowing value (a loss of 1e308) must not print as a 300-digit number."""
    assert [rules._num(x) for x in (None, 1.5, 12345.6, 1e308, -1e20)] == ["-", "1.5", "12,346", "1e+308", "-1e+20"]


def test_a_test_that_could_not_have_found_the_change_never_passes_it():
    rule = Rule.parse("throughput:-5%")
    why = "the rank test over 3 and 3 rounds cannot reach p < 0.01"
    f = judge("k", rule, 50.0, 100.0, significant=False, untestable=why)
    assert f.verdict == Verdict.ERROR and f.failed and f"cannot judge: {why}" in f.reason
    assert judge("k", rule, 150.0, 100.0, significant=False, untestable=why).verdict == Verdict.ERROR
    assert (
        judge("k", rule, 98.0, 100.0, significant=False, untestable=why).verdict == Verdict.PASS
    )  # within: no test needed
    assert (
        judge("k", rule, 50.0, 100.0, significant=False).verdict == Verdict.PASS
    )  # a test that could: not significant


def test_a_change_that_is_not_a_finite_number_is_an_error():
    f = judge("k", Rule.parse("throughput:-5%"), 1e308, 300.0)  # 100 x 1e308 overflows
    assert f.verdict == Verdict.ERROR and f.change is None and "not a finite number" in f.reason
