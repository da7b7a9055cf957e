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


def search(
    candidates: Sequence[str],
    judge: Callable[[str], tuple[bool | None, dict]],
    *,
    log=print,
    steps: list[dict] | None = None,
) -> dict:
    """The first bad of ``candidates`` (``candidates[0]`` good and ``candidates[-1]`` bad, taken as
    given): ``{"first_bad", "last_good", "steps": [{"candidate", "bad", "evidence"}], "evidence",
    "untestable", "first_bad_within"}``. When no midpoint was bad the bad end itself is judged once,
    for its evidence.

    ``judge`` says bad (True), good (False) or untestable (None: its A/B failed, as ``git bisect
    skip``): an untestable midpoint is left out and its nearest untested neighbour tried instead.
    When untestable candidates are all that is left between the last good and the first bad, there
    is no single answer: ``first_bad`` is None and ``first_bad_within`` lists the candidates the
    first bad is one of (the untestable ones and the first bad found). ``steps``: a list to append
    each step to as it is taken (the partial evidence of a search that is interrupted)."""
    if len(candidates) < 2:
        raise UsageError("bisect needs a good and a bad end that differ")
    lo, hi = 0, len(candidates) - 1
    steps = [] if steps is None else steps  # the caller's list: the steps taken, should the search be cut short
    skipped: set[int] = set()
    log(
        f"cnn-bench bisect: {len(candidates) - 1} candidate(s) after the good end; about {math.ceil(math.log2(len(candidates) - 1 or 1))} step(s). {ASSUMPTION}"
    )
    while (mid := _midpoint(lo, hi, skipped)) is not None:
        bad, evidence = judge(candidates[mid])
        steps.append({"candidate": candidates[mid], "index": mid, "bad": bad, "evidence": evidence})
        log(f"cnn-bench bisect: step {len(steps)}: {candidates[mid]} is {_word(bad)}")
        if bad is None:
            skipped.add(mid)
            continue
        lo, hi = (lo, mid) if bad else (mid, hi)
    judged = next((s for s in reversed(steps) if s["index"] == hi and s["bad"] is not None), None)
    if judged is None:
        end_bad, evidence = judge(candidates[hi])
        steps.append({"candidate": candidates[hi], "index": hi, "bad": end_bad, "evidence": evidence, "end": True})
        if end_bad is None:
            log(f"cnn-bench bisect: the bad end {candidates[hi]} could not be tested here")
        elif not end_bad:
            log(f"cnn-bench bisect: the bad end {candidates[hi]} did not regress against the good end here")
    else:
        end_bad, evidence = judged["bad"], judged["evidence"]
    within = list(candidates[lo + 1 : hi + 1]) if end_bad and hi - lo > 1 else None
    if within:
        log(f"cnn-bench bisect: untestable candidates remain: the first bad is one of {', '.join(within)}")
    return {
        "first_bad": candidates[hi] if end_bad and not within else None,
        "last_good": candidates[lo],
        "first_bad_within": within,
        "untestable": [s["candidate"] for s in steps if s["bad"] is None],
        "candidates": list(candidates),
        "steps": steps,
        "evidence": evidence,
        "assumption": ASSUMPTION,
    }


def interrupted(candidates: Sequence[str], steps: list[dict]) -> dict:
    """What a search cut short (SIGTERM, Ctrl-C) had found: its steps, and no answer."""
    return {
        "first_bad": None,
        "last_good": None,
        "first_bad_within": None,
        "untestable": [s["candidate"] for s in steps if s["bad"] is None],
        "candidates": list(candidates),
        "steps": list(steps),
        "evidence": steps[-1]["evidence"] if steps else {"cases": {}},
        "assumption": ASSUMPTION,
        "interrupted": True,
    }


def _word(bad: bool | None) -> str:
    return "untestable" if bad is None else "bad" if bad else "good"


def _midpoint(lo: int, hi: int, skipped: set[int]) -> int | None:
    """The candidate to test between ``lo`` and ``hi``: the midpoint, or, where it was untestable,
    the nearest untested one (None: none is left)."""
    mid = (lo + hi) // 2
    left = sorted((i for i in range(lo + 1, hi) if i not in skipped), key=lambda i: (abs(i - mid), i))
    return left[0] if left else None


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
    if ends[0] == ends[1]:
        raise UsageError(f"no commits between --good {good!r} and --bad {bad!r}")
    chain = git(repo, "rev-list", "--first-parent", ends[1]).split()
    if ends[0] not in chain:  # e.g. a commit of a side branch merged into bad's history
        raise UsageError(
            f"--good {good!r} is not on --bad {bad!r}'s first-parent chain (a merged side branch?);"
            " expected a commit that `git log --first-parent` of --bad lists"
        )
    between = chain[: chain.index(ends[0])][::-1]
    return [ends[0], *between]


def more_pairs(settings):
    """``settings`` (``experiment.Settings``) for a rerun: sets that grow, two pairs at a time while a
    case is undecided, to twice the largest set the run before could have had."""
    largest = max(settings.max_pairs or 0, settings.pairs, settings.confirm_pairs)
    return dataclasses.replace(settings, max_pairs=2 * largest, seed=(settings.seed + 1) % 2**32)


def step(run_ab: Callable[[object, int], dict], settings, *, reruns: int, log=print) -> tuple[bool, dict]:
    """One bisect step: ``run_ab(settings, attempt)`` (an A/B document of the candidate against the
    good end) until it is bad (a confirmed regression), untestable (an error: the A/B failed, or a
    case has no result and none is confirmed slower), or good with a ``settings.detect`` slowdown
    ruled out for every case, or ``reruns`` reruns are spent, each with ``more_pairs``.
    Returns (bad: True, False or None for untestable, the last document), the document holding
    ``undecided`` (the cases that still admit the slowdown: counted good, doubtful) and ``earlier``
    (the runs before it)."""
    from bench.ab import verdict

    earlier: list[dict] = []
    attempt = 0
    while True:
        doc = run_ab(settings, attempt)
        cases = doc.get("cases") or {}
        errors = [k for k in doc["regressions"] if verdict.errored(cases[k])]
        bad = True if len(errors) < len(doc["regressions"]) else None if errors or doc.get("error") else False
        doc["undecided"] = [] if bad is not False else verdict.undecided(cases, settings.detect / 100.0)
        if bad is not False or not doc["undecided"] or attempt == reruns:
            doc["earlier"] = earlier
            return bad, doc
        earlier.append(doc)
        attempt += 1
        settings = more_pairs(settings)
        log(
            f"cnn-bench bisect: undecided ({', '.join(doc['undecided'])}: a {settings.detect:g} % slowdown not ruled out);"
            f" A/B again with sets of up to {settings.max_pairs} pairs (rerun {attempt} of {reruns})"
        )
