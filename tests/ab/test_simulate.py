"""The design replay (``bench.ab.simulate``) on recorded runs written here: its pools, and its verdicts
coming from ``experiment.decide`` itself."""

import json

import numpy as np
import pytest

from bench.ab import simulate
from bench.ab.experiment import Settings

KEY = "resnet20-train-bs128-fp32-xla_off-synthetic-tensorflow"


def _report(tmp_path, runs, name="aa.json"):
    """A figures report whose pair i of run j has HEAD/BASE = runs[j][i] (one round each side)."""
    trials = [
        {"interleave": "rounds", "pairs": [{"cases": {KEY: {"BASE": [100.0], "HEAD": [100.0 * r]}}} for r in ratios]}
        for ratios in runs
    ]
    path = tmp_path / name
    path.write_text(json.dumps({"trials": trials}))
    return str(path)


def test_pools_split_the_spread_within_and_between_runs(tmp_path):
    runs = [[1.02, 0.98, 1.00], [1.12, 1.08, 1.10], [0.92, 0.88, 0.90]]  # runs centred at 1.00, 1.10, 0.90
    pool = simulate.pools([_report(tmp_path, runs)])[KEY]
    assert pool["runs"] == 3 and pool["pairs"] == 9
    assert np.std(pool["residuals"]) == pytest.approx(0.02, rel=0.05)  # the within-run sd, unshrunk
    assert pool["between"] == pytest.approx(0.1, rel=0.1) and abs(pool["bias"]) < 0.01


def test_ab_json_files_and_directories_are_read_like_reports(tmp_path):
    doc = {
        "kind": "ab",
        "interleave": "processes",
        "pairs": [
            {"BASE": {"cases": {KEY: {"samples": [100.0, 100.0]}}}, "HEAD": {"cases": {KEY: {"samples": [h, h]}}}}
            for h in (99.0, 101.0)
        ],
        "confirmation_pairs": [],
    }
    (tmp_path / "runs").mkdir()
    for i in range(2):
        (tmp_path / "runs" / f"trial{i}.json").write_text(json.dumps(doc))
    assert simulate.pools([str(tmp_path / "runs")])[KEY]["pairs"] == 4


def test_the_replay_flags_a_large_slowdown_and_not_an_unchanged_tree(tmp_path):
    rng = np.random.default_rng(0)
    runs = [list(np.exp(rng.normal(0, 0.01, 4))) for _ in range(6)]
    pools = simulate.pools([_report(tmp_path, runs)])
    settings = Settings(pairs=3, confirm_pairs=3, tolerance=2.0, max_pairs=8)
    rows = simulate.table(pools, settings, [0.0, 0.2], trials=40)
    assert rows[0]["failed"] <= 0.05 and rows[1]["failed"] == 1.0
    assert 3 <= rows[0]["pairs_mean"] <= 8 and rows[1]["pairs_mean"] >= 6  # a flagged case is confirmed
    assert "3+3 pairs, growing to 8" in simulate.markdown(pools, settings, rows)


def test_too_few_recorded_runs_is_refused(tmp_path):
    with pytest.raises(ValueError, match="at least two runs"):
        simulate.pools([_report(tmp_path, [[1.0, 1.01]])])
