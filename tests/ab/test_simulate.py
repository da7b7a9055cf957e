"""The design replay (``bench.ab.simulate``) on recorded runs written here: its pools, and its verdicts
coming from ``experiment.decide`` itself."""

import json

import numpy as np
import pytest

from bench.ab import simulate
from bench.ab.experiment import Settings
from bench.errors import UsageError

KEY = "resnet20-train-bs128-fp32-xla_off-synthetic-tensorflow"


def _report(tmp_path, runs, name="aa.json"):
    """A figures report whose pair i of run j has HEAD/BASE = runs[j][i] (two rounds each side)."""
    trials = [
        {
            "interleave": "rounds",
            "pairs": [{"cases": {KEY: {"BASE": [100.0] * 2, "HEAD": [100.0 * r] * 2}}} for r in ratios],
        }
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
    settings = Settings(pairs=3, confirm_pairs=3, rule="throughput:-2%", max_pairs=8)
    rows = simulate.table(pools, settings, [0.0, 0.2], trials=40)
    assert rows[0]["failed"] <= 0.05 and rows[1]["failed"] == 1.0
    assert 3 <= rows[0]["pairs_mean"] <= 8 and rows[1]["pairs_mean"] >= 6  # a flagged case is confirmed
    assert "3+3 pairs, growing to 8" in simulate.markdown(pools, settings, rows)


def _ab_doc(head_rounds):
    """A whole ab document of two interleaved pairs, BASE at 100 images/s every round, HEAD's rounds given."""
    return {
        "kind": "ab",
        "interleave": "rounds",
        "pairs": [
            {
                "BASE": {"cases": {KEY: {"samples": [100.0] * len(head_rounds)}}},
                "HEAD": {"cases": {KEY: {"samples": list(head_rounds)}}},
            }
            for _ in range(2)
        ],
        "confirmation_pairs": [],
    }


def test_a_design_s_rounds_are_replayed_from_each_process_s_first_rounds(tmp_path):
    # every pair: 4 rounds at 0.9 x BASE, then 6 at 1.1 x; a report of whole ab documents (as the figures keep)
    runs = [_ab_doc([90.0] * 4 + [110.0] * 6) for _ in range(2)]
    path = tmp_path / "kept.json"
    path.write_text(json.dumps({"trials": runs}))
    assert np.exp(simulate.pools([str(path)], rounds=4)[KEY]["bias"]) == pytest.approx(0.9)
    assert np.exp(simulate.pools([str(path)])[KEY]["bias"]) == pytest.approx(1.1)  # all 10: median of the ratios
    with pytest.raises(UsageError, match="--rounds 11: .* has a process with 10 rounds"):
        simulate.pools([str(path)], rounds=11)


def test_too_few_recorded_runs_is_refused(tmp_path):
    with pytest.raises(ValueError, match="at least two runs"):
        simulate.pools([_report(tmp_path, [[1.0, 1.01]])])


@pytest.mark.parametrize(
    "argv, named",
    [
        (["--slowdowns", "0,1.5"], "--slowdowns '0,1.5'"),
        (["--slowdowns", "nan"], "--slowdowns 'nan'"),
        (["--trials", "0"], "--trials 0"),
        (["--", "--max-pairs", "2", "--pairs", "3"], "--max-pairs 2"),
        (["--", "--detect", "0"], "--detect 0"),
        (["--", "--rounds", "0"], "--rounds 0"),
        (["--", "--rounds", "3"], "--rounds 3: "),
        (["NOT_A_RUN"], "not an ab.json or a figures report"),
        (["--", "--tolerance", "throughput:-80%"], "80"),
        (["MISSING"], "does not exist"),
        (["CORRUPT"], "CORRUPT"),
        (["EMPTY"], "no recorded pairs"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, named):
    from bench.ab import figures

    good = _report(tmp_path, [[1.0, 1.01], [0.99, 1.0]])
    (tmp_path / "corrupt.json").write_text("{not json")
    (tmp_path / "empty.json").write_text("{}")
    (tmp_path / "not_a_run.json").write_text(json.dumps({"trials": [{"pairs": [{"HEAD": {}}]}]}))
    files = {
        "NOT_A_RUN": str(tmp_path / "not_a_run.json"),
        "MISSING": str(tmp_path / "nope.json"),
        "CORRUPT": str(tmp_path / "corrupt.json"),
        "EMPTY": str(tmp_path / "empty.json"),
    }
    argv = [files.get(a, a) for a in argv]
    recorded = [a for a in argv if a.startswith(str(tmp_path))] or [good]
    options = [a for a in argv if not a.startswith(str(tmp_path))]
    if "--rounds" not in options:  # the reports here recorded two rounds a process
        options += ["--rounds", "2"] if "--" in options else ["--", "--rounds", "2"]
    split = options.index("--") if "--" in options else len(options)
    out = tmp_path / "out.json"
    code = figures.main(["simulate", *recorded, *options[:split], "--out", str(out), *options[split:]])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and named.replace("CORRUPT", "corrupt") in err
    assert not out.exists()


def test_the_figure_writes_its_rows(tmp_path, capsys):
    from bench.ab import figures

    good = _report(tmp_path, [[1.0, 1.01, 0.99], [0.99, 1.0, 1.02]])
    out = tmp_path / "out.json"
    argv = ["simulate", good, "--trials", "20", "--slowdowns", "0,0.3", "--out", str(out), "--", "--rounds", "2"]
    assert figures.main(argv) == 0
    written = json.loads(out.read_text())
    rows, design = written["rows"], written["design"]
    assert design.endswith("2 rounds a process")
    assert [r["slowdown"] for r in rows] == [0.0, 0.3] and rows[1]["failed"] == 1.0
    assert "| 30% |" in capsys.readouterr().out
