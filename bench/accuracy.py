"""``python -m bench gate RESULTS...``: the accuracy gate against baselines.json's ``accuracy`` section.

Each training result (``bench.train``) is keyed by recipe, dataset, budget and device class,
``"smoke_resnet20_cifar10_jpeg|cifar10_jpeg|epochs=3|cpu"``, and judged with ``bench.gate`` on
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

import argparse
import datetime
import math
import statistics
import sys
from pathlib import Path

from bench import baselines
from bench.errors import BaselinesError, UsageError
from bench.gate import Finding, Rule, Verdict, exit_code, format_table, judge
from bench.io import finite_or_none, read_json, write_json

SECTION = "accuracy"
METRIC = "top1"
RESULT_KINDS = ("bench.train", "bench.reported")
ANY_DEVICE = "*"
# A measured baseline's tolerance: the two-sided prediction interval for one new, unchanged run
# (bench.stats.prediction_halfwidth), at this false-alarm rate for one neutral change.
FALSE_ALARM = 0.001


# ---------------------------------------------------------------------------------------------
# Keys and entries


def is_result(doc) -> bool:
    """A training result (``bench.train``) or a reported figure with provenance (``bench.reported``)."""
    return isinstance(doc, dict) and doc.get("kind") in RESULT_KINDS


def device_key(doc: dict) -> str:
    """The device part of a result's key: the kind for work budgets, the full class for time budgets."""
    if doc.get("kind") == "bench.reported":
        return ANY_DEVICE
    if str(doc.get("budget", "")).startswith("minutes="):
        return str(doc.get("device_class") or doc.get("device"))
    return str(doc.get("device"))


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
    expected_key = "|".join((entry["recipe"], entry["dataset"], entry["budget"], entry["device"]))
    if key != expected_key:
        bad(f"does not match its fields (they give {expected_key!r})")
    if entry.get("metric", METRIC) != METRIC:
        bad(f"has metric {entry.get('metric')!r}; the accuracy gate compares {METRIC!r}")
    mean = entry.get("mean")
    if not _finite(mean) or not 0.0 <= mean <= 100.0:
        bad(f"has mean {mean!r}; expected a top-1 percentage in [0, 100]")
    n = entry.get("n")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        bad(f"has n {n!r}; expected a positive count of runs")
    std = entry.get("std")
    if n >= 2 and (not _finite(std) or std < 0):
        bad(f"has std {std!r}; expected a non-negative number for n={n}")
    if n == 1 and std is not None and (not _finite(std) or std < 0):
        bad(f"has std {std!r}; expected null or a non-negative number")
    try:
        rule = Rule.parse(str(entry.get("tolerance")))
    except UsageError as e:
        bad(f"has an invalid tolerance: {e}")
    if rule.metric != METRIC or rule.unit != "pt" or not rule.higher_is_better:
        bad(f"has tolerance {entry.get('tolerance')!r}; expected 'top1:-Npt'")
    if not isinstance(entry.get("measured"), bool):
        bad("needs 'measured': true (from runs) or false (a reported figure)")
    return entry


def load_entries(path: str | Path) -> dict:
    """The validated accuracy section of ``path``."""
    entries = baselines.section(path, SECTION)
    for key, entry in entries.items():
        validate_entry(key, entry, where=str(path))
    return entries


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


# ---------------------------------------------------------------------------------------------
# The gate


def judge_result(doc: dict, entries: dict, *, source: str = "") -> Finding:
    """One finding for one training result."""
    key = key_of(doc)
    matched, entry = lookup(entries, key)
    rule = Rule.parse(entry["tolerance"]) if entry else Rule.parse(f"{METRIC}:-0pt")
    current = doc.get(METRIC)
    notes = []
    if doc.get("modified"):
        notes.append(f"modified recipe ({', '.join(doc['modified'])})")
    error = None
    if doc.get("kind") != "bench.train":
        error = f"{source or 'file'} is a {doc.get('kind')}, not a training result"
    elif doc.get("status") != "ok":
        error = f"run failed: {doc.get('error') or doc.get('status')}"
    elif finite_or_none(current) is None:
        error = f"{METRIC} is {current!r}, not a finite number"
    else:
        expected = _test_split_size(doc.get("dataset"))
        if expected is not None and doc.get("test_examples") != expected:
            error = f"evaluated on {doc.get('test_examples')} of the {expected} test images; the gate needs the whole split"
    if entry and not error:
        std, n = entry.get("std"), entry["n"]
        if _finite(std) and std > 0 and n >= 2:
            notes.append(f"z {(current - entry['mean']) / std:+.1f} vs {n} seeds (std {std:.2f}pt)")
        else:
            notes.append(f"n={n}")
        if not entry["measured"]:
            notes.append("reported baseline: " + entry["provenance"][:60])
        if matched != key:
            notes.append(f"matched {matched}")
    return judge(key, rule, finite_or_none(current), entry["mean"] if entry else None, error=error, note="; ".join(notes))


