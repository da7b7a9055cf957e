"""``python -m bench compare SAVED.json``: judge a throughput run against baselines.json.

Baselines' throughput section is keyed ``<device class>/<benchmark id>``, e.g.
``cpu:AMD EPYC x2/resnet20-train-bs128-fp32-xla_off-synthetic-tensorflow``; each entry holds the median
images/s, the per-round samples behind it, and its rule (``throughput:-5%`` unless updated with
``--tolerance``). A benchmark regresses only when its median drops by more than the tolerance AND
the drop is significant. Rounds of one process share its luck, so significance is judged against
the spread *between* runs where one is known: an entry recorded from >= 3 runs (``baselines update
A.json B.json C.json``) keeps their medians, and the drop is significant when the current median
falls outside their one-sided Student-t prediction interval at ``--alpha``; else the A/A threshold
of the device class (``python -m bench ab --calibrate``) is the drop that counts. Only with neither
is it today's one-sided Mann-Whitney U test over the per-round images/s of both runs, and the
verdict says it saw rounds only. The bootstrap interval of the ratio of medians is shown beside the
verdict. Improvements need the same significance. A change beyond the tolerance that the test in
use could not have found significant at ``--alpha`` with the samples it has (3 rounds a side reach
no p below 0.05; an interval of 3 runs that reaches 0 images/s) is an ERROR, "cannot judge", never a
PASS; so is a change or interval that is not a finite number. Missing baselines, errored (out-of-memory) results and
corrupt files fail. Exit 1 on any failure, 0 otherwise; a table of verdicts is printed.
"""

from __future__ import annotations

import sys

import numpy as np

from bench import results as results_mod
from bench import stats
from bench.errors import BaselinesError, UsageError
from bench.regression import baselines, rules
from bench.stats import finite
from bench.throughput import merge
from bench.throughput.workload import result_id

is_result = results_mod.is_throughput  # for ``baselines update``: pytest-benchmark JSON from bench/throughput/suite


def _rule(text: str | None) -> rules.Rule:
    return rules.Rule.parse_for(text or rules.THROUGHPUT_RULE, metric="throughput", unit="%")


def _rule_given(text: str) -> rules.Rule:
    """A rule the user gave (``--tolerance``): an empty one is refused, not read as the default."""
    if not text.strip():
        raise UsageError(f"--tolerance {text!r} is invalid; expected e.g. '{rules.THROUGHPUT_RULE}'")
    return _rule(text)


def load_result(path: str) -> dict:
    """A saved throughput result file, its schema checked; anything else is a one-line ``UsageError``."""
    doc = results_mod.read(path)
    if not is_result(doc):
        raise UsageError(f"{path!r} is not a throughput result (pytest-benchmark JSON from bench/throughput/suite)")
    return doc


def _device_class(doc: dict, extra: dict) -> str:
    dc = extra.get("device_class") or (doc.get("harness") or {}).get("device_class")
    if not isinstance(dc, str) or not dc:
        raise UsageError("result has no device_class; was it written by bench/throughput/suite?")
    if "/" in dc:  # a result's key is device_class/case, split at its first '/'
        raise UsageError(f"result's device_class {dc!r} holds a '/'; valid: a device class as bench.devices writes it")
    return dc


def _samples(values) -> list[float] | None:
    """``values`` as floats when they are a non-empty list of positive finite numbers, else None."""
    if not isinstance(values, list) or not values:
        return None
    out = [finite(v) for v in values]
    return out if all(v is not None and v > 0 for v in out) else None


def _median_error(median: float | None, samples: list[float] | None) -> str | None:
    """Why ``median`` cannot be the median images/s of ``samples`` (None when it can): it must be a
    positive number within their range, or a hand-edited or corrupted file would be judged by a
    number its own rounds contradict."""
    if median is None or median <= 0:
        return "is not a positive number"
    if samples is None:
        return "has no valid samples (a non-empty list of positive numbers)"
    lo, hi = min(samples), max(samples)
    if not lo * (1 - 1e-9) <= median <= hi * (1 + 1e-9):
        return f"is outside the range of its own samples [{lo:g}, {hi:g}]"
    return None


