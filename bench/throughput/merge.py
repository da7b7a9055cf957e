"""Several throughput result documents joined into one that ``compare``, ``report`` and ``baselines`` read as one run.

``join`` is the one way two results become one: their benchmarks and errors in order, the first's
top-level fields, each part's ``machine_info`` and ``harness`` kept under its name, and ``partial``
when any part is partial (an interrupted run or a killed process marks its file so). Two callers:
``bench.throughput.fanout`` joins the backends of one run (one process each), and ``shards`` joins
the shards of one plan (``python -m bench throughput --shard i/N`` on N runners; ``python -m bench
merge``).

``shards`` checks every file before it joins anything, and refuses, in one line naming the files:
a file that is no throughput result or no shard (run without ``--shard``, or already merged);
shards of different plans (other options or cases: the line says which option differs), of
different commits or of different versions of the software measured (Python, Keras, the backend
and its CUDA and cuDNN builds, as far as both files record them); a shard given twice; a case
recorded twice (in two shards, or twice in one), outside the plan or outside its shard's cases;
missing shards (it names their indexes) and cases of a shard with neither a benchmark nor an error
entry, unless ``allow_partial``, and then the merged file is marked partial and lists them under
``harness.shard.missing`` and ``harness.shard.missing_cases``. A merged file's ``harness.shard``
has no ``index``: ``merged``, the shard indexes it holds, ``count``, the plan's digest and case ids.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from bench.errors import UsageError
from bench.throughput import shard as sharding
from bench.throughput.workload import result_id


def is_partial(doc: dict) -> bool:
    return bool(doc.get("partial") or (doc.get("harness") or {}).get("partial"))


def join(docs: Sequence[dict], names: Sequence[str], section: str) -> dict:
    """One document from ``docs`` (parts of one run, named ``names``): the first's fields, every
    part's benchmarks and errors in order, each part's ``machine_info`` and ``harness`` under
    ``section`` by name, and ``partial`` (top level and harness) when any part is partial."""
    first = docs[0]
    merged = {k: v for k, v in first.items() if k not in ("benchmarks", "errors", "machine_info", "harness", "partial")}
    merged["machine_info"] = {
        **(first.get("machine_info") or {}),
        section: {n: d.get("machine_info") or {} for n, d in zip(names, docs)},
    }
    merged["harness"] = {
        **{k: v for k, v in first["harness"].items() if k != "partial"},
        section: {n: d["harness"] for n, d in zip(names, docs)},
    }
    merged["benchmarks"] = [b for d in docs for b in d.get("benchmarks") or []]
    merged["errors"] = [e for d in docs for e in d.get("errors") or []]
    if any(is_partial(d) for d in docs):
        merged["partial"] = merged["harness"]["partial"] = True
    return merged


def shards(paths: Sequence[str | os.PathLike], *, allow_partial: bool = False) -> dict:
    """The shard results in ``paths``, checked against each other, joined in plan order."""
    from bench.regression.throughput import load_result

    if not paths:
        raise UsageError("merge needs the shard result files (python -m bench throughput --shard i/N writes one each)")
    found: dict[int, tuple[str, dict]] = {}
    first_path, first = None, None
    for path in map(str, paths):
        doc = load_result(path)
        record = _shard_record(path, doc)
        if first is None:
            first_path, first = path, doc
        else:
            _same_plan(first_path, first, path, doc)
        if record["index"] in found:
            raise UsageError(
                f"shard {record['index']}/{record['count']} is given twice: {found[record['index']][0]!r} and {path!r}"
            )
        found[record["index"]] = (path, doc)
    _same_versions(found)
    plan = first["harness"]["shard"]
    missing = [i for i in range(1, plan["count"] + 1) if i not in found]
    if missing and not allow_partial:
        raise UsageError(
            f"{_indexes(missing)} of {plan['count']} {'is' if len(missing) == 1 else 'are'} missing "
            f"(plan {plan['plan']}); give every shard's result file, or --allow-partial to merge these"
        )
    _disjoint(found)
    recorded = _recorded(found)
    unmeasured = {path: [c for c in _cases(doc) if c not in recorded] for _, (path, doc) in sorted(found.items())}
    if any(unmeasured.values()) and not allow_partial:
        named = " and ".join(
            f"{'case' if len(ids) == 1 else 'cases'} {', '.join(ids)} of {path!r}"
            for path, ids in unmeasured.items()
            if ids
        )
        raise UsageError(
            f"no result (neither a benchmark nor an error entry) for {named} (plan {plan['plan']}); "
            f"give every case's result (rerun the shard), or --allow-partial to merge without them"
        )
    missing_cases = [c for c in plan["plan_cases"] if c not in recorded]
    return _merged([found[i][1] for i in sorted(found)], missing, missing_cases)


def _shard_record(path: str, doc: dict) -> dict:
    """``harness.shard`` of a shard's result (its fields typed by ``bench.results``), consistent with itself."""
    record = doc["harness"].get("shard")
    if record is None:
        raise UsageError(f"{path!r} is not a shard's result (no harness.shard: it was run without --shard i/N)")
    if record.get("index") is None:
        raise UsageError(
            f"{path!r} is already a merged result (shards {record.get('merged')}), not one shard's; merge the shard files"
        )
    if not 1 <= record["index"] <= record["count"]:
        raise UsageError(f"{path!r}: harness.shard index {record['index']} is outside 1..{record['count']}")
    identity = {**_options(doc), "cases": record["plan_cases"]}
    if sharding.digest(identity) != record["plan"]:
        raise UsageError(
            f"{path!r}: harness.shard.plan {record['plan']} does not match its options and cases "
            f"({sharding.digest(identity)}); was the file edited?"
        )
    return record