def _test_split_size(dataset) -> int | None:
    from bench.data import DATASETS

    return DATASETS[dataset].splits["test"] if dataset in DATASETS else None  # mock sets: whatever was mocked


def collect(paths: list[str]) -> list[tuple[str, dict | None, str | None]]:
    """(path, document or None, error) for every result file named or found in a named directory."""
    found: list[tuple[str, dict | None, str | None]] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            files = sorted(f for f in path.glob("*.json") if not f.name.startswith("."))
            explicit = False
        elif path.exists():
            files, explicit = [path], True
        else:
            raise UsageError(f"result path {p!r} does not exist")
        for f in files:
            try:
                doc = read_json(f, what="result file")
            except UsageError as e:
                found.append((str(f), None, str(e)))
                continue
            if is_result(doc) and doc.get("kind") == "bench.train":
                found.append((str(f), doc, None))
            elif explicit:
                found.append((str(f), None, f"{str(f)!r} is not a training result (kind {doc.get('kind') if isinstance(doc, dict) else type(doc).__name__!r})"))
    return found


def gate(paths: list[str], baselines_path: str | Path) -> list[Finding]:
    entries = load_entries(baselines_path)
    findings = []
    for path, doc, error in collect(paths):
        if doc is None:
            findings.append(Finding(key=Path(path).name, metric=METRIC, verdict=Verdict.ERROR, reason=error or "unreadable"))
        else:
            findings.append(judge_result(doc, entries, source=path))
    return findings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", nargs="+", help="training result JSON files or directories holding them")
    parser.add_argument("--baselines", default=str(baselines.DEFAULT_PATH), help="baselines file (default: %(default)s)")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the findings as JSON")


def run(args: argparse.Namespace) -> int:
    findings = gate(args.results, args.baselines)
    if not findings:
        print(f"gate: no training results found in {' '.join(args.results)}: FAIL")
        return 1
    print(format_table(findings))
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.verdict.value] = counts.get(f.verdict.value, 0) + 1
    code = exit_code(findings)
    print(f"gate: {', '.join(f'{n} {v}' for v, n in sorted(counts.items()))}: {'FAIL' if code else 'PASS'}")
    if args.json:
        write_json(args.json, {"findings": [f.to_dict() for f in findings], "exit_code": code})
    return code


# ---------------------------------------------------------------------------------------------
# Baselines from results (``python -m bench baselines update``)