def results(doc: dict, *, device_class: str | None = None) -> list[dict]:
    """Flat results of one file: ``{"key", "median", "samples", "noisy", "error"}`` per benchmark,
    errored ones included."""
    out = []
    for b in doc.get("benchmarks", []):
        extra = b.get("extra_info") or {}
        ips = extra.get("images_per_s") or {}
        bid = result_id(extra, b.get("param") or b.get("name"))
        key = f"{device_class or _device_class(doc, extra)}/{bid}"
        median = finite(ips.get("median"))
        samples = _samples(ips.get("samples"))
        error = extra.get("error")
        if not error and (why := _median_error(median, samples)):
            error = f"result has no valid images/s: median {ips.get('median')!r} {why}"
        out.append(
            {
                "key": key,
                "median": median,
                "samples": samples or [],
                "noisy": bool(extra.get("noisy")),
                "cv": finite(extra.get("cv")),
                "error": error,
                "rounds": extra.get("rounds"),
            }
        )
    for e in doc.get("errors", []) or []:
        key = f"{device_class or _device_class(doc, e)}/{e.get('id') or e.get('name')}"
        out.append(_failing(key, e.get("error") or "errored"))
    return out


def _failing(key: str, error: str) -> dict:
    """A result (``results``' form) with no images/s: an errored case, or a planned one not measured."""
    return {"key": key, "median": None, "samples": [], "noisy": False, "cv": None, "error": error, "rounds": 0}


def planned(doc: dict) -> list[str]:
    """The case ids a result file was to measure: its options' cases, and for a merge of shards the
    whole plan's (a shard that is missing is a part of the sweep with no result). A file written
    before the backend axis lists them by their old ids: each is read as the id ``merge.case_id``
    gives the result recorded under it, so that a measured case is not taken for a missing one."""
    harness = doc.get("harness") or {}
    shard = harness.get("shard") or {}
    cases = (harness.get("options") or {}).get("cases") or []
    if "merged" in shard:
        cases = [*cases, *(shard.get("plan_cases") or [])]
    records = [*(doc.get("benchmarks") or []), *(doc.get("errors") or [])]
    renamed = {
        old: merge.case_id(r)
        for r in records
        for old in ((r.get("extra_info") or r).get("id"), r.get("param"), r.get("name"))
        if isinstance(old, str)
    }
    return list(dict.fromkeys(renamed.get(c, c) for c in cases if isinstance(c, str)))


def unmeasured(doc: dict, *, device_class: str | None = None) -> list[dict]:
    """A failing result (``results``' form) for each case the file planned and holds neither a
    benchmark nor an error for: an interrupted run, a missing shard, a case deselected with ``-k``.
    A run that did not measure a case says nothing about its speed, so ``compare`` must not pass it."""
    key = lambda case: f"{device_class or _device_class(doc, {})}/{case}"  # noqa: E731 (a file with none missing needs no device class)
    if merge.is_partial(doc) and not planned(doc):
        why = "the run was interrupted (partial) and records no plan (harness.options.cases), so what it did not measure is unknown"
        return [_failing(key("(the rest of the plan)"), f"no result: {why}")]
    why = (
        "the run was interrupted or a shard is missing (partial)"
        if merge.is_partial(doc)
        else "the run did not measure it"
    )
    return [_failing(key(case), f"no result: {why}") for case in unmeasured_ids(doc)]


def unmeasured_ids(doc: dict) -> list[str]:
    """The ids of the cases ``doc`` planned (``planned``) and holds neither a benchmark nor an error for."""
    recorded = {merge.case_id(r) for r in [*(doc.get("benchmarks") or []), *(doc.get("errors") or [])]}
    return [c for c in planned(doc) if c not in recorded]