def _options(doc: dict) -> dict:
    """The options that decide what a shard measures (``ThroughputPlan.identity`` without its cases)."""
    options = doc["harness"].get("options") or {}
    return {k: v for k, v in options.items() if k not in (*sharding.RUNNER_OPTIONS, "cases")}


def _same_plan(first_path: str, first: dict, path: str, doc: dict) -> None:
    a, b = first["harness"]["shard"], doc["harness"]["shard"]
    if a["plan"] != b["plan"] or a["count"] != b["count"]:
        oa, ob = _options(first), _options(doc)
        differ = [
            f"{k} {oa.get(k)!r} vs {ob.get(k)!r}" for k in sorted(oa.keys() | ob.keys()) if oa.get(k) != ob.get(k)
        ]
        if differ:
            why = "options differ: " + ", ".join(differ)
        elif a["plan_cases"] != b["plan_cases"]:
            why = "their case lists differ"
        else:
            why = f"split into {a['count']} and {b['count']} shards"
        raise UsageError(
            f"shards of different plans: {first_path!r} (plan {a['plan']}, {a['index']}/{a['count']}) and "
            f"{path!r} (plan {b['plan']}, {b['index']}/{b['count']}): {why}"
        )
    ca, cb = _commit(first), _commit(doc)
    if ca != cb:
        raise UsageError(f"shards of different commits: {first_path!r} at {ca} and {path!r} at {cb}")


def _commit(doc: dict) -> str | None:
    return (doc.get("commit_info") or {}).get("id")


# What a shard ran, compared between shards: a sweep measures one configuration of the software
# (Python by its minor version).
# The backend packages record their own versions; CUDA and cuDNN are each backend's own build (a
# tensorflow shard's and a torch shard's of one ``--backend tensorflow,torch`` plan may differ).
PYTHON_AND_KERAS = {"python_version": "python", "keras": "keras"}
PACKAGES = ("tensorflow", "jax", "jaxlib", "torch", "numpy")
BUILDS = ("cuda_version", "cudnn_version")


def _versions(doc: dict) -> dict[tuple[str, str], object]:
    """``{(package, where recorded): version}`` of one result: Python, Keras and every backend's
    packages and builds from ``machine_info`` and ``harness.versions`` (each backend's, in a
    file of several); a version recorded as None is not known and not compared."""
    out: dict[tuple[str, str], object] = {}

    def add(section: dict, backend: str | None, where: str, names: dict) -> None:
        for key, value in section.items():
            if value is None or isinstance(value, (dict, list)):
                continue
            if key in names:  # Python by its minor version: runners' patch releases differ and do not matter here
                out[(names[key], where)] = ".".join(str(value).split(".")[:2]) if names[key] == "python" else value
            elif key in PACKAGES:
                out[(key, where)] = value
            elif key in BUILDS:
                out[(f"{backend} {key}", where)] = value

    info, harness = doc.get("machine_info") or {}, doc["harness"]
    machines = info["backends"].items() if isinstance(info.get("backends"), dict) else [(info.get("backend"), info)]
    for backend, section in machines:
        add(section or {}, backend, "machine_info", PYTHON_AND_KERAS)
    runs = (
        harness["backends"].items()
        if isinstance(harness.get("backends"), dict)
        else [(harness.get("backend"), harness)]
    )
    for backend, section in runs:
        add((section or {}).get("versions") or {}, backend, "harness.versions", {})
    return out


def _same_versions(found: dict[int, tuple[str, dict]]) -> None:
    """Every package recorded by more than one shard at one version (CPU models may differ: each
    benchmark keeps its device class)."""
    each = [(path, _versions(doc)) for _, (path, doc) in sorted(found.items())]
    for key in dict.fromkeys(k for _, versions in each for k in versions):
        seen: dict[str, list[str]] = {}
        for path, versions in each:
            if key in versions:
                seen.setdefault(str(versions[key]), []).append(repr(path))
        if len(seen) > 1:
            package, where = key
            shown = ", ".join(f"{version} in {' and '.join(paths)}" for version, paths in seen.items())
            raise UsageError(
                f"shards ran different versions of {package} ({where}): {shown}; "
                f"a sweep is one configuration: run every shard with the same versions"
            )


