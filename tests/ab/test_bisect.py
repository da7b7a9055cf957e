"""Bisection on a fake history with a fake A/B, and over a real throw-away git history."""

import json
import math
import subprocess

import pytest

from bench.ab import bisect
from bench.errors import UsageError


def fake_judge(first_bad: int, calls: list):
    def judge(candidate):
        calls.append(candidate)
        bad = int(candidate[1:]) >= first_bad
        return bad, {"summary": f"{candidate} {'slower' if bad else 'same'}"}

    return judge


@pytest.mark.parametrize("first_bad", [1, 2, 7, 8, 9, 15, 16])
def test_finds_the_first_bad_of_16_commits_in_at_most_log2_steps(first_bad):
    history = [f"c{i}" for i in range(17)]  # c0 good, c16 bad
    calls = []
    found = bisect.search(history, fake_judge(first_bad, calls), log=lambda *a: None)
    assert found["first_bad"] == f"c{first_bad}"
    assert found["last_good"] == f"c{first_bad - 1}"
    assert found["evidence"]["summary"] == f"c{first_bad} slower"
    assert len(calls) <= math.ceil(math.log2(16)) + 1  # +1: the bad end judged once for its evidence
    if first_bad != 16:
        assert len(calls) == 4


def test_a_bad_end_that_is_not_bad_is_said():
    found = bisect.search(["c0", "c1", "c2"], lambda c: (False, {}), log=lambda *a: None)
    assert found["first_bad"] is None and found["steps"][-1]["end"]


def test_needs_two_ends():
    with pytest.raises(UsageError):
        bisect.search(["c0"], lambda c: (True, {}))


def test_package_versions_may_end_at_the_newest_release(tmp_path):
    import argparse

    from bench.commands.bisect import candidates

    args = argparse.Namespace(package="keras", versions="3.14.0, 3.15.1,latest", good=None, bad=None)
    versions, side = candidates(args, tmp_path)
    assert versions == ["3.14.0", "3.15.1", "latest"] and side("latest") == "pkg:keras==latest"
    with pytest.raises(UsageError, match="'latest' .* can only be the last"):
        candidates(argparse.Namespace(**{**vars(args), "versions": "latest,3.15.1"}), tmp_path)


def test_versions_without_a_package_and_an_empty_package_are_refused_not_ignored(tmp_path):
    """``--good A --bad B --versions ...`` bisected the commits and dropped --versions unsaid;
    ``--package ''`` read as no package."""
    import argparse

    from bench.commands.bisect import candidates

    args = argparse.Namespace(package=None, versions="3.14.0,3.15.1", good="HEAD~1", bad="HEAD")
    with pytest.raises(UsageError, match=r"--versions '3.14.0,3.15.1' applies with --package NAME only"):
        candidates(args, tmp_path)
    with pytest.raises(UsageError, match=r"--package '' is empty"):
        candidates(argparse.Namespace(**{**vars(args), "package": "", "good": None, "bad": None}), tmp_path)


def test_first_parent_commits_of_a_history(tmp_path):
    run = lambda *a: subprocess.run(
        ["git", *a], cwd=tmp_path, check=True, capture_output=True, text=True
    ).stdout.strip()
    run("init", "-q")
    shas = []
    for i in range(5):
        (tmp_path / "f").write_text(str(i))
        run("add", "f")
        run("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", f"c{i}")
        shas.append(run("rev-parse", "HEAD"))
    assert bisect.commits(tmp_path, shas[1], "HEAD") == shas[1:]
    with pytest.raises(UsageError, match="not an ancestor"):
        bisect.commits(tmp_path, shas[3], shas[1])
    with pytest.raises(UsageError, match="'nope' is not a commit"):
        bisect.commits(tmp_path, "nope", "HEAD")


