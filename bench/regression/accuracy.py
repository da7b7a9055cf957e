"""``python -m bench gate RESULTS...``: the accuracy gate against baselines.json's ``accuracy`` section.

Each training result (``bench.training.loop``) is keyed by recipe, dataset, budget and device class,
``"smoke_resnet20_cifar10_jpeg|cifar10_jpeg|epochs=3|cpu"``, and judged with ``bench.regression.rules`` on
its top-1 against the entry's mean and tolerance. The device class of a budget in epochs or
steps is the device kind (cpu, gpu, tpu: the same work gives the same accuracy up to numerics);
a minutes budget depends on the hardware's speed, so its key uses the full device class
(``cpu:AMD EPYC 7B13 x2``). Entries with device ``*`` (the articles' figures) match any device.

An entry::

    {"recipe": ..., "dataset": ..., "budget": "epochs=3", "device": "cpu", "metric": "top1",
     "mean": 74.9, "std": 0.4, "n": 3, "samples": {"1": 75.1, ...}, "tolerance": "top1:-1.2pt",
     "provenance": "...", "measured": true, "environment": "...", "commit": "...", "updated": "..."}

Verdicts: pass, regression, improvement, no baseline, error (a failed, NaN or partially
evaluated run, or an unreadable result file). Any regression, error or missing baseline fails
(exit 1). A corrupt or schema-invalid baselines.json is a one-line error (exit 2), never a pass.
"""

from __future__ import annotations

import datetime
import json
import statistics
import sys
from pathlib import Path

from bench import fingerprint, results
from bench.errors import BaselinesError, UsageError
from bench.regression import baselines
from bench.regression.rules import ACCURACY_METRIC, Finding, Rule, Verdict, changed, judge, prediction_rule
from bench.stats import finite
from bench.training.budget import Budget

SECTION = "accuracy"
METRIC = ACCURACY_METRIC
LOSS = "loss"  # the test cross-entropy, gated beside top-1 where an entry has its band (lower is better)
LOSS_DIGITS = 6  # decimals a loss band's mean and samples are stored with
TOP1_DIGITS = 4  # decimals an entry's top-1 mean and samples are stored with
RESULT_KINDS = ("bench.train", "bench.reported")
ANY_DEVICE = "*"
# Commit 631a30e (its commit time): every result written by the code from it on records its
# fingerprint, and result files did not change schema then. A result without one is judged by
# statistics alone only when its code is older (its commit's time, or, outside git, the time it ran).
FINGERPRINTS_SINCE = datetime.datetime(2026, 11, 24, 11, 17, 34, tzinfo=datetime.UTC)


# ---------------------------------------------------------------------------------------------
# Keys and entries


def is_result(doc) -> bool:
    """A training result (``bench.train``) or a reported figure with provenance (``bench.reported``)."""
    return isinstance(doc, dict) and doc.get("kind") in RESULT_KINDS


def device_key(doc: dict) -> str:
    """The device part of a result's key, ``<device>@<backend>``: the device kind for work budgets,
    the full device class for time budgets; the Keras backend, so that a jax run never gates against
    tensorflow's baseline (results written before the backend axis ran tensorflow)."""
    if doc.get("kind") == "bench.reported":
        return ANY_DEVICE
    if str(doc.get("budget", "")).startswith("minutes="):
        device = str(doc.get("device_class") or doc.get("device"))
    else:
        device = str(doc.get("device"))
    return f"{device}@{doc.get('backend') or 'tensorflow'}"


def key_of(doc: dict) -> str:
    return "|".join((str(doc.get("recipe")), str(doc.get("dataset")), str(doc.get("budget")), device_key(doc)))


def lookup(entries: dict, key: str) -> tuple[str, dict] | tuple[None, None]:
    """The entry for ``key``, else the device-agnostic one (``...|*``)."""
    if key in entries:
        return key, entries[key]
    wildcard = "|".join(key.split("|")[:3] + [ANY_DEVICE])
    if wildcard in entries:
        return wildcard, entries[wildcard]
    return None, None


