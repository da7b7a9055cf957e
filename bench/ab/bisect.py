"""Bisection over a monotonic regression: the first bad commit (first parent) or package version.

Candidates run from the good end to the bad end; each step is an A/B of the midpoint against the
good end (``judge(candidate) -> (bad, evidence)``), so ``ceil(log2(N))`` steps find the first bad of
N. It assumes the regression is monotonic: once bad, every later candidate is bad too. A
regression that comes and goes, or noise that makes one step lie, gives a wrong answer; the
evidence of every step is kept so a reader can see which. A step that comes out good while its
interval still admits a slowdown of the size to detect (undecided: too noisy to tell) is A/B'd
again with twice the pairs (``step``), up to a number of reruns, before it is counted good.
"""

from __future__ import annotations

import dataclasses
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


def more_pairs(settings):
    """``settings`` (``experiment.Settings``) for a rerun: sets that grow, two pairs at a time while a
    case is undecided, to twice the largest set the run before could have had."""
    largest = max(settings.max_pairs or 0, settings.pairs, settings.confirm_pairs)
    return dataclasses.replace(settings, max_pairs=2 * largest, seed=(settings.seed + 1) % 2**32)


def step(run_ab: Callable[[object, int], dict], settings, *, reruns: int, log=print) -> tuple[bool, dict]:
    """One bisect step: ``run_ab(settings, attempt)`` (an A/B document of the candidate against the
    good end) until it is bad (a confirmed regression or an error), or good with a ``settings.detect``
    slowdown ruled out for every case, or ``reruns`` reruns are spent, each with ``more_pairs``.
    Returns (bad, the last document), the document holding ``undecided`` (the cases that still admit
    the slowdown: counted good, doubtful) and ``earlier`` (the runs before it)."""
    from bench.ab import verdict

    earlier: list[dict] = []
    attempt = 0
    while True:
        doc = run_ab(settings, attempt)
        bad = bool(doc["regressions"])
        doc["undecided"] = [] if bad else verdict.undecided(doc["cases"], settings.detect / 100.0)
        if bad or not doc["undecided"] or attempt == reruns:
            doc["earlier"] = earlier
            return bad, doc
        earlier.append(doc)
        attempt += 1
        settings = more_pairs(settings)
        log(
            f"cnn-bench bisect: undecided ({', '.join(doc['undecided'])}: a {settings.detect:g} % slowdown not ruled out);"
            f" A/B again with sets of up to {settings.max_pairs} pairs (rerun {attempt} of {reruns})"
        )