def validate_entries(entries: dict, path="baselines.json") -> dict:
    """Check every throughput entry; a bad one is a ``BaselinesError`` naming it."""
    for key, entry in entries.items():
        where = f"baselines file {str(path)!r}: throughput/{key}"
        if "/" not in key:
            raise BaselinesError(f"{where}: key must be '<device class>/<benchmark id>'")
        if _samples(entry.get("samples")) is None:
            raise BaselinesError(f"{where}: samples must be a non-empty list of positive numbers")
        if why := _median_error(finite(entry.get("images_per_s")), _samples(entry.get("samples"))):
            raise BaselinesError(f"{where}: images_per_s {entry.get('images_per_s')!r} {why}")
        try:
            _rule(entry.get("rule"))
        except UsageError as e:
            raise BaselinesError(f"{where}: {e}") from None
        between = entry.get("between_run")
        if between is not None and (not isinstance(between, dict) or _samples(between.get("medians")) is None):
            raise BaselinesError(f"{where}: between_run.medians must be a list of positive numbers")
    return entries


MIN_RUNS = 3  # between-run medians needed for a prediction interval


def between_run_calibrations(section: dict) -> dict[str, dict[int, float]]:
    """baselines.json's ``ab_calibration`` thresholds that ``compare`` may take for the spread between
    runs, by result key (``device class/case``) and the rounds each A/A process timed: only those of an
    A/A whose processes ran one after the other (``ab --calibrate --interleave processes``), and only for
    the cases that A/A ran. With turns (the default) the two sides' rounds run a second apart and the
    drift between runs cancels, so that threshold is far narrower than two runs on different days
    differ; it serves ``ab``, not ``compare``. And an A/A of resnet20 says nothing of how far resnet50's
    runs drift apart."""
    out: dict[str, dict[int, float]] = {}
    for key, e in section.items():
        if e.get("interleave") == "processes":
            rounds = baselines.calibration_rounds(e)
            for case in e.get("cases") or {}:
                by_rounds = out.setdefault(f"{baselines.calibration_device_class(key)}/{case}", {})
                by_rounds[rounds] = max(by_rounds.get(rounds, 0.0), e["threshold"])  # two such A/As: the wider
    return out


def usable_calibration(by_rounds: dict[int, float], timed: int) -> float | None:
    """The A/A threshold that holds for runs of ``timed`` rounds: the widest of the A/As whose processes
    timed no more rounds than that. A process median over more rounds is steadier, so an A/A of more
    rounds than the runs would draw the line too narrow and call their noise a change."""
    usable = [t for rounds, t in by_rounds.items() if rounds <= timed]
    return max(usable) if usable else None


def between_run_significance(current: float, entry: dict, *, alpha: float, calibration: float | None) -> dict:
    """Whether ``current`` (a run's median) is beyond the baseline's between-run spread:
    ``{"significant": bool | None, "note": str}``. From the entry's run medians (>= ``MIN_RUNS``):
    outside the one-sided prediction interval at ``alpha``; else from the A/A ``calibration``
    (a fraction): a change larger than it; else None (no between-run spread known). ``untestable``
    says why the interval could not have found this drop significant, ``error`` why there is none."""
    medians = (entry.get("between_run") or {}).get("medians") or []
    if len(medians) >= MIN_RUNS:
        try:  # two-sided at 2 alpha = one-sided at alpha
            halfwidth = stats.prediction_halfwidth(medians, false_alarm=2 * alpha)["halfwidth"]
        except ValueError as e:  # medians near the float limit: no interval
            return {"significant": None, "note": "", "error": f"no between-run interval: {e}"}
        centre = float(np.mean(medians))
        note = f"between {len(medians)} runs: ±{halfwidth / centre:.1%} at alpha {alpha:g}"
        return {
            "significant": abs(current - centre) > halfwidth,
            "note": note,
            # the interval reaches 0: no drop, however large, falls outside it
            "untestable": "the between-run interval reaches 0 images/s, so no drop is significant; record more runs"
            if current < centre and halfwidth >= centre
            else None,
        }
    if calibration is not None:
        change = abs(current / entry["images_per_s"] - 1.0)
        return {
            "significant": change > calibration,
            "note": f"A/A calibration ±{calibration:.1%}",
            "untestable": "the A/A threshold is 100 % or more, so no drop is significant"
            if calibration >= 1 and current < entry["images_per_s"]
            else None,
        }
    return {
        "significant": None,
        "note": "rounds of one run only: record >= 3 runs or `ab --calibrate --interleave processes` for the between-run spread",
    }