def validate_entry(key: str, entry: dict, where: str = "baselines.json") -> dict:
    """Check one accuracy entry's schema; any problem is a ``BaselinesError`` naming it."""

    def bad(msg: str):
        raise BaselinesError(f"{where}: accuracy entry {key!r} {msg}")

    if not isinstance(entry, dict):
        bad("must be an object")
    for field in ("recipe", "dataset", "budget", "device", "provenance"):
        if not isinstance(entry.get(field), str) or not entry[field]:
            bad(f"needs a non-empty string {field!r}")
    try:
        budget = str(Budget.parse(entry["budget"]))
    except UsageError as e:
        bad(f"has budget {str(e).removeprefix('--budget ')}")
    if budget != entry["budget"]:
        bad(f"has budget {entry['budget']!r}; expected it as runs record it, {budget!r}")
    expected_key = "|".join((entry["recipe"], entry["dataset"], entry["budget"], entry["device"]))
    if key != expected_key:
        bad(f"does not match its fields (they give {expected_key!r})")
    if entry.get("metric", METRIC) != METRIC:
        bad(f"has metric {entry.get('metric')!r}; the accuracy gate compares {METRIC!r}")
    mean = entry.get("mean")
    if not (finite(mean) is not None) or not 0.0 <= mean <= 100.0:
        bad(f"has mean {mean!r}; expected a top-1 percentage in [0, 100]")
    n = entry.get("n")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        bad(f"has n {n!r}; expected a positive count of runs")
    std = entry.get("std")
    if n >= 2 and (not (finite(std) is not None) or std < 0):
        bad(f"has std {std!r}; expected a non-negative number for n={n}")
    if n == 1 and std is not None and (not (finite(std) is not None) or std < 0):
        bad(f"has std {std!r}; expected null or a non-negative number")
    try:
        Rule.parse_for(str(entry.get("tolerance")), metric=METRIC, unit="pt")
    except UsageError as e:
        bad(f"has an invalid tolerance: {e}")
    if not isinstance(entry.get("measured"), bool):
        bad("needs 'measured': true (from runs) or false (a reported figure)")
    if not isinstance(entry.get("allow_improvement", False), bool):
        bad(f"has allow_improvement {entry.get('allow_improvement')!r}; expected true or false")
    if not _per_seed(entry.get("samples"), lambda v: 0.0 <= v <= 100.0):
        bad(f"has samples {_brief(entry.get('samples'))}; expected {{seed: top-1 percentage}}")
    if entry.get("samples"):
        if n != len(entry["samples"]):
            bad(f"has n {n} but {len(entry['samples'])} samples; n counts the seeds in samples")
        if problem := _mean_problem(mean, entry["samples"], TOP1_DIGITS):
            bad(f"has mean {problem}")
    loss = entry.get(LOSS)
    if loss is not None:
        if not isinstance(loss, dict) or finite(loss.get("mean")) is None or loss["mean"] <= 0:
            bad(f"has {LOSS} {_brief(loss)}; expected an object with a 'mean' above 0 (a cross-entropy)")
        try:
            Rule.parse_for(str(loss.get("tolerance")), metric=LOSS, unit="%", higher_is_better=False)
        except UsageError as e:
            bad(f"has an invalid {LOSS} tolerance: {e}")
        if not _per_seed(loss.get("samples"), lambda v: v > 0):
            bad(f"has {LOSS} samples {_brief(loss.get('samples'))}; expected {{seed: test loss above 0}}")
        if loss.get("samples") and (problem := _mean_problem(loss["mean"], loss["samples"], LOSS_DIGITS)):
            bad(f"has {LOSS} mean {problem}")
    fp = entry.get("fingerprint")
    if fp is not None and (problem := fingerprint.shape_problem(fp)):
        bad(f"has a fingerprint that {problem}")
    return entry


