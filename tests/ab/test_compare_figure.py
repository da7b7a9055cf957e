"""The compare figure: its schedule of unchanged and slowed runs, and every comparison ``compare`` makes among them."""

import json
from pathlib import Path

import pytest

from bench.ab import compare_figure as cf
from tests.throughput.documents import bench, case, doc


def run_doc(train: float, infer: float) -> dict:
    """A throughput result of the default set, its rounds ±2 % about each median."""
    return doc([bench(case(mode="train"), train), bench(case(mode="infer"), infer)])


def runs(*spec) -> list[dict]:
    """Runs in order from (kind, train median, loaded) tuples; inference at 3x training."""
    return [
        {"run": i, "kind": kind, "loaded": loaded, "doc": run_doc(m, 3 * m)} for i, (kind, m, loaded) in enumerate(spec)
    ]


def test_the_first_runs_are_unchanged_and_the_slowed_ones_spread_among_the_rest():
    plan = cf.schedule(12, 6, load=True, seed=3)
    kinds = [r["kind"] for r in plan]
    assert [r["run"] for r in plan] == list(range(18))
    assert kinds[:3] == [cf.SAME] * 3 and kinds.count(cf.SLOW) == 6 and kinds.count(cf.SAME) == 12
    assert not any(a == b == cf.SLOW for a, b in zip(kinds, kinds[1:]))  # never two slowed in a row here
    assert sum(r["loaded"] for r in plan) == 9
    assert plan == cf.schedule(12, 6, load=True, seed=3)  # the seed decides which are loaded
    assert not any(r["loaded"] for r in cf.schedule(12, 6, load=False))
    assert [r["kind"] for r in cf.schedule(5, 0, load=False)] == [cf.SAME] * 5


@pytest.mark.parametrize("unchanged, slowed, message", [(3, 2, "--runs 3 is too few"), (6, -1, "--slowed -1")])
def test_a_schedule_needs_a_baseline_s_runs_and_one_more(unchanged, slowed, message):
    with pytest.raises(ValueError, match=message):
        cf.schedule(unchanged, slowed, load=False)


def test_every_run_is_judged_against_every_baseline_recorded_before_it():
    recorded = runs(
        (cf.SAME, 500.0, False),
        (cf.SAME, 498.0, False),
        (cf.SAME, 503.0, False),
        (cf.SAME, 501.0, False),
        (cf.SLOW, 400.0, False),  # 20 % slower: beyond the 5 % rule and the runs' tight spread
        (cf.SAME, 499.0, False),
        (cf.SAME, 300.0, True),  # unchanged, beside a load: the drift compare cannot tell from a change
    )
    result = cf.judge(recorded)
    three = [c for c in result["comparisons"] if len(c["baseline_runs"]) == 3]
    # windows (0,1,2), (1,2,3), (2,3,5); (3,5,6) has nothing after it
    assert sorted({tuple(c["baseline_runs"]) for c in three}) == [(0, 1, 2), (1, 2, 3), (2, 3, 5)]
    assert all(c["run"] > c["baseline_runs"][-1] for c in result["comparisons"])
    counts = result["counts"]
    assert counts["3-run baseline, slowed runs"] == {
        "cases_failed": 4,
        "cases": 4,
        "comparisons_failed": 2,
        "comparisons": 2,
        "runs_failed": 1,
        "runs": 1,
    }
    unchanged = counts["3-run baseline, unchanged runs"]
    # runs 3, 5, 6 after (0,1,2); 5, 6 after (1,2,3); 6 after (2,3,5): only run 6 (loaded, -40 %) fails
    assert (unchanged["comparisons"], unchanged["comparisons_failed"]) == (6, 3)
    assert (unchanged["runs"], unchanged["runs_failed"]) == (3, 1)
    failed = [c for c in three if c["kind"] == cf.SAME and any(v["failed"] for v in c["cases"].values())]
    assert {c["run"] for c in failed} == {6}
    assert all(v["verdict"] == "regression" for c in failed for v in c["cases"].values())
    assert counts["1-run baseline, slowed runs"]["comparisons"] == 4  # runs 0-3 recorded before it
    five = counts["5-run baseline, unchanged runs"]  # (0,1,2,3,5), then run 6; the slowed run 4 came too early
    assert (five["comparisons"], five["comparisons_failed"]) == (1, 1) and "5-run baseline, slowed runs" not in counts
    assert result["slowdown_seen"] == pytest.approx({k: [0.8] for k in result["slowdown_seen"]})
    assert len(result["slowdown_seen"]) == 2  # against runs 3 and 5 (501, 499), not the loaded run 6


def test_a_run_without_a_result_is_left_out_not_judged():
    recorded = runs(*[(cf.SAME, 500.0, False)] * 4)
    recorded[1]["doc"] = None  # the process died
    result = cf.judge(recorded)
    assert all(1 not in (*c["baseline_runs"], c["run"]) for c in result["comparisons"])
    assert "3-run baseline, unchanged runs" not in result["counts"]  # (0, 2, 3): nothing after it
    assert result["without_result"] == [1]
    assert "| runs without a result (left out) | 1 |" in cf.table(result, slowdown=None)


