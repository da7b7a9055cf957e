"""Pair statistics on synthetic processes: no TensorFlow, fast."""

import numpy as np
import pytest

from bench.ab import runner, verdict
from tests.ab.fakes import CASES, SIDES, fake_measure

TRAIN, INFER = list(CASES)


def pairs(n=8, seed=0, **kwargs):
    return runner.run_pairs(
        SIDES,
        n,
        runner.one_by_one(fake_measure(seed=seed, **kwargs)),
        rng=np.random.default_rng(seed),
        log=lambda *a: None,
    )


def test_five_percent_slowdown_is_flagged_slower():
    rows = verdict.evaluate(pairs(slowdown=0.05), threshold=0.02)
    assert {r["verdict"] for r in rows.values()} == {verdict.SLOWER}
    assert rows[TRAIN]["ratio"] == pytest.approx(0.95, abs=0.01)
    assert rows[TRAIN]["lo"] < rows[TRAIN]["ratio"] < rows[TRAIN]["hi"] < 1


@pytest.mark.parametrize("seed", range(20))
def test_identical_distributions_are_not_flagged(seed):
    rows = verdict.evaluate(pairs(seed=seed, cv=0.03), threshold=0.05)
    assert all(r["verdict"] in (verdict.SAME, verdict.INCONCLUSIVE) for r in rows.values())


def test_drift_that_slows_both_sides_cancels():
    # the machine halves its speed half-way through (another job starts): rounds of one run against
    # rounds of another would call that a regression; pairs do not
    drift = lambda i: 1.0 if i < 8 else 0.5
    rows = verdict.evaluate(pairs(n=8, drift=drift, cv=0.01), threshold=0.02)
    assert all(r["verdict"] == verdict.SAME for r in rows.values())
    assert rows[INFER]["ratio"] == pytest.approx(1.0, abs=0.02)


def test_too_noisy_to_tell_is_inconclusive_not_no_change():
    rows = verdict.evaluate(pairs(n=3, cv=0.3), threshold=0.05)
    assert all(r["verdict"] == verdict.INCONCLUSIVE and r["lo"] < 0.95 for r in rows.values())
    assert verdict.regressed(verdict.confirm(rows, {})) == []


def test_faster_is_reported_and_not_a_regression():
    rows = verdict.evaluate(pairs(slowdown=-0.10), threshold=0.05)
    assert {r["verdict"] for r in rows.values()} == {verdict.FASTER}
    assert verdict.regressed(verdict.confirm(rows, {})) == []


def test_pairs_come_in_counterbalanced_blocks():
    orders = ["".join(x[0] for x in p["order"]) for p in pairs(n=8, seed=3)]
    assert all({orders[i], orders[i + 1]} == {"BH", "HB"} for i in range(0, 8, 2))


def test_slowdown_within_the_threshold_is_no_change():
    rows = verdict.evaluate(pairs(slowdown=0.02, cv=0.002), threshold=0.05)
    assert all(r["verdict"] == verdict.SAME and r["hi"] < 1 for r in rows.values())


def test_confirmation_needs_the_second_set_to_agree():
    first = verdict.evaluate(pairs(slowdown=0.10, seed=1), threshold=0.05)
    again = verdict.evaluate(pairs(slowdown=0.10, seed=2), threshold=0.05)
    gone = verdict.evaluate(pairs(seed=3), threshold=0.05)
    assert all(r["confirmed"] for r in verdict.confirm(first, again).values())
    assert not any(r["confirmed"] for r in verdict.confirm(first, gone).values())
    assert verdict.regressed(verdict.confirm(first, gone)) == []
    assert set(verdict.regressed(verdict.confirm(first, again))) == set(CASES)


def test_an_errored_case_fails_and_the_others_are_judged():
    rows = verdict.evaluate(pairs(errors=(TRAIN,)), threshold=0.05)
    assert rows[TRAIN]["verdict"] == verdict.ERROR and "oom" in rows[TRAIN]["error"]
    assert rows[INFER]["verdict"] == verdict.SAME
    assert verdict.regressed(verdict.confirm(rows, {})) == [TRAIN]


def test_calibration_is_the_furthest_reach_of_the_aa_intervals():
    rows = verdict.evaluate(pairs(cv=0.03), threshold=0.0)
    cal = verdict.calibration(rows)
    assert cal == pytest.approx(max(max(1 - r["lo"], r["hi"] - 1) for r in rows.values()))
    assert 0 < cal < 0.1


def test_interval_needs_two_pairs():
    with pytest.raises(ValueError, match="at least 2"):
        verdict.interval([1.0])


def test_paired_accuracy_deterministic_and_noisy_pairs():
    from bench.ab import accuracy

    exact = accuracy.paired([70.0, 71.0, 69.5], [69.6, 70.6, 69.1], tolerance=0.3, alpha=0.05)
    assert exact["verdict"] == accuracy.LOWER and exact["mean"] == pytest.approx(-0.4)
    same = accuracy.paired([70.0, 71.0, 69.5], [70.0, 71.0, 69.5], tolerance=0.3, alpha=0.05)
    assert same["verdict"] == accuracy.SAME and same["p"] == 1.0
    noisy = accuracy.paired([70.0, 71.0, 69.5], [69.0, 71.8, 69.1], tolerance=0.3, alpha=0.05)
    assert noisy["verdict"] == accuracy.SAME


