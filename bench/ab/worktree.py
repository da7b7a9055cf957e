"""A git commit checked out in a temporary worktree, removed afterwards."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bench.ab.sides import git


@contextlib.contextmanager
def checkout(repo: Path, commit: str) -> Iterator[Path]:
    """``commit`` of ``repo`` in a detached worktree under the temporary directory; removed (and
    pruned from ``repo``'s worktree list) however the block ends."""
    tmp = None
    try:  # a SIGTERM (``SystemExit``) during ``worktree add`` must not leave it registered, nor its directory
        tmp = Path(tempfile.mkdtemp(prefix=f"cnn-bench-ab-{commit[:10]}-"))
        tree = tmp / "tree"
        git(repo, "worktree", "add", "--detach", "--quiet", str(tree), commit)
        yield tree
    finally:
        if tmp is not None:
            git(repo, "worktree", "remove", "--force", str(tmp / "tree"), check=False)
            shutil.rmtree(tmp, ignore_errors=True)
        git(repo, "worktree", "prune", check=False)