def judge_all(
    current: list[dict],
    base: dict,
    *,
    rule_override: str | None = None,
    alpha: float = rules.ALPHA,
    calibration: dict | None = None,
) -> list[rules.Finding]:
    """One finding per current result; ``calibration`` maps a result key to its A/A thresholds by the
    rounds a process timed (``between_run_calibrations``)."""
    override = _rule_given(rule_override) if rule_override is not None else None
    findings = []
    for r in current:
        entry = base.get(r["key"])
        rule = override or _rule(entry.get("rule") if entry else None)
        if r["error"]:
            findings.append(rules.judge(r["key"], rule, r["median"], entry and entry["images_per_s"], error=r["error"]))
            continue
        if entry is None:
            findings.append(rules.judge(r["key"], rule, r["median"], None))
            continue
        sig = stats.significance(r["samples"], entry["samples"], alpha=alpha)
        by_rounds = (calibration or {}).get(r["key"]) or {}
        timed = min(len(r["samples"]), len(entry["samples"]))
        between = between_run_significance(
            r["median"], entry, alpha=alpha, calibration=usable_calibration(by_rounds, timed)
        )
        notes = [between["note"]]
        device_class = r["key"].split("/", 1)[0]
        if between["significant"] is None and by_rounds:
            notes.append(
                f"the A/A calibration for this case timed {min(by_rounds)} rounds a process, more than these runs' "
                f"{timed}, and does not apply"
            )
        elif between["significant"] is None and any(k.split("/", 1)[0] == device_class for k in calibration or {}):
            notes.append(f"the A/A calibration for {device_class} ran other cases and does not apply")
        untestable = between.get("untestable")
        if between["significant"] is not None:
            sig["significant"] = between["significant"]
        elif sig["p"] is not None:
            notes.append(f"p={sig['p']:.2g}")
            if sig["smallest_p"] >= alpha:
                untestable = (
                    f"the rank test over {len(r['samples'])} and {len(entry['samples'])} rounds cannot reach "
                    f"p < {alpha:g} (its smallest p is {sig['smallest_p']:.2g}); record more rounds or runs"
                )
        if sig["ci"] is not None:
            lo, hi = sig["ci"]
            notes.append(f"ratio 95% CI [{lo:.3f}, {hi:.3f}]")
        if sig["significant"] is None:
            notes.append("too few rounds to test; tolerance alone decides")
        if r["noisy"]:
            notes.append(f"noisy run (CV {r['cv']:.1%})" if r["cv"] is not None else "noisy run")
        numbers_error = between.get("error") or (
            "the ratio of medians' interval is not finite (rates near the float limit)"
            if sig["ci"] and not np.isfinite(sig["ci"]).all()
            else None
        )
        if numbers_error:  # rates near the float limit: no statistic of them is a verdict
            findings.append(rules.judge(r["key"], rule, r["median"], entry["images_per_s"], error=numbers_error))
            continue
        findings.append(
            rules.judge(
                r["key"],
                rule,
                r["median"],
                entry["images_per_s"],
                significant=sig["significant"],
                note=", ".join(n for n in notes if n),
                untestable=untestable,
            )
        )
    return findings


def few_runs_warning(entries: dict[str, dict]) -> str | None:
    """A line for ``baselines update`` when new entries come from fewer than ``MIN_RUNS`` runs (None if none)."""
    few = [k for k, e in entries.items() if (e.get("between_run") or {}).get("n", 1) < MIN_RUNS]
    if not few:
        return None
    return (
        f"warning: {len(few)} benchmark(s) recorded from fewer than {MIN_RUNS} runs: compare can then judge them only"
        " by one run's rounds, which call drift between runs a change (README: compare over time);"
        f" record >= {MIN_RUNS} runs, e.g. baselines update A.json B.json C.json"
    )


