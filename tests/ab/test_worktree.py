"""A side's temporary worktree: removed, and pruned from the repository's list, however the block ends."""

import os
import subprocess

import pytest

from bench.ab import worktree


@pytest.fixture
def repo(tmp_path):
    path = tmp_path / "repo"
    path.mkdir()
    run = lambda *a: subprocess.run(["git", *a], cwd=path, check=True, capture_output=True, text=True).stdout
    run("init", "-q")
    (path / "f").write_text("1")
    run("add", "f")
    run("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    return path, run


def test_a_sigterm_during_worktree_add_leaves_no_worktree(repo, tmp_path, monkeypatch):
    path, run = repo
    made = []
    real_mkdtemp, real_git = worktree.tempfile.mkdtemp, worktree.git
    monkeypatch.setattr(worktree.tempfile, "mkdtemp", lambda **kw: made.append(real_mkdtemp(**kw)) or made[-1])

    def git(repo_, *args, **kw):
        out = real_git(repo_, *args, **kw)
        if args[:2] == ("worktree", "add"):  # registered, then SIGTERM's SystemExit before the block starts
            raise SystemExit(143)
        return out

    monkeypatch.setattr(worktree, "git", git)
    commit = run("rev-parse", "HEAD").strip()
    with pytest.raises(SystemExit), worktree.checkout(path, commit):
        pytest.fail("the block ran")
    assert run("worktree", "list").count("\n") == 1  # the main tree only
    assert made and not any(os.path.exists(p) for p in made)


def test_the_worktree_is_removed_after_the_block(repo):
    path, run = repo
    with worktree.checkout(path, run("rev-parse", "HEAD").strip()) as tree:
        assert (tree / "f").read_text() == "1"
    assert not tree.exists() and run("worktree", "list").count("\n") == 1
