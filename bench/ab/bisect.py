"""Bisection over a monotonic regression: the first bad commit (first parent) or package version.

Candidates run from the good end to the bad end; each step is an A/B of the midpoint against the
good end (``judge(candidate) -> (bad, evidence)``), so ``ceil(log2(N))`` steps find the first bad of
N. It assumes the regression is monotonic: once bad, every later candidate is bad too. A
regression that comes and goes, or noise that makes one step lie, gives a wrong answer; the
evidence of every step is kept so a reader can see which.
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.ab.sides import git
from bench.errors import UsageError

ASSUMPTION = "bisect assumes a monotonic regression: every candidate after the first bad one is bad too"


def search(candidates: Sequence[str], judge: Callable[[str], tuple[bool, dict]], *, log=print) -> dict:
    """The first bad of ``candidates`` (``candidates[0]`` good and ``candidates[-1]`` bad, taken as
    given): ``{"first_bad", "last_good", "steps": [{"candidate", "bad", "evidence"}], "evidence"}``.
    When no midpoint was bad the bad end itself is judged once, for its evidence."""
    if len(candidates) < 2:
        raise UsageError("bisect needs a good and a bad end that differ")
    lo, hi = 0, len(candidates) - 1
    steps: list[dict] = []
    log(
        f"cnn-bench bisect: {len(candidates) - 1} candidate(s) after the good end; about {math.ceil(math.log2(len(candidates) - 1 or 1))} step(s). {ASSUMPTION}"
    )
    while hi - lo > 1:
        mid = (lo + hi) // 2
        bad, evidence = judge(candidates[mid])
        steps.append({"candidate": candidates[mid], "index": mid, "bad": bad, "evidence": evidence})
        log(f"cnn-bench bisect: step {len(steps)}: {candidates[mid]} is {'bad' if bad else 'good'}")
        lo, hi = (lo, mid) if bad else (mid, hi)
    evidence = next((s["evidence"] for s in reversed(steps) if s["index"] == hi), None)
    if evidence is None:
        bad, evidence = judge(candidates[hi])
        steps.append({"candidate": candidates[hi], "index": hi, "bad": bad, "evidence": evidence, "end": True})
        if not bad:
            log(f"cnn-bench bisect: the bad end {candidates[hi]} did not regress against the good end here")
    return {
        "first_bad": candidates[hi] if steps[-1]["bad"] or steps[-1]["index"] != hi else None,
        "last_good": candidates[lo],
        "candidates": list(candidates),
        "steps": steps,
        "evidence": evidence,
        "assumption": ASSUMPTION,
    }


def commits(repo: Path, good: str, bad: str) -> list[str]:
    """``good`` and the first-parent commits after it up to ``bad``, oldest first, as full hashes."""
    ends = []
    for ref in (good, bad):
        sha = git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        if not sha:
            raise UsageError(f"{ref!r} is not a commit of the repository at {str(repo)!r}")
        ends.append(sha)
    if subprocess.run(["git", "merge-base", "--is-ancestor", *ends], cwd=repo).returncode != 0:
        raise UsageError(f"--good {good!r} is not an ancestor of --bad {bad!r}")
    between = git(repo, "rev-list", "--first-parent", "--reverse", f"{ends[0]}..{ends[1]}").split()
    if not between:
        raise UsageError(f"no commits between --good {good!r} and --bad {bad!r}")
    return [ends[0], *between]
