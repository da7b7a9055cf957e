"""The figures script's re-judging of a stored A/B document at another threshold."""

from pathlib import Path

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


def test_the_bisect_figure_judges_the_answer_and_keeps_its_evidence(tmp_path, monkeypatch, capsys):
    """The throw-away history (the slowdown committed at --bad-at), the row saying whether ``bisect``
    found that commit, and bisect.json kept under --keep; ``bisect`` itself replaced by a fake."""
    import json
    import subprocess

    from bench.ab import figures

    real_run = subprocess.run
    seen = {}

    def fake_run(argv, **kw):
        if argv[:4] != [figures.sys.executable, "-m", "bench", "bisect"]:
            return real_run(argv, **kw)
        opt = lambda name: argv[argv.index(name) + 1]
        repo = Path(opt("--repo"))
        log = figures.git(repo, "log", "--format=%H %s", f"{opt('--good')}..{opt('--bad')}").splitlines()
        seen["commits"], seen["ab_args"] = len(log), argv[argv.index("--out") + 2 :]
        first_bad = next(line.split()[0] for line in log if "slowdown" in line)
        out = Path(opt("--out"))
        out.mkdir(parents=True)
        (out / "bisect.json").write_text(json.dumps({"first_bad": first_bad, "steps": [{}] * 4}))
        (out / "bisect.md").write_text("# Bisect\n")
        return subprocess.CompletedProcess(argv, 1)

    monkeypatch.setattr(figures, "chains", lambda fraction: ({"train": 3, "infer": 2}, {}))
    monkeypatch.setattr(figures.subprocess, "run", fake_run)
    keep, out = tmp_path / "keep", tmp_path / "row.json"
    argv = ["bisect", "--commits", "6", "--bad-at", "4", "--keep", str(keep), "--out", str(out), "--", "--pairs", "3"]
    assert figures.main(argv) == 0
    assert seen == {"commits": 6, "ab_args": ["--pairs", "3"]}
    result = json.loads(out.read_text())
    assert result["found"] == result["expected"] and result["steps"] == 4 and result["status"] == 1
    assert result["matmuls"] == {"train": 3, "infer": 2}
    assert "| bisect, 6 commits, 5% at #4 | found in 4 A/B steps |" in capsys.readouterr().out
    assert json.loads((keep / "bisect.json").read_text())["first_bad"] == result["found"]
    assert (keep / "bisect.md").exists()