def _mean_problem(mean: float, samples: dict, digits: int) -> str | None:
    """Why ``mean`` is not the mean of ``samples`` as both are stored, each rounded to ``digits``
    decimals from the runs' own numbers (so they may differ by one unit in that place); None when it
    is. A mean its own samples contradict would be what the gate judges against."""
    actual = statistics.fmean(samples.values())
    if abs(mean - actual) > 10.0**-digits * (1 + 1e-6):
        return f"{mean!r}, but its {len(samples)} samples average {round(actual, digits)!r}"
    return None


def _per_seed(samples, in_range) -> bool:
    """Whether ``samples`` is missing, or maps seeds (decimal strings) to finite numbers ``in_range``."""
    return samples is None or (
        isinstance(samples, dict)
        and all(str(s).isdecimal() and finite(v) is not None and in_range(v) for s, v in samples.items())
    )


def _brief(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def load_entries(path: str | Path) -> dict:
    """The validated accuracy section of ``path``."""
    return validate_entries(baselines.section(path, SECTION), path)


def validate_entries(entries: dict, path: str | Path = "baselines.json") -> dict:
    """Check every accuracy entry (``validate_entry``)."""
    for key, entry in entries.items():
        validate_entry(key, entry, where=str(path))
    return entries


# ---------------------------------------------------------------------------------------------
# The gate


def judge_result(doc: dict, entries: dict, *, source: str = "", allow_improvement: bool = False) -> list[Finding]:
    """The findings for one training result: top-1, and the test loss where the entry has its band;
    one ``changed`` finding instead when its fingerprint differs from the baseline's."""
    key = key_of(doc)
    matched, entry = lookup(entries, key)
    notes = []
    if doc.get("modified"):
        notes.append(f"modified recipe ({', '.join(doc['modified'])})")
    if (doc.get("commit_info") or {}).get("dirty"):
        notes.append(f"dirty tree: uncommitted changes on {str((doc.get('commit_info') or {}).get('id'))[:10]}")
    error = _result_error(doc, source) or (_missing_fingerprint(entry, doc) if entry else None)
    if entry and not error:
        differences, fp_notes, comparable = _fingerprint_check(entry, doc)
        notes += fp_notes
        if differences:
            return [changed(key, METRIC, differences, note="; ".join(notes))]
        if comparable:
            notes.append(_reproduction_note(entry, doc))
        notes.append(_band_note(entry))
        if not entry["measured"]:
            notes.append("reported baseline: " + entry["provenance"][:60])
        if matched != key:
            notes.append(f"matched {matched}")
    two_sided = not (allow_improvement or (entry or {}).get("allow_improvement", False))
    current = doc.get(METRIC)
    rule = Rule.parse(entry["tolerance"]) if entry else Rule.parse(f"{METRIC}:-0pt")
    note = "; ".join(n for n in notes if n)
    findings = [
        judge(key, rule, finite(current), entry["mean"] if entry else None, error=error, two_sided=two_sided, note=note)
    ]
    loss_entry = (entry or {}).get(LOSS)
    if loss_entry and not error:
        loss = finite(doc.get(LOSS))
        # judged as the band's mean is stored (``_loss_band``): a loss equal to it is no change, even in a ±0 band
        loss = None if loss is None else round(loss, LOSS_DIGITS)
        findings.append(judge(key, Rule.parse(loss_entry["tolerance"]), loss, loss_entry["mean"], two_sided=two_sided))
    return findings


def _result_error(doc: dict, source: str) -> str | None:
    current = doc.get(METRIC)
    if doc.get("kind") != "bench.train":
        return f"{source or 'file'} is a {doc.get('kind')}, not a training result"
    if doc.get("status") != "ok":
        return f"run failed: {doc.get('error') or doc.get('status')}"
    if finite(current) is None:
        return f"{METRIC} is {current!r}, not a finite number"
    if doc.get("fingerprint") is not None and (problem := fingerprint.shape_problem(doc["fingerprint"])):
        return f"its fingerprint {problem}"  # results.read says so first; a document given directly too
    if problem := _integrity_error(doc):
        return problem
    expected = _test_split_size(doc.get("dataset"))
    if expected is not None and doc.get("test_examples") != expected:
        return f"evaluated on {doc.get('test_examples')} of the {expected} test images; the gate needs the whole split"
    return None


def _integrity_error(doc: dict) -> str | None:
    """What no run of this harness writes, beyond the fields ``bench.results`` checks: a result of
    today's schema whose fingerprint lacks a part or field that today's code always records (an older
    fingerprint predates them), or a job whose workers ended with different weights (a failed run)."""
    fp, schema = doc.get("fingerprint"), doc.get("schema")
    if isinstance(fp, dict) and isinstance(schema, int) and schema >= 2 and (lacks := fingerprint.missing(fp)):
        return (
            f"its fingerprint lacks {', '.join(lacks)}, which every result of schema {schema} records: "
            "edited or corrupt"
        )
    job = doc.get("cluster")
    if isinstance(job, dict) and job.get("workers_agree") is not True:
        return (
            f"run failed: its {job.get('workers')} workers ended with different weights "
            f"(workers_agree {json.dumps(job.get('workers_agree'))}), so its numbers are no one run's"
        )
    return None


def _fingerprint_check(entry: dict, doc: dict) -> tuple[dict[str, list[str]], list[str], bool]:
    """(the differences that are changes, notes, whether both fingerprints have the same versions):
    the notes name version differences, what one fingerprint predates, or the side that has none."""
    base, current = entry.get("fingerprint"), doc.get("fingerprint")
    if not base:
        return {}, ["baseline has no fingerprint: statistics only"], False
    if current is None:
        return {}, ["result has no fingerprint (written before fingerprints): statistics only"], False
    found = fingerprint.differences(base, current)
    changes, notes = fingerprint.changes_and_notes(found)
    return changes, notes, "environment" not in found


def _missing_fingerprint(entry: dict, doc: dict) -> str | None:
    """The error for a result without a fingerprint, gated against a baseline with one, whose code
    would have written one: only results of code older than ``FINGERPRINTS_SINCE`` lack it
    honestly (by their commit's time; a run outside git by when it ran, which its code predates)."""
    if not entry.get("fingerprint") or doc.get("fingerprint") is not None:
        return None
    commit_time = (doc.get("commit_info") or {}).get("time")
    when, what = (commit_time, "its commit is of") if commit_time else (doc.get("datetime"), "it ran on")
    try:
        code = datetime.datetime.fromisoformat(str(when))
    except ValueError:
        return (
            "result has no fingerprint and no commit or run time to show it predates fingerprints "
            f"({FINGERPRINTS_SINCE:%Y-%m-%d}): the recipe, model and data cannot be checked"
        )
    if (code if code.tzinfo else code.replace(tzinfo=datetime.UTC)) < FINGERPRINTS_SINCE:
        return None
    return (
        f"result has no fingerprint, but {what} {when}, when every result recorded one: "
        "the recipe, model and data cannot be checked"
    )


def _reproduction_note(entry: dict, doc: dict) -> str:
    """Under op determinism the same code, versions and seed give the same number: a result of one
    of the baseline's own seeds, with the same fingerprint and versions, either reproduces its sample
    (the run is what the baseline measured) or says that something the fingerprint cannot see moved
    the numbers (data or evaluation code, op order): a fresh draw, which the band judges."""
    sample = (entry.get("samples") or {}).get(str(doc.get("seed")))
    if sample is None or finite(doc.get(METRIC)) is None or not (doc.get("config") or {}).get("deterministic"):
        return ""
    if round(float(doc[METRIC]), TOP1_DIGITS) == sample:
        return f"reproduces the baseline's seed {doc['seed']} exactly"
    return (
        f"numerics changed: seed {doc['seed']} gave {sample} in the baseline, with the same fingerprint and "
        "versions (data or evaluation code, op order)"
    )


def _band_note(entry: dict) -> str:
    """Where the band comes from, in words (no z-score: a handful of seeds does not make one exact)."""
    std, n = entry.get("std"), entry["n"]
    if finite(std) is not None and n >= 2:
        return f"baseline {entry['mean']:.2f} ± {std:.2f} pt (sd of {n} seeds)"
    return f"baseline from {n} run"


def _test_split_size(dataset) -> int | None:
    from bench.training.data import DATASETS

    return DATASETS[dataset].splits["test"] if dataset in DATASETS else None  # mock sets: whatever was mocked


def collect(paths: list[str]) -> list[tuple[str, dict | None, str | None]]:
    """(path, document or None, error) for every result file named or found in a named directory."""
    found: list[tuple[str, dict | None, str | None]] = []
    for p in paths:
        path = Path(p)
        if not str(p):  # Path("") is the current directory
            raise UsageError("result path '' is empty; expected a result file or a directory of them")
        if path.is_dir():
            files = sorted(f for f in path.glob("*.json") if not f.name.startswith("."))
            explicit = False
        elif path.exists():
            files, explicit = [path], True
        else:
            raise UsageError(f"result path {p!r} does not exist")
        for f in files:
            try:
                doc = results.read(f)
            except UsageError as e:  # this file's error finding: the others are still judged
                found.append((str(f), None, str(e)))
                continue
            if is_result(doc) and doc.get("kind") == "bench.train":
                found.append((str(f), doc, None))
            elif explicit:
                found.append(
                    (
                        str(f),
                        None,
                        f"{str(f)!r} is not a training result (kind {doc.get('kind') if isinstance(doc, dict) else type(doc).__name__!r})",
                    )
                )
    return found


def gate(paths: list[str], baselines_path: str | Path, *, allow_improvement: bool = False) -> list[Finding]:
    entries = load_entries(baselines_path)
    findings = []
    for path, doc, error in collect(paths):
        if doc is None:
            findings.append(
                Finding(key=Path(path).name, metric=METRIC, verdict=Verdict.ERROR, reason=error or "unreadable")
            )
        else:
            findings.extend(judge_result(doc, entries, source=path, allow_improvement=allow_improvement))
    return findings


# ---------------------------------------------------------------------------------------------
# Baselines from results (``python -m bench baselines update``)


def baseline_entries(docs: list[tuple[str, dict]], args, *, existing: dict | None = None) -> dict[str, dict]:
    """Aggregate results into entries, one per key: mean, sample std and count over seeds, and a
    tolerance from the seeds' prediction interval (``rules.prediction_rule``; ``--tolerance``
    overrides; fewer than 3 seeds: the recipe's). Seeds the recipe was designed on are refused.
    The seeds of a measured entry in ``existing`` are kept beside the new ones (``merge_samples``)
    unless ``args.replace``."""
    groups: dict[str, list[tuple[str, dict]]] = {}
    for path, doc in docs:
        if doc.get("kind") == "bench.train":
            _check_baseline_run(path, doc)
        else:
            doc = _check_reported(path, doc)
        groups.setdefault(key_of(doc), []).append((path, doc))
    tolerance = (
        str(Rule.parse_for(args.tolerance, metric=METRIC, unit="pt")) if getattr(args, "tolerance", None) else None
    )
    provenance = getattr(args, "provenance", None)
    replace = getattr(args, "replace", False)
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    entries = {}
    for key, group in groups.items():
        old = (existing or {}).get(key)
        if group[0][1].get("kind") == "bench.reported":
            if len(group) > 1:
                raise UsageError(f"{len(group)} reported figures for {key!r}; give one")
            entry = _reported_entry(key, group[0][1], tolerance, provenance)
        elif any(d.get("kind") != "bench.train" for _, d in group):
            raise UsageError(f"{key!r}: do not mix reported figures with measured results")
        else:
            runs = [d for _, d in group]
            if old and old.get("measured") and not replace:
                _check_keeps_loss_band(key, old, group)
                merged = merge_samples(key, old, runs)
                seeds = [str(d.get("seed")) for d in runs]
                if (
                    len(set(seeds)) == len(seeds)
                    and set(seeds) <= set(old.get("samples") or {})
                    and not (tolerance or provenance)
                ):
                    entries[key] = old  # every seed given is in the entry with its top-1: nothing to change
                    continue
                entry = _kept_by_hand(old, _measured_entry(key, merged, tolerance, provenance), provenance)
            else:
                entry = _measured_entry(key, runs, tolerance, provenance)
        if old is not None and {k: v for k, v in old.items() if k != "updated"} == entry:
            entries[key] = old  # the same entry: its time of update stays, and nothing is written
        else:
            entries[key] = validate_entry(key, {**entry, "updated": now}, where="update")
    return entries


def _kept_by_hand(old: dict, entry: dict, provenance: str | None) -> dict:
    """``entry`` (an ``old`` entry with seeds added) with what was set by hand on ``old`` kept: its
    provenance (unless ``--provenance`` gives another) and every field that ``_measured_entry`` does
    not make, such as ``allow_improvement``. ``--replace`` starts an entry over instead."""
    hand_set = {k: v for k, v in old.items() if k not in entry and k != "updated"}
    return {**entry, **hand_set, "provenance": provenance or old["provenance"]}


def _check_keeps_loss_band(key: str, old: dict, group: list[tuple[str, dict]]) -> None:
    """A one-line error when a run without a test loss would join an entry that gates the loss: its
    band needs every seed's loss, and dropping it would silently weaken the gate."""
    if not old.get(LOSS):
        return
    for path, doc in group:
        if finite(doc.get(LOSS)) is None:
            raise UsageError(
                f"{path!r} has loss {doc.get(LOSS)!r}, but entry {key!r} gates the test loss, which needs it "
                "from every seed; give a run that recorded it, or --replace to start the entry over"
            )


def merge_samples(key: str, old: dict, runs: list[dict]) -> list[dict]:
    """The runs behind an entry that gains ``runs``: those, then one for each of the ``old`` entry's
    other seeds (its top-1 and time; the rest copied from the first new run). A seed in both with
    another top-1 is an error: ``--replace`` replaces the entry with the new runs."""
    samples, times = old.get("samples") or {}, old.get("wall_time_s") or {}
    if not isinstance(samples, dict) or not all(
        str(s).isdecimal() and finite(v) is not None for s, v in samples.items()
    ):
        raise BaselinesError(f"accuracy entry {key!r} has samples {samples!r}; expected {{seed: top-1}}")
    new = {str(d.get("seed")): round(float(d[METRIC]), TOP1_DIGITS) for d in runs}
    for seed, value in new.items():
        if seed in samples and samples[seed] != value:
            raise UsageError(
                f"{key!r}: seed {seed} is in the baseline with top-1 {samples[seed]}, the new run has {value}; "
                "pass --replace to replace the entry with the new runs"
            )
    losses = (old.get(LOSS) or {}).get("samples") or {}
    kept = [
        {
            **runs[0],
            "seed": int(s),
            METRIC: v,
            LOSS: losses.get(s),  # None when the entry has no loss band: the merged entry then has none
            "wall_time_s": (times.get(s) if isinstance(times, dict) else None),
            "fingerprint": old.get("fingerprint"),  # what produced the old seeds: it must match the new runs'
        }
        for s, v in samples.items()
        if s not in new
    ]
    return runs + kept


def _check_baseline_run(path: str, doc: dict) -> None:
    """A training result may become a baseline only if it succeeded, ran the recipe as registered
    and was evaluated on the whole test split."""
    if doc.get("status") != "ok" or finite(doc.get(METRIC)) is None:
        raise UsageError(f"{path!r} is a failed run ({doc.get('error') or doc.get('status')}); it cannot be a baseline")
    if problem := _integrity_error(doc):
        raise UsageError(f"{path!r}: {problem}; it cannot be a baseline")
    if doc.get("modified"):
        raise UsageError(
            f"{path!r} ran a modified recipe ({', '.join(doc['modified'])}); baselines come from unmodified recipes"
        )
    expected = _test_split_size(doc.get("dataset"))
    if expected is not None and doc.get("test_examples") != expected:
        raise UsageError(
            f"{path!r} evaluated {doc.get('test_examples')} of {expected} test images; baselines need the whole split"
        )


def _check_reported(path: str, doc: dict) -> dict:
    """A reported figure may become a baseline only for a registered recipe, on its dataset, at a
    budget a run can have (``bench.results.check_reported`` has checked the fields). Returns it with
    its budget as the gate keys a run's (``full`` resolved to the recipe's, ``epochs=3``), or its
    entry would match no result."""
    from bench.training import recipes

    try:
        recipe = recipes.get(doc["recipe"])
    except UsageError as e:
        raise UsageError(f"{path!r}: {e}") from None
    try:
        budget = Budget.parse(doc["budget"], full=recipe.full())
    except UsageError as e:  # Budget's words are --budget's: here the value is a field's
        raise UsageError(f"{path!r}: field 'budget' {str(e).removeprefix('--budget ')}") from None
    if doc["dataset"] != recipe.dataset:
        raise UsageError(f"{path!r}: recipe {recipe.name} trains on {recipe.dataset}, not {doc['dataset']!r}")
    return {**doc, "budget": str(budget)}


def _reported_entry(key: str, doc: dict, tolerance: str | None, provenance: str | None) -> dict:
    if not (tolerance or doc.get("tolerance")):
        raise UsageError(f"{key!r}: the reported figure has no tolerance; give one with --tolerance")
    return {
        "recipe": doc["recipe"],
        "dataset": doc["dataset"],
        "budget": doc["budget"],
        "device": ANY_DEVICE,
        "metric": METRIC,
        "mean": float(doc[METRIC]),
        "std": None,
        "n": 1,
        "samples": {},
        "tolerance": tolerance or doc.get("tolerance"),
        "measured": False,
        "provenance": provenance or doc["provenance"],
    }


def _measured_entry(key: str, runs: list[dict], tolerance: str | None, provenance: str | None) -> dict:
    """Mean, std and the per-seed samples of ``runs`` (one recipe, dataset, budget and device), with
    the tolerance and where every number came from."""
    from bench.environment import machine_line
    from bench.training import recipes

    first = runs[0]
    seeds = [d.get("seed") for d in runs]
    if len(set(seeds)) != len(seeds):
        raise UsageError(
            f"{key!r}: seed(s) {sorted({s for s in seeds if seeds.count(s) > 1})} given twice; each seed once"
        )
    recipe = recipes.RECIPES.get(first["recipe"])
    design = list(recipe.design_seeds) if recipe else []
    if set(seeds) & set(design):
        raise UsageError(
            f"{key!r}: seed(s) {sorted(set(seeds) & set(design))} were used to design {first['recipe']} "
            f"(design seeds {design}); a baseline needs seeds the recipe was not tuned on"
        )
    values = [float(d[METRIC]) for d in runs]
    n = len(values)
    tol, method = prediction_rule(values) if n >= 3 and not tolerance else (tolerance, {})
    if tol is None:
        tol = recipe.tolerance if recipe else f"{METRIC}:-1pt"
        print(
            f"warning: {key}: only {n} run(s); tolerance {tol} from the recipe, not from the seeds' spread",
            file=sys.stderr,
        )
    machine = first.get("machine_info") or {}
    where = machine_line(machine) if machine else "unknown machine"
    by_seed = sorted(zip(seeds, values, runs), key=lambda t: t[0])
    return {
        "recipe": first["recipe"],
        "dataset": first["dataset"],
        "budget": first["budget"],
        "device": device_key(first),
        "metric": METRIC,
        "mean": round(statistics.fmean(values), TOP1_DIGITS),
        "std": round(statistics.stdev(values), TOP1_DIGITS) if n >= 2 else None,
        "n": n,
        "samples": {str(s): round(v, TOP1_DIGITS) for s, v, _ in by_seed},
        "wall_time_s": {str(s): d.get("wall_time_s") for s, _, d in by_seed},
        "tolerance": tol,
        "measured": True,
        "provenance": provenance
        or (f"measured: {n} seed(s) {sorted(seeds)} with bench train, {where}; design seeds {design} excluded"),
        "tolerance_method": method.get("tolerance_method"),
        "shapiro_p": method.get("shapiro_p"),
        "design_seeds": design,
        "environment": machine_line(machine) if machine else None,
        "commit": (first.get("commit_info") or {}).get("id"),
        LOSS: _loss_band(runs),
        "fingerprint": _common_fingerprint(key, runs),
    }


def _loss_band(runs: list[dict]) -> dict | None:
    """The test loss's mean, spread and band over the same seeds (>= 3 runs that all recorded it)."""
    losses = [finite(d.get(LOSS)) for d in runs]
    if len(losses) < 3 or any(v is None for v in losses):
        return None
    rule, method = prediction_rule(losses, metric=LOSS, unit="%", higher_is_better=False)
    return {
        "mean": round(statistics.fmean(losses), LOSS_DIGITS),
        "std": round(statistics.stdev(losses), LOSS_DIGITS),
        "samples": {
            str(d.get("seed")): round(v, LOSS_DIGITS) for d, v in sorted(zip(runs, losses), key=lambda t: t[0]["seed"])
        },
        "tolerance": rule,
        "tolerance_method": method["tolerance_method"],
    }


def _common_fingerprint(key: str, runs: list[dict]) -> dict | None:
    """The fingerprint the runs share; runs produced by different recipes, models or data are not one
    baseline. None when the runs predate fingerprints (``bench fingerprint --record`` adds it). Where
    one predates fields of another, the fullest: a run never removes what the entry compares."""
    prints = [d.get("fingerprint") for d in runs]
    if not any(prints):
        return None
    if not all(prints):
        raise UsageError(
            f"{key!r}: some runs have a fingerprint and some do not (a baseline measured before fingerprints: "
            "`bench fingerprint RECIPE --record` adds it); give runs of one code version, or --replace"
        )
    for other, doc in zip(prints[1:], runs[1:]):
        found, _ = fingerprint.changes_and_notes(fingerprint.differences(prints[0], other))
        if found:
            first = next(iter(found.items()))
            raise UsageError(
                f"{key!r}: seed {doc.get('seed')} was produced by a different {first[0]} "
                f"({', '.join(first[1])}) than seed {runs[0].get('seed')}; one baseline needs one recipe, model and data "
                "(--replace starts the entry over)"
            )
    return max(prints, key=lambda fp: -len(fingerprint.missing(fp)))  # the first of the fullest


def reported_documents() -> list[dict]:
    """The articles' accuracies as ``bench.reported`` documents (one per recipe with a ``reported``
    figure), for ``baselines update`` to store as the initial full-budget entries."""
    from bench.training import recipes

    docs = []
    for r in recipes.RECIPES.values():
        if r.reported:
            docs.append(
                {
                    "kind": "bench.reported",
                    "recipe": r.name,
                    "dataset": r.dataset,
                    "budget": str(r.full()),
                    METRIC: r.reported["top1"],
                    "tolerance": r.tolerance,
                    "provenance": f"reported, not measured: {r.reported['provenance']}",
                }
            )
    return docs