def test_the_command_finds_the_commit_that_made_it_slower(tmp_path, monkeypatch, capsys):
    """``python -m bench bisect`` on a throw-away history of 8 commits, the slowdown (a file the fake
    processes read) added at the 5th; each side's tree is a real temporary worktree."""
    import json

    import numpy as np

    from bench.__main__ import main
    from bench.ab import runner
    from tests.ab.fakes import CASES

    rng = np.random.default_rng(0)

    def measure(prepared, throughput_args, out, *, cases=None, drop_backend=False, timeout=None):
        factor = 0.85 if (prepared.tree / "SLOW").exists() else 1.0
        medians = {
            k: v * factor * float(np.exp(rng.normal(0, 0.01))) for k, v in CASES.items() if not cases or k in cases
        }
        return {
            "cases": {k: {"median": m, "samples": [m], "error": None} for k, m in medians.items()},
            "loadavg_before": [1.0, 1.0, 1.0],
            "device_class": "cpu:fake x2",
        }

    monkeypatch.setattr(runner, "measure", measure)
    repo = tmp_path / "repo"
    repo.mkdir()
    run = lambda *a: subprocess.run(["git", *a], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()
    run("init", "-q")
    shas = []
    for i in range(9):
        (repo / ("SLOW" if i == 5 else "f")).write_text(str(i))
        run("add", ".")
        run("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", f"c{i}")
        shas.append(run("rev-parse", "HEAD"))
    out = tmp_path / "out"
    argv = ["bisect", "--good", shas[0], "--bad", shas[-1], "--repo", str(repo), "--out", str(out)]
    assert main([*argv, "--baselines", str(tmp_path / "b.json"), "--pairs", "3", "--confirm-pairs", "3"]) == 0
    found = json.loads((out / "bisect.json").read_text())
    assert found["first_bad"] == shas[5] and found["last_good"] == shas[4]
    assert len(found["steps"]) == 3  # log2(8)
    text = capsys.readouterr().out
    assert f"first bad: {shas[5]}" in text and "monotonic" in text
    assert run("worktree", "list").count("\n") == 0
    # 1 % noise: every good step rules out a 5 % slowdown, and says so by naming none
    assert all(s["evidence"]["undecided"] == [] for s in found["steps"]) and "caution" not in text


def _row(verdict, lo, hi):
    return {"verdict": verdict, "base": 100.0, "head": 100.0, "ratio": (lo + hi) / 2, "lo": lo, "hi": hi, "n": 3}


def test_a_step_counted_good_that_could_not_rule_out_the_slowdown_is_named():
    """A noisy step misses the slowdown at c8 (counted good, but undecided): the answer comes out
    later than the truth, and the summary says which step to doubt."""
    from bench.ab import report

    def judge(candidate, miss="c8"):
        truly_bad = int(candidate[1:]) >= 5
        if candidate == miss:  # a miss: inconclusive, a 5 % slowdown not ruled out
            return False, {
                "summary": "OK: inconclusive",
                "cases": {"t": _row("inconclusive", 0.90, 1.02)},
                "undecided": ["t"],
            }
        row = _row("slower", 0.90, 0.94) if truly_bad else _row("no change", 0.98, 1.02)
        return truly_bad, {"summary": "...", "cases": {"t": row}, "undecided": []}

    found = bisect.search([f"c{i}" for i in range(17)], judge, log=lambda *a: None)
    assert found["first_bad"] == "c9"  # wrong, as a miss makes it
    text = report.bisect_summary(found)
    assert "step 1: c8 counted good, undecided" in text
    assert "caution: a slowdown of the size to detect was not ruled out at step 1 (c8: t)" in text
    clean = bisect.search([f"c{i}" for i in range(17)], lambda c: judge(c, miss=None), log=lambda *a: None)
    assert clean["first_bad"] == "c5" and "caution" not in report.bisect_summary(clean)


def _doc(verdict, lo, hi, *, failed=False):
    return {"cases": {"t": _row(verdict, lo, hi)}, "regressions": ["t"] if failed else [], "summary": verdict}


UNDECIDED = _doc("inconclusive", 0.90, 1.02)
GOOD = _doc("no change", 0.98, 1.02)
BAD = _doc("slower", 0.90, 0.94, failed=True)


@pytest.mark.parametrize(
    ("runs", "reruns", "bad", "calls", "undecided"),
    [
        ([GOOD], 1, False, 1, []),  # decided at once: no rerun
        ([BAD], 1, True, 1, []),
        ([UNDECIDED, BAD], 1, True, 2, []),  # the rerun, with more pairs, catches it
        ([UNDECIDED, GOOD], 1, False, 2, []),  # ... or rules it out
        ([UNDECIDED, UNDECIDED, UNDECIDED], 2, False, 3, ["t"]),  # reruns spent: counted good, undecided
        ([UNDECIDED], 0, False, 1, ["t"]),  # --reruns 0: the old behaviour
    ],
)
def test_an_undecided_step_is_run_again_with_more_pairs(runs, reruns, bad, calls, undecided):
    from bench.ab.experiment import Settings

    seen = []

    def run_ab(settings, attempt):
        seen.append((settings, attempt))
        return json.loads(json.dumps(runs[attempt]))  # a fresh document each run

    logged = []
    got_bad, doc = bisect.step(
        run_ab, Settings(pairs=3, confirm_pairs=3, max_pairs=None), reruns=reruns, log=logged.append
    )
    assert got_bad is bad and len(seen) == calls and doc["undecided"] == undecided
    assert [a for _, a in seen] == list(range(calls))
    assert [s.max_pairs for s, _ in seen] == [None, 6, 12][:calls]  # fixed sets, then growing to twice the pairs
    assert len({s.seed for s, _ in seen}) == calls  # each rerun draws its own pair orders
    assert len(doc["earlier"]) == calls - 1 and all("earlier" not in d for d in doc["earlier"])
    assert len(logged) == calls - 1 and all("A/B again with sets of up to" in line for line in logged)


def test_more_pairs_doubles_the_largest_set_a_run_could_have():
    from bench.ab.experiment import Settings

    assert bisect.more_pairs(Settings(pairs=3, confirm_pairs=3, max_pairs=8)).max_pairs == 16
    assert bisect.more_pairs(Settings(pairs=4, confirm_pairs=6, max_pairs=None)).max_pairs == 12


def test_a_step_run_again_says_so_in_the_summary():
    from bench.ab import report
    from bench.ab.experiment import Settings

    def judge(candidate):
        bad = int(candidate[1:]) >= 3
        if candidate == "c2":  # undecided first, then cleared by the rerun
            run_ab = lambda s, attempt: json.loads(json.dumps([UNDECIDED, GOOD][attempt]))
            return bisect.step(run_ab, Settings(), reruns=1, log=lambda *a: None)
        return bad, {**(BAD if bad else GOOD), "undecided": [], "earlier": []}

    found = bisect.search([f"c{i}" for i in range(5)], judge, log=lambda *a: None)
    text = report.bisect_summary(found)
    assert found["first_bad"] == "c3"
    assert "step 1: c2 good (after 1 undecided A/B run(s) of it, A/B'd again with more pairs)" in text
    assert "caution" not in text


def test_an_untestable_midpoint_is_skipped_for_its_neighbour():
    from bench.ab import report

    def judge(candidate, untestable=("c8",)):
        if candidate in untestable:
            return None, {"summary": "untestable: HEAD exited 1", "cases": {}}
        bad = int(candidate[1:]) >= 5
        return bad, {"summary": "slower" if bad else "same", "cases": {}}

    found = bisect.search([f"c{i}" for i in range(17)], judge, log=lambda *a: None)
    assert found["first_bad"] == "c5" and found["untestable"] == ["c8"]
    assert "step 1: c8 untestable: untestable: HEAD exited 1" in report.bisect_summary(found)
    # only untestable candidates between the last good and the first bad: a range, not an answer
    found = bisect.search([f"c{i}" for i in range(17)], lambda c: judge(c, ("c4", "c5")), log=lambda *a: None)
    assert found["first_bad"] is None and found["first_bad_within"] == ["c4", "c5", "c6"]
    assert found["last_good"] == "c3"
    assert "the first bad is one of c4, c5, c6 (after the last good c3)" in report.bisect_summary(found)
    found = bisect.search(["c0", "c1"], lambda c: (None, {"summary": "untestable", "cases": {}}), log=lambda *a: None)
    assert found["first_bad"] is None and "the bad end c1 could not be tested here" in report.bisect_summary(found)


def test_a_step_with_no_result_is_untestable_and_a_confirmed_regression_bad():
    from bench.ab.experiment import Settings

    no_result = {"cases": {"t": {"verdict": "error", "error": "x"}}, "regressions": ["t"], "summary": "FAIL"}
    failed_confirming = {
        "cases": {"t": {**_row("slower", 0.9, 0.94), "confirmed": None, "confirmation_error": "x"}},
        "regressions": ["t"],
        "summary": "FAIL",
    }
    both = {"cases": {**no_result["cases"], "u": {**_row("slower", 0.9, 0.94), "confirmed": True}}}
    both["regressions"], both["summary"] = ["t", "u"], "FAIL"
    for doc, bad in ((no_result, None), (failed_confirming, None), (both, True), (BAD, True), (GOOD, False)):
        got, _ = bisect.step(lambda s, a, doc=doc: json.loads(json.dumps(doc)), Settings(), reruns=1, log=print)
        assert got is bad


def test_the_command_reports_an_untestable_midpoint_and_writes_its_files(tmp_path, monkeypatch, capsys):
    from bench.__main__ import main
    from bench.ab import experiment

    def run(base, head, settings, **kw):
        index = int(head.removeprefix("pkg:keras==3.").split(".")[0])
        if index == 12:
            raise UsageError("HEAD (pkg:keras==3.12.0) exited 1 without a result: broken")
        bad = index >= 14
        return {**(BAD if bad else GOOD), "summary": "FAIL" if bad else "OK"}

    monkeypatch.setattr(experiment, "run", run)
    out = tmp_path / "out"
    versions = ",".join(f"3.{i}.0" for i in range(10, 15))
    argv = ["bisect", "--package", "keras", "--versions", versions, "--out", str(out)]
    assert main([*argv, "--baselines", str(tmp_path / "b.json")]) == 0
    found = json.loads((out / "bisect.json").read_text())
    assert found["first_bad"] == "3.14.0" and found["untestable"] == ["3.12.0"]
    text = capsys.readouterr().out
    assert "3.12.0 is untestable: HEAD (pkg:keras==3.12.0) exited 1" in text and "counted as bad" not in text
    assert (out / "bisect.md").exists()


def test_good_must_be_on_bad_s_first_parent_chain(tmp_path):
    run = lambda *a: subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *a],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    run("init", "-q", "-b", "main")
    (tmp_path / "f").write_text("0")
    run("add", "f")
    run("commit", "-qm", "c0")
    base = run("rev-parse", "HEAD")
    run("checkout", "-qb", "side")
    (tmp_path / "g").write_text("1")
    run("add", "g")
    run("commit", "-qm", "side")
    side = run("rev-parse", "HEAD")
    run("checkout", "-q", "main")
    (tmp_path / "f").write_text("1")
    run("commit", "-qam", "c1")
    run("merge", "-q", "--no-ff", "-m", "merge", "side")
    with pytest.raises(UsageError, match="is not on --bad 'HEAD''s first-parent chain") as e:
        bisect.commits(tmp_path, side, "HEAD")
    assert "\n" not in str(e.value)
    assert len(bisect.commits(tmp_path, base, "HEAD")) == 3  # c0, c1, the merge