def baseline_entries(docs: list[tuple[str, dict]], args) -> dict[str, dict]:
    """Aggregate results into entries, one per key: mean, sample std and count over seeds, and a
    tolerance from the prediction interval at ``FALSE_ALARM`` (``--tolerance`` overrides; fewer
    than 3 seeds: the recipe's). Seeds the recipe was designed on are refused."""
    from bench import recipes, stats
    from bench.environment import describe

    groups: dict[str, list[tuple[str, dict]]] = {}
    for path, doc in docs:
        if doc.get("kind") == "bench.train":
            if doc.get("status") != "ok" or finite_or_none(doc.get(METRIC)) is None:
                raise UsageError(f"{path!r} is a failed run ({doc.get('error') or doc.get('status')}); it cannot be a baseline")
            if doc.get("modified"):
                raise UsageError(f"{path!r} ran a modified recipe ({', '.join(doc['modified'])}); baselines come from unmodified recipes")
            expected = _test_split_size(doc.get("dataset"))
            if expected is not None and doc.get("test_examples") != expected:
                raise UsageError(f"{path!r} evaluated {doc.get('test_examples')} of {expected} test images; baselines need the whole split")
        groups.setdefault(key_of(doc), []).append((path, doc))
    tolerance = None
    if getattr(args, "tolerance", None):
        rule = Rule.parse(args.tolerance)
        if rule.metric != METRIC or rule.unit != "pt" or not rule.higher_is_better:
            raise UsageError(f"--tolerance {args.tolerance!r} is invalid for accuracy; expected 'top1:-Npt'")
        tolerance = str(rule)
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    entries = {}
    for key, group in groups.items():
        first = group[0][1]
        if first.get("kind") == "bench.reported":
            if len(group) > 1:
                raise UsageError(f"{len(group)} reported figures for {key!r}; give one")
            entries[key] = validate_entry(key, {
                "recipe": first["recipe"], "dataset": first["dataset"], "budget": first["budget"], "device": ANY_DEVICE,
                "metric": METRIC, "mean": float(first[METRIC]), "std": None, "n": 1, "samples": {},
                "tolerance": tolerance or first["tolerance"], "measured": False,
                "provenance": getattr(args, "provenance", None) or first["provenance"], "updated": now,
            }, where="update")
            continue
        if any(d.get("kind") != "bench.train" for _, d in group):
            raise UsageError(f"{key!r}: do not mix reported figures with measured results")
        seeds = [d.get("seed") for _, d in group]
        if len(set(seeds)) != len(seeds):
            raise UsageError(f"{key!r}: seed(s) {sorted({s for s in seeds if seeds.count(s) > 1})} given twice; each seed once")
        recipe = recipes.RECIPES.get(first["recipe"])
        design = sorted(set(seeds) & set(recipe.design_seeds if recipe else ()))
        if design:
            raise UsageError(f"{key!r}: seed(s) {design} were used to design {first['recipe']} (design seeds "
                             f"{list(recipe.design_seeds)}); a baseline needs seeds the recipe was not tuned on")
        values = [float(d[METRIC]) for _, d in group]
        n = len(values)
        std = statistics.stdev(values) if n >= 2 else None
        interval = stats.prediction_halfwidth(values, FALSE_ALARM) if n >= 3 else None
        if tolerance:
            tol = tolerance
        elif interval is not None:
            tol = f"{METRIC}:-{math.ceil(interval['halfwidth'] * 100) / 100:g}pt"
        else:
            try:
                tol = recipes.get(first["recipe"]).tolerance
            except UsageError:
                tol = f"{METRIC}:-1pt"
            print(f"warning: {key}: only {n} run(s); tolerance {tol} from the recipe, not from the seeds' spread", file=sys.stderr)
        machine = first.get("machine_info") or {}
        provenance = getattr(args, "provenance", None) or (
            f"measured: {n} seed(s) {sorted(seeds)} with bench train, {describe(machine) if machine else 'unknown machine'}")
        entries[key] = validate_entry(key, {
            "recipe": first["recipe"], "dataset": first["dataset"], "budget": first["budget"], "device": device_key(first),
            "metric": METRIC, "mean": round(statistics.fmean(values), 4), "std": None if std is None else round(std, 4),
            "n": n, "samples": {str(s): round(v, 4) for s, v in sorted(zip(seeds, values))},
            "wall_time_s": {str(s): d.get("wall_time_s") for s, (_, d) in sorted(zip(seeds, group))},
            "tolerance": tol, "measured": True, "provenance": provenance,
            "tolerance_method": None if interval is None or tolerance else (
                f"two-sided {100 * (1 - FALSE_ALARM):g}% prediction interval for one new seed: "
                f"t({1 - FALSE_ALARM / 2:g}, {n - 1}) = {interval['t']:.2f} x std x sqrt(1 + 1/{n})"),
            "shapiro_p": None if interval is None or interval["shapiro_p"] is None else round(interval["shapiro_p"], 4),
            "design_seeds": list(recipe.design_seeds) if recipe else [],
            "environment": describe(machine) if machine else None,
            "commit": (first.get("commit_info") or {}).get("id"), "updated": now,
        }, where="update")
    return entries


def reported_documents() -> list[dict]:
    """The articles' accuracies as ``bench.reported`` documents (one per recipe with a ``reported``
    figure), for ``baselines update`` to store as the initial full-budget entries."""
    from bench import recipes

    docs = []
    for r in recipes.RECIPES.values():
        if r.reported:
            docs.append({"kind": "bench.reported", "recipe": r.name, "dataset": r.dataset, "budget": str(r.full()),
                         METRIC: r.reported["top1"], "tolerance": r.tolerance,
                         "provenance": f"reported, not measured: {r.reported['provenance']}"})
    return docs


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.accuracy reported DIR``: write the articles' figures as provenance JSONs."""
    parser = argparse.ArgumentParser(prog="python -m bench.accuracy")
    parser.add_argument("action", choices=["reported"])
    parser.add_argument("out", help="directory to write one JSON per recipe into")
    args = parser.parse_args(argv)
    for doc in reported_documents():
        path = write_json(Path(args.out) / f"reported-{doc['recipe']}.json", doc)
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