def pair_of(base_samples, head_samples, *, interleaved):
    side = lambda s: {
        "cases": {TRAIN: {"median": float(np.median(s)), "samples": s, "error": None}},
        **({"interleaved": True} if interleaved else {}),
    }
    return {"pair": 0, "order": ["BASE", "HEAD"], "BASE": side(base_samples), "HEAD": side(head_samples)}


# a load that comes and goes, falling on both sides' neighbouring rounds alike; HEAD 5 % slower throughout
BASE_ROUNDS, HEAD_ROUNDS = [1000.0, 600.0, 1000.0, 600.0, 600.0], [950.0, 570.0, 950.0, 570.0, 950.0]


def test_rounds_taken_in_turns_are_compared_round_by_round():
    values, error = verdict.ratios([pair_of(BASE_ROUNDS, HEAD_ROUNDS, interleaved=True)], TRAIN)
    assert error is None and values == [pytest.approx(0.95)]


def test_rounds_of_processes_run_one_after_the_other_are_not_paired():
    # no round of one process ran beside a round of the other: only their medians compare
    values, _ = verdict.ratios([pair_of(BASE_ROUNDS, HEAD_ROUNDS, interleaved=False)], TRAIN)
    assert values == [pytest.approx(950.0 / 600.0)]
    values, _ = verdict.ratios([pair_of(BASE_ROUNDS, HEAD_ROUNDS[:4], interleaved=True)], TRAIN)
    assert values == [pytest.approx(760.0 / 600.0)]  # rounds that do not match up: medians


def test_each_pair_is_logged_with_the_ratio_the_verdict_counts():
    # taking turns: the median of the round-by-round ratios (0.950), not the ratio of the medians (950/600)
    pair = pair_of(BASE_ROUNDS, [950.0, 570.0, 950.0, 600.0, 950.0], interleaved=True)
    (value,), _ = verdict.ratios([pair], TRAIN)
    assert runner._pair_line(pair) == f"resnet20-train {value:.3f}" and f"{value:.3f}" == "0.950"
    pair = pair_of(BASE_ROUNDS, HEAD_ROUNDS, interleaved=False)
    assert runner._pair_line(pair) == f"resnet20-train {950.0 / 600.0:.3f}"
    pair["HEAD"]["cases"][TRAIN]["error"] = "oom"
    assert runner._pair_line(pair) == "resnet20-train error"


def _take_for(measure):
    """``experiment.grow``'s ``take`` over synthetic processes: pairs run for the asked cases only."""
    taken = []

    def take(count, cases, start):
        new = runner.run_pairs(
            SIDES,
            count,
            runner.one_by_one(measure),
            rng=np.random.default_rng(start),
            start=start,
            asked=cases,
            log=lambda *a: None,
        )
        for p in new:
            for label in ("BASE", "HEAD"):
                p[label]["cases"] = {k: v for k, v in p[label]["cases"].items() if k in cases}
        taken.append((count, sorted(cases)))
        return new

    return take, taken


def test_only_undecided_cases_grow_and_only_their_pairs_count():
    from bench.ab.experiment import grow

    first = pairs(n=2, seed=1, cv=0.02)  # two pairs: every interval too wide to decide
    assert set(verdict.undecided(verdict.evaluate(first, 0.02), 0.05)) == {TRAIN, INFER}
    take, taken = _take_for(fake_measure(seed=2, cv=0.02))
    grown = grow(first, take, limit=7, threshold=0.02, detect=0.05, among=[INFER], log=lambda *a: None)
    assert all(cases == [INFER] for _, cases in taken) and [n for n, _ in taken][-1] in (1, 2)
    rows = verdict.evaluate(grown, 0.02)
    assert rows[TRAIN]["n"] == 2 and rows[INFER]["n"] == len(grown) > 2  # TRAIN's row ignores INFER's pairs
    assert len(grown) == 7 or verdict.undecided(rows, 0.05, [INFER]) == []


def test_a_set_does_not_grow_past_its_limit_or_once_decided():
    from bench.ab.experiment import grow

    take, taken = _take_for(fake_measure(seed=4, cv=0.02))
    assert grow(pairs(n=4, seed=4), take, limit=4, threshold=0.02, detect=0.05, log=lambda *a: None) and taken == []
    flagged = pairs(n=6, seed=5, slowdown=0.2)
    assert verdict.undecided(verdict.evaluate(flagged, 0.02), 0.05) == []
    assert len(grow(flagged, take, limit=12, threshold=0.02, detect=0.05, log=lambda *a: None)) == 6 and taken == []


def test_a_failed_confirming_set_is_an_error_not_not_confirmed():
    first = verdict.evaluate(pairs(slowdown=0.10, seed=1), threshold=0.05)
    failed = verdict.evaluate(pairs(slowdown=0.10, seed=2, errors=(TRAIN,)), threshold=0.05)
    rows = verdict.confirm(first, failed)
    assert rows[TRAIN]["confirmed"] is None and "oom" in rows[TRAIN]["confirmation_error"]
    assert rows[INFER]["confirmed"] is True
    assert set(verdict.regressed(rows)) == {TRAIN, INFER}
    missing = verdict.confirm(first, {})  # no confirming pair measured it at all
    assert set(verdict.regressed(missing)) == set(CASES) and all(r["confirmation_error"] for r in missing.values())