def baseline_entries(docs: list[tuple[str, dict]], args, *, existing: dict | None = None) -> dict[str, dict]:
    """New throughput baseline entries from result files (for ``python -m bench baselines update``).

    A benchmark whose runs given are all in its ``existing`` entry already (``_run_medians``) keeps
    that entry: giving one of its runs again changes nothing (``--tolerance``/``--provenance`` still
    set its rule and provenance). Otherwise the runs given replace the entry whole: a new recording
    is those runs only, never a mix with older ones, which may have measured other code or another
    day's machine; an entry that had a between-run spread of more runs than that says so on stderr
    (``_dropped_spread``). Either way the entry keeps its rule and provenance, which may have been set
    by hand, unless ``--tolerance`` or ``--provenance`` gives another."""
    from bench.environment import machine_line

    given = getattr(args, "tolerance", None)
    given_rule = str(_rule_given(given)) if given is not None else None
    given_provenance = getattr(args, "provenance", None)
    runs: dict[str, list[tuple[str, dict, dict, dict]]] = {}
    for path, doc in docs:
        for r, b in zip(results(doc), [*(doc.get("benchmarks") or []), *(doc.get("errors") or [])]):
            if r["error"]:
                print(f"skipping {r['key']} from {path}: {r['error']}", file=sys.stderr)
                continue
            if r["noisy"]:
                print(
                    f"warning: {r['key']} from {path} is noisy (CV {r['cv']:.1%}); a quieter run makes a tighter baseline",
                    file=sys.stderr,
                )
            runs.setdefault(r["key"], []).append((path, doc, r, b))
    entries: dict[str, dict] = {}
    for key, found in runs.items():
        old = (existing or {}).get(key) or {}
        kept = {
            "rule": given_rule or old.get("rule") or str(_rule(None)),
            "provenance": given_provenance or old.get("provenance"),
        }
        if old and {run[2]["median"] for run in found} <= set(_run_medians(old)):
            entries[key] = old | {k: v for k, v in kept.items() if v}  # its runs again: only what was given changes
            continue
        # several runs of one benchmark: the entry is the median run, and keeps every run's median
        found.sort(key=lambda run: run[2]["median"])
        path, doc, r, b = found[(len(found) - 1) // 2]
        commit = doc.get("commit_info") or {}
        extra = b.get("extra_info") or {}
        entries[key] = {
            "images_per_s": r["median"],
            "samples": r["samples"],
            "rule": kept["rule"],
            "cv": r["cv"],
            "noisy": r["noisy"],
            "rounds": r["rounds"],
            "utilization": extra.get("utilization"),
            "loadavg": extra.get("loadavg_start"),
            "recorded": doc.get("datetime"),
            "commit": commit.get("id"),
            "dirty": commit.get("dirty"),
            "machine": machine_line(doc.get("machine_info") or {}),
            "provenance": kept["provenance"] or str(path),
        }
        if len(found) > 1:
            medians = [run[2]["median"] for run in found]
            entries[key]["between_run"] = {"medians": medians, "n": len(medians), "sources": [run[0] for run in found]}
        if warning := _dropped_spread(key, old, len(found)):
            print(warning, file=sys.stderr)
    if not entries:
        raise UsageError("no successful throughput benchmark to record")
    return entries


def _run_medians(entry: dict) -> list[float]:
    """The medians of the runs an entry was recorded from: its between-run medians, else its own
    (none where the entry holds no valid ones: it is then replaced)."""
    between = entry.get("between_run")
    medians = _samples(between.get("medians")) if isinstance(between, dict) else None
    return medians or [m for m in [finite(entry.get("images_per_s"))] if m is not None]


def _dropped_spread(key: str, old: dict, runs: int) -> str | None:
    """A warning when ``runs`` new runs replace an entry whose between-run spread came from more runs
    (None otherwise): that spread goes with the old runs, and ``compare`` then judges by fewer."""
    before = len(_run_medians(old))
    if before <= max(runs, 1):
        return None
    return (
        f"warning: {key}: {runs} new run(s) replace the entry recorded from {before} runs, and its between-run "
        f"spread of {before} runs goes with them (a new recording is the runs given, never mixed with older runs of "
        "perhaps other code); give the runs together to keep a spread, e.g. baselines update A.json B.json C.json"
    )