def _disjoint(found: dict[int, tuple[str, dict]]) -> None:
    """No case in two shards (the split gives each case to one; a file that says otherwise is refused)."""
    owner: dict[str, str] = {}
    for _, (path, doc) in sorted(found.items()):
        for cid in _cases(doc):
            if cid in owner:
                raise UsageError(f"case {cid} is in two shards: {owner[cid]!r} and {path!r}")
            owner[cid] = path


def _cases(doc: dict) -> list[str]:
    """The cases a shard was given (its share of the plan)."""
    return (doc["harness"].get("options") or {}).get("cases") or []


def case_id(record: dict) -> str | None:
    """The case id of a benchmark (by its ``extra_info``) or of an ``errors`` entry, as the plan lists it."""
    return result_id(record.get("extra_info") or record, record.get("param") or record.get("name"))


def _recorded(found: dict[int, tuple[str, dict]]) -> dict[str, str]:
    """``{case id: shard file}`` of every case with a result (a benchmark, or an error entry: an
    out-of-memory case may have both, a crashed one only the entry), each result checked to be one
    of its shard's cases and in no other shard."""
    owner: dict[str, str] = {}
    for _, (path, doc) in sorted(found.items()):
        mine: set[str] = set()
        for kind in ("benchmarks", "errors"):  # each case once in each: bench.results.check_throughput
            mine.update(case_id(r) for r in doc.get(kind) or [])
        for cid in sorted(mine, key=str):
            if cid in owner:
                raise UsageError(f"case {cid} is in two shards: {owner[cid]!r} and {path!r}")
            owner[cid] = path
    for _, (path, doc) in sorted(found.items()):
        record, own = doc["harness"]["shard"], _cases(doc)
        for cid in (c for c, p in owner.items() if p == path):
            if cid not in record["plan_cases"]:
                raise UsageError(
                    f"{path!r} has a result for case {cid}, which is not in the plan (plan {record['plan']}: "
                    f"{', '.join(record['plan_cases'])})"
                )
            if cid not in own:
                raise UsageError(
                    f"{path!r} has a result for case {cid}, which is not one of shard {record['index']}/"
                    f"{record['count']}'s cases ({', '.join(own) or 'none'}); was the file edited?"
                )
    return owner


def _merged(docs: list[dict], missing: list[int], missing_cases: list[str]) -> dict:
    """``join`` of the shards (in index order), in plan order, with the merged file's shard record:
    its options' cases are those with a result, ``missing_cases`` the plan's others."""
    records = [d["harness"]["shard"] for d in docs]
    plan_cases = records[0]["plan_cases"]
    merged = join(docs, [str(r["index"]) for r in records], "shards")
    position = {cid: k for k, cid in enumerate(plan_cases)}

    def order(record: dict) -> int:
        return position.get(case_id(record), len(position))

    merged["benchmarks"].sort(key=order)
    merged["errors"].sort(key=order)
    merged["harness"]["options"] = {
        **merged["harness"].get("options", {}),
        "cases": [c for c in plan_cases if c not in missing_cases],
    }
    merged["harness"]["shard"] = {
        "count": records[0]["count"],
        "plan": records[0]["plan"],
        "plan_cases": plan_cases,
        "merged": [r["index"] for r in records],
        "missing": missing,
        "missing_cases": missing_cases,
        "cost": sum(r.get("cost") or 0 for r in records),
        "plan_cost": records[0].get("plan_cost"),
    }
    classes = sorted({d["harness"].get("device_class") for d in docs if d["harness"].get("device_class")})
    if len(classes) > 1:  # runners of other CPUs: each benchmark keeps its own device class
        merged["harness"]["device_classes"] = classes
    for part in ("machine_info", "harness"):
        _backends(merged[part], [d.get(part) or {} for d in docs])
    if any((d.get("commit_info") or {}).get("dirty") for d in docs):
        merged["commit_info"] = {**merged.get("commit_info", {}), "dirty": True}
    if missing or missing_cases:
        merged["partial"] = merged["harness"]["partial"] = True
    return merged


def _backends(merged: dict, parts: list[dict]) -> None:
    """The backends the shards ran, together: a shard of a ``--backend a,b`` plan may have run one."""
    from bench.backends import BACKENDS

    each: dict[str, dict] = {}
    for part in parts:
        if isinstance(part.get("backends"), dict):
            each.update(part["backends"])
        elif part.get("backend"):
            each.setdefault(part["backend"], part)
    if len(each) > 1:
        names = sorted(each, key=lambda n: BACKENDS.index(n) if n in BACKENDS else len(BACKENDS))
        merged["backend"] = ",".join(names)
        merged["backends"] = {n: each[n] for n in names}


def _indexes(indexes: list[int]) -> str:
    return f"shard{'s' if len(indexes) > 1 else ''} {', '.join(map(str, indexes))}"