@pytest.mark.parametrize(
    ("versions", "said"),
    [
        ("3.14.0,3.13.0,latest", "3.14.0 comes before 3.13.0, which is older"),
        ("3.10.0,3.9.0", "3.10.0 comes before 3.9.0"),
        ("3.13.0,banana", "is not a package requirement"),
    ],
)
def test_package_versions_must_be_oldest_first(tmp_path, versions, said):
    import argparse

    from bench.commands.bisect import candidates

    args = argparse.Namespace(package="keras", versions=versions, good=None, bad=None)
    with pytest.raises(UsageError, match=said) as e:
        candidates(args, tmp_path)
    assert "\n" not in str(e.value)


def test_an_interrupted_bisect_keeps_the_steps_it_ran(tmp_path, monkeypatch):
    from bench.__main__ import main
    from bench.ab import experiment

    def run(base, head, settings, **kw):
        if head.endswith("3.13.0"):
            raise KeyboardInterrupt  # Ctrl-C (SIGTERM's SystemExit alike) during the second step
        return {**GOOD, "summary": "OK"}

    monkeypatch.setattr(experiment, "run", run)
    out = tmp_path / "out"
    versions = ",".join(f"3.{i}.0" for i in range(10, 15))
    argv = ["bisect", "--package", "keras", "--versions", versions, "--out", str(out)]
    assert main([*argv, "--baselines", str(tmp_path / "b.json")]) == 130
    found = json.loads((out / "bisect.json").read_text())
    assert found["interrupted"] and [s["candidate"] for s in found["steps"]] == ["3.12.0"]
    assert "interrupted after 1 step(s)" in (out / "bisect.md").read_text()