def test_a_report_is_judged_again_from_its_runs(tmp_path, capsys):
    from bench.ab import figures

    paths = []
    for i, m in enumerate((500.0, 498.0, 503.0, 400.0)):
        paths.append(tmp_path / f"run{i}.json")
        paths[-1].write_text(json.dumps(run_doc(m, 3 * m)))
    out = tmp_path / "report.json"
    assert figures.main(["compare", *map(str, paths), "--out", str(out)]) == 0
    first = capsys.readouterr().out
    assert "| 3-run baseline, unchanged runs | 1/1 comparisons false alarms (2/2 cases) |" in first
    report = json.loads(out.read_text())
    assert report["figure"] == "compare" and len(report["runs"]) == 4
    report["base"], report["counts"] = "abc123", {"stale": {}}  # what was measured is kept, the verdicts redone
    out.write_text(json.dumps(report))
    again = tmp_path / "again.json"
    assert figures.main(["compare", str(out), "--out", str(again)]) == 0
    assert capsys.readouterr().out == first
    judged = json.loads(again.read_text())
    assert judged["base"] == "abc123" and "stale" not in judged["counts"] and judged["judged_by"]
    assert judged["runs"] == report["runs"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["compare"], "compare needs recorded runs"),
        (["compare", "x.json", "--runs", "5"], "not both"),
        (["compare", "--runs", "2"], "--runs 2 is too few"),
        (["compare", "--runs", "5", "--slowed", "2", "--slowdown", "1.5"], "--slowdown 1.5 is invalid"),
        (["compare", "missing.json"], "'missing.json' does not exist"),
        # checked first: without that check this would fail on --slowdown, not hang on real runs
        (["compare", "--runs", "5", "--slowed", "1", "--slowdown", "1.5", "--out", "."], "--out '.' is a directory"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    from bench.ab import figures

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "report.json"
    assert figures.main([*argv, "--out", str(out)] if "--out" not in argv else argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not out.exists()


def test_slowed_runs_run_the_chain_of_their_load_condition(tmp_path, monkeypatch):
    """Unchanged runs in the clone of HEAD, slowed ones in a worktree with the chain sized for their
    condition (beside the load or not) committed on HEAD; the report written after every run."""
    import subprocess

    from bench.ab import figures

    sizes = {False: {"train": 3, "infer": 2}, True: {"train": 9, "infer": 4}}
    monkeypatch.setattr(
        figures, "injection", lambda fraction, *, loaded=False: (dict(sizes[loaded]), {"sized_under_load": loaded})
    )
    loads, seen, written = [], [], []
    monkeypatch.setattr(figures, "load", lambda on: loads.append(on) or figures.contextlib.nullcontext())
    real_run = subprocess.run

    def fake_run(argv, **kwargs):
        if argv[:4] != [cf.sys.executable, "-m", "bench", "throughput"]:
            return real_run(argv, **kwargs)
        cwd, env = kwargs["cwd"], kwargs["env"]
        backend = (Path(cwd) / "bench" / "backends" / "tensorflow.py").read_text()
        chain = backend.split("_EXTRA_MATMULS = ")[1].splitlines()[0] if "_EXTRA_MATMULS" in backend else None
        seen.append((chain, env["PYTHONPATH"] == str(cwd)))
        written.append(out.exists() and len([r for r in json.loads(out.read_text())["runs"] if "doc" in r]))
        Path(argv[argv.index("--bench-out") + 1]).write_text(json.dumps(run_doc(500.0, 1500.0)))
        return subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(cf.subprocess, "run", fake_run)
    out = tmp_path / "report.json"
    argv = ["compare", "--runs", "6", "--slowed", "2", "--slowdown", "0.1", "--load", "--out", str(out)]
    assert figures.main([*argv, "--", "--rounds", "3"]) == 0
    report = json.loads(out.read_text())
    plan = cf.schedule(6, 2, load=True)
    assert [(r["kind"], r["loaded"]) for r in report["runs"]] == [(r["kind"], r["loaded"]) for r in plan]
    assert loads == [r["loaded"] for r in plan]
    expected = [repr(sizes[r["loaded"]]) if r["kind"] == cf.SLOW else None for r in plan]
    assert [chain for chain, _ in seen] == expected and all(own for _, own in seen)
    assert written == [False, *range(1, 8)]  # the report so far, before each later run
    assert report["throughput_args"] == ["--rounds", "3"] and report["slowdown"] == 0.1
    assert report["counts"]["3-run baseline, unchanged runs"]["comparisons_failed"] == 0
    quiet = {r["run"] for r in report["runs"] if not r["loaded"]}  # and judged again among the quiet runs alone
    assert report["quiet_only"]["comparisons"]
    assert all({c["run"], *c["baseline_runs"]} <= quiet for c in report["quiet_only"]["comparisons"])
