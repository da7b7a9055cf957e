"""The figures script's re-judging of a stored A/B document at another threshold."""

import numpy as np
import pytest

from bench.ab import runner, verdict
from bench.ab.figures import rejudge
from tests.ab.fakes import SIDES, fake_measure


def document(slowdown: float, threshold: float, seed: int = 0) -> dict:
    """What ``ab`` stores, from synthetic pairs: 4 pairs, and 4 confirming ones for the flagged cases."""
    rng = np.random.default_rng(seed)
    measure = runner.one_by_one(fake_measure(slowdown=slowdown, cv=0.005, seed=seed))
    pairs = runner.run_pairs(SIDES, 4, measure, rng=rng, log=lambda *a: None)
    first = verdict.evaluate(pairs, threshold)
    flagged = [k for k, r in first.items() if r["verdict"] == verdict.SLOWER]
    second = runner.run_pairs(SIDES, 4, measure, rng=rng, start=4, log=lambda *a: None) if flagged else []
    return {"threshold": {"value": threshold}, "pairs": pairs, "confirmation_pairs": second}


def test_a_run_at_two_percent_is_judged_again_at_five():
    doc = document(slowdown=0.03, threshold=0.02)
    assert len(rejudge(doc, 0.02)) == 2  # both cases 3 % slower: confirmed at 2 %
    assert rejudge(doc, 0.05) == []  # within 5 %: no regression there
    assert len(rejudge(document(slowdown=0.10, threshold=0.02), 0.05)) == 2


def test_a_run_cannot_be_judged_below_its_own_threshold():
    with pytest.raises(ValueError, match="confirming pairs are missing"):
        rejudge(document(slowdown=0.0, threshold=0.05), 0.02)
