"""One real A/B between two commits of a throw-away repository (a clone of this one with one more commit)."""

import json
import subprocess

import pytest

from bench.__main__ import main
from bench.environment import REPO_ROOT


@pytest.mark.slow
def test_ab_between_two_commits_of_a_temporary_repository(tmp_path, capsys):
    repo = tmp_path / "repo"
    git = lambda *a: subprocess.run(["git", *a], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()
    subprocess.run(["git", "clone", "--quiet", "--shared", str(REPO_ROOT), str(repo)], check=True)
    (repo / "README.md").write_text((repo / "README.md").read_text() + "\nA line that changes nothing timed.\n")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "a change that costs nothing")
    out = tmp_path / "ab"
    argv = [
        "ab",
        "git:HEAD~1",
        "git:HEAD",
        "--repo",
        str(repo),
        "--out",
        str(out),
        "--baselines",
        str(tmp_path / "b.json"),
    ]
    argv += [
        "--mode",
        "infer",
        "--pairs",
        "2",
        "--confirm-pairs",
        "2",
        "--max-pairs",
        "0",
        "--rounds",
        "3",
        "--round-seconds",
        "0.2",
    ]
    assert main(argv) == 0
    doc = json.loads((out / "ab.json").read_text())
    assert [len(p["order"]) for p in doc["pairs"]] == [2, 2]
    assert doc["interleave"] == "rounds"  # both commits know how to take turns
    (case,) = doc["cases"]
    # the mechanism end to end, not the statistics: two pairs on a loaded machine may well be inconclusive
    assert case.startswith("resnet20-infer-bs128") and doc["cases"][case]["verdict"] in (
        "no change",
        "faster",
        "slower",
        "inconclusive",
    )
    for p in doc["pairs"]:
        for label in ("BASE", "HEAD"):
            assert len(p[label]["cases"][case]["samples"]) == 3 and len(p[label]["loadavg_before"]) == 3
    assert doc["sides"]["HEAD"]["commit"] == git("rev-parse", "HEAD")
    assert doc["sides"]["BASE"]["commit"] == git("rev-parse", "HEAD~1")
    assert doc["sides"]["BASE"]["versions"]["keras"]
    assert (out / "ab.md").read_text().startswith("# A/B: git:HEAD~1 vs git:HEAD")
    assert (out / "ab.png").stat().st_size > 0
    assert len(git("worktree", "list").splitlines()) == 1  # the temporary worktrees are gone
    assert "no A/A calibration" in capsys.readouterr().out
