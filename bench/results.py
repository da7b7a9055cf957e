"""Result files, read and checked against their schema in one place.

Two kinds: a training result (``"kind": "bench.train"``, written by ``bench.training.loop``) and a
throughput result (pytest-benchmark JSON with a ``"harness": {"kind": "throughput"}`` section,
written by ``bench/throughput/suite``); and a figure reported elsewhere (``"kind": "bench.reported"``),
which ``baselines update`` stores. ``read`` loads a file (``bench.io.read_json``: missing,
unreadable, non-UTF-8 or invalid JSON) and checks a document of either kind field by field, so
that ``gate``, ``compare``, ``report`` and ``baselines update`` meet a wrongly typed, wrongly
shaped or impossible field (a top-1 of 1e9, a string where a number goes) as one ``UsageError``
naming the file and the field, never as a traceback deep inside. Other JSON is returned as it is,
for the caller to say what it expected.
"""

from __future__ import annotations

import base64
import math
import os
from collections import Counter
from typing import Any

from bench.errors import UsageError
from bench.io import read_json

TRAIN_KIND = "bench.train"
REPORTED_KIND = "bench.reported"
# the schemas this harness writes and reads. Training: 1 until 2026-12-07 (fingerprints from
# 2026-11-24, ``bench.regression.accuracy.FINGERPRINTS_SINCE``, but not required); 2: every result
# has one. Throughput: 1. A result of a later schema was written by a newer harness: refused, never
# read as if it were this one's.
TRAINING_SCHEMA = 2
THROUGHPUT_SCHEMA = 1
STATUSES = ("ok", "failed")
# why training stopped (``bench.training.callbacks.Trainer``): its budget, or a loss that is not a number
STOPPED_BY = ("budget", "steps", "deadline", NON_FINITE_STOP := "non-finite loss")
PERCENT = (0.0, 100.0)
# impossible values, whatever the types: a cross-entropy is above 0; counts are never negative (and an
# ok run ran a step); a run's times and rate are above 0, the times inside it never below
LOSSES = ("loss", "loss_no_tta")
COUNTS = ("epochs_run", "steps_run", "resumed_from_epoch", "processes", "test_examples")
POSITIVE = ("wall_time_s", "images_per_s")
NON_NEGATIVE = ("train_time_s", "first_step_s", "wall_time_s_this_process")

_NUMBER = "a number"
_TEXT = "a string"


def is_training(doc: Any) -> bool:
    return isinstance(doc, dict) and doc.get("kind") == TRAIN_KIND


def is_reported(doc: Any) -> bool:
    """A figure reported elsewhere (an article's), with its provenance: ``baselines update`` stores it."""
    return isinstance(doc, dict) and doc.get("kind") == REPORTED_KIND


def is_throughput(doc: Any) -> bool:
    """pytest-benchmark JSON written by bench/throughput/suite (its ``harness`` section says so)."""
    return (
        isinstance(doc, dict)
        and isinstance(doc.get("benchmarks"), list)
        and isinstance(doc.get("harness"), dict)
        and doc["harness"].get("kind") == "throughput"
    )


def read(path: str | os.PathLike, *, what: str = "result file") -> Any:
    """The JSON in ``path``, checked if it is a result of either kind; any problem is one line."""
    doc = read_json(path, what=what)
    if is_training(doc):
        check_training(doc, f"{what} {str(path)!r}")
    elif is_reported(doc):
        check_reported(doc, f"{what} {str(path)!r}")
    elif is_throughput(doc):
        check_throughput(doc, f"{what} {str(path)!r}")
    return doc


# ---------------------------------------------------------------------------------------------
# The schemas: field -> (what it must be, whether it may be missing or null)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_text(v) -> bool:
    return isinstance(v, str) and bool(v)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


_CHECKS = {
    _NUMBER: _is_number,
    _TEXT: _is_text,
    "a whole number": _is_int,
    "an object": lambda v: isinstance(v, dict),
    "a list": lambda v: isinstance(v, list),
    "a list of strings": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    "a list of numbers": lambda v: isinstance(v, list) and all(_is_number(x) for x in v),
    "true or false": lambda v: isinstance(v, bool),
}

# required fields are never null; optional ones may be missing or null
TRAINING = {
    "recipe": (_TEXT, True),
    "dataset": (_TEXT, True),
    "budget": (_TEXT, True),
    "device": (_TEXT, True),
    "schema": ("a whole number", False),
    "seed": ("a whole number", True),
    "status": (_TEXT, True),
    "error": (_TEXT, False),
    "backend": (_TEXT, False),
    "device_class": (_TEXT, False),
    "top1": (_NUMBER, False),
    "loss": (_NUMBER, False),
    "top1_no_tta": (_NUMBER, False),
    "loss_no_tta": (_NUMBER, False),
    "test_examples": ("a whole number", False),
    "modified": ("a list of strings", False),
    "curve": ("a list", False),
    "epochs_run": ("a whole number", False),
    "steps_run": ("a whole number", False),
    "resumed_from_epoch": ("a whole number", False),
    "processes": ("a whole number", False),
    "stopped_by": (_TEXT, False),
    "wall_time_s": (_NUMBER, False),
    "train_time_s": (_NUMBER, False),
    "images_per_s": (_NUMBER, False),
    "first_step_s": (_NUMBER, False),
    "wall_time_s_this_process": (_NUMBER, False),
    "config": ("an object", False),
    "machine_info": ("an object", False),
    "commit_info": ("an object", False),
    "fingerprint": ("an object", False),
}
# a figure reported elsewhere (``bench.regression.accuracy.reported_documents`` writes them)
REPORTED = {
    "recipe": (_TEXT, True),
    "dataset": (_TEXT, True),
    "budget": (_TEXT, True),
    "top1": (_NUMBER, True),
    "provenance": (_TEXT, True),
    "tolerance": (_TEXT, False),
}
BENCHMARK = {"name": (_TEXT, True), "params": ("an object", False), "extra_info": ("an object", False)}
EXTRA_INFO = {
    "images_per_s": ("an object", False),
    "error": (_TEXT, False),
    "noisy": ("true or false", False),
    "cv": (_NUMBER, False),
    "rounds": ("a whole number", False),
    "device_class": (_TEXT, False),
    "case": ("an object", False),
    "utilization": (_NUMBER, False),
    "loadavg_start": ("a list of numbers", False),
}
# a recorded case (``bench.throughput.workload.Case.to_dict``; ``xla`` for ``compile`` before the backend axis)
CASE = {
    "model": (_TEXT, False),
    "mode": (_TEXT, False),
    "batch_size": ("a whole number", False),
    "precision": (_TEXT, False),
    "compile": (_TEXT, False),
    "xla": (_TEXT, False),
    "data": (_TEXT, False),
    "backend": (_TEXT, False),
}
IMAGES_PER_S = {"median": (_NUMBER, False), "samples": ("a list of numbers", False)}
THROUGHPUT = {
    "benchmarks": ("a list", True),
    "harness": ("an object", True),
    "errors": ("a list", False),
    "machine_info": ("an object", False),
    "commit_info": ("an object", False),
    "datetime": (_TEXT, False),
}
ERROR = {
    "error": (_TEXT, False),
    "id": (_TEXT, False),
    "name": (_TEXT, False),
    "device_class": (_TEXT, False),
    "case": ("an object", False),
}
HARNESS = {
    "schema": ("a whole number", False),
    "device_class": (_TEXT, False),
    "options": ("an object", False),
    "shard": ("an object", False),
    "versions": ("an object", False),
    "backends": ("an object", False),
}
# harness.options (the run's resolved options): the cases it planned, which compare holds it to
OPTIONS = {"cases": ("a list of strings", False)}
# machine_info and harness of a multi-backend run: each backend's own section (``backends``), with its versions
MACHINE_INFO = {"backends": ("an object", False)}
BACKEND_SECTION = {"versions": ("an object", False)}
# harness.shard (--shard i/N; bench.throughput.shard): a shard's index, or none in a merged file
SHARD = {
    "index": ("a whole number", False),
    "count": ("a whole number", True),
    "plan": (_TEXT, True),
    "plan_cases": ("a list of strings", True),
    "cost": (_NUMBER, False),
    "plan_cost": (_NUMBER, False),
}


def _fields(doc: Any, schema: dict, where: str) -> dict:
    if not isinstance(doc, dict):
        raise UsageError(f"{where} must be an object, not {type(doc).__name__}")
    for field, (kind, required) in schema.items():
        value = doc.get(field)
        if value is None and not required:
            continue
        if not _CHECKS[kind](value):
            shown = "missing" if field not in doc else f"{value!r}"[:60]
            raise UsageError(f"{where}: field {field!r} is {shown}; expected {kind}")
    return doc


def _schema(doc: dict, newest: int, where: str) -> int:
    """``doc``'s schema (1 where it names none: the first results did not), one this harness reads."""
    schema = doc.get("schema")
    if schema is None:
        return 1
    if not 1 <= schema <= newest:
        known = "1" if newest == 1 else f"1 to {newest}"
        raise UsageError(
            f"{where}: field 'schema' is {schema}; this harness reads schema {known} (a newer one wrote it?)"
        )
    return schema


def check_training(doc: dict, where: str) -> dict:
    """A training result's fields: types, the status (an ok run has no error), percentages in
    [0, 100], losses above 0, counts and times that a run can have, and the fingerprint's shape.
    NaN is left to the gate, which names it (a failed run records what it saw)."""
    from bench import fingerprint

    _fields(doc, TRAINING, where)
    schema = _schema(doc, TRAINING_SCHEMA, where)
    if schema >= 2 and doc.get("fingerprint") is None:
        raise UsageError(f"{where}: has no fingerprint, which every result of schema {schema} records")
    ok = doc["status"] == "ok"
    if doc["status"] not in STATUSES:
        raise UsageError(f"{where}: field 'status' is {doc['status']!r}; expected one of {', '.join(STATUSES)}")
    if ok and doc.get("error") is not None:
        raise UsageError(f"{where}: field 'status' is 'ok' but field 'error' is {doc['error']!r}"[:200])
    for field in ("top1", "top1_no_tta"):
        value = doc.get(field)
        if value is not None and (not PERCENT[0] <= value <= PERCENT[1] if math.isfinite(value) else ok):
            raise UsageError(f"{where}: field {field!r} is {value!r}; a top-1 percentage lies in [0, 100]")
    stopped_by = doc.get("stopped_by")
    if stopped_by is not None and stopped_by not in STOPPED_BY:
        raise UsageError(f"{where}: field 'stopped_by' is {stopped_by!r}; expected one of {', '.join(STOPPED_BY)}")
    if ok and stopped_by == NON_FINITE_STOP:
        raise UsageError(f"{where}: field 'status' is 'ok' but training stopped on a {NON_FINITE_STOP}")
    for field in LOSSES:
        value = doc.get(field)
        if value is not None and (value <= 0 if math.isfinite(value) else ok):
            raise UsageError(f"{where}: field {field!r} is {value!r}; a cross-entropy is a finite number above 0")
    for field in COUNTS:
        value = doc.get(field)
        if value is not None and value < 0:
            raise UsageError(f"{where}: field {field!r} is {value!r}; a count is never negative")
    for field in ("steps_run", "epochs_run", "processes"):
        if ok and doc.get(field) == 0:
            raise UsageError(f"{where}: field {field!r} is 0 in an ok run; a finished run trained at least one step")
    for field in (*POSITIVE, *NON_NEGATIVE):
        value = doc.get(field)
        if value is not None and (not math.isfinite(value) or value < 0 or (field in POSITIVE and value == 0)):
            least = "above 0" if field in POSITIVE else "0 or more"
            raise UsageError(f"{where}: field {field!r} is {value!r}; expected a finite number {least}")
    if doc.get("fingerprint") is not None and (problem := fingerprint.shape_problem(doc["fingerprint"])):
        raise UsageError(f"{where}: field 'fingerprint' {problem}")
    return doc


def check_reported(doc: dict, where: str) -> dict:
    """A reported figure's fields: recipe, dataset, budget, provenance and a top-1 in [0, 100]
    (whether the recipe exists is ``baselines update``'s check, which knows the registry)."""
    _fields(doc, REPORTED, where)
    value = doc["top1"]
    if not math.isfinite(value) or not PERCENT[0] <= value <= PERCENT[1]:
        raise UsageError(f"{where}: field 'top1' is {value!r}; a top-1 percentage lies in [0, 100]")
    return doc


def check_throughput(doc: dict, where: str) -> dict:
    """A throughput result's fields: the harness section (and its shard), each benchmark, its
    extra_info, case (values the harness can run) and images/s (a median and rounds above 0,
    quartiles in order), each error, no case recorded twice
    among the benchmarks or among the errors, and no NaN or Inf anywhere (the harness writes none:
    ``bench.io.write_json`` cannot, so one is a corrupt file, and would stop any command that
    stores it)."""
    from bench.throughput.workload import result_id

    _fields(doc, THROUGHPUT, where)
    if (bad := non_finite(doc)) is not None:
        parent, field, value = bad
        raise UsageError(
            f"{where}{' ' + parent if parent else ''}: field {field!r} is {value!r}; expected a finite number"
        )
    _fields(doc["harness"], HARNESS, f"{where} harness")
    _schema(doc["harness"], THROUGHPUT_SCHEMA, f"{where} harness")
    _fields(doc["harness"].get("options") or {}, OPTIONS, f"{where} harness.options")
    if doc["harness"].get("shard") is not None:
        _fields(doc["harness"]["shard"], SHARD, f"{where} harness.shard")
    _fields(doc.get("machine_info") or {}, MACHINE_INFO, f"{where} machine_info")
    for part in ("machine_info", "harness"):
        for backend, section in ((doc.get(part) or {}).get("backends") or {}).items():
            _fields(section, BACKEND_SECTION, f"{where} {part}.backends.{backend}")
    for i, b in enumerate(doc["benchmarks"]):
        _fields(b, BENCHMARK, f"{where} benchmarks[{i}]")
        at = f"{where} benchmarks[{i}].extra_info"
        extra = _fields(b.get("extra_info") or {}, EXTRA_INFO, at)
        _check_case(extra.get("case") or {}, f"{at}.case")
        ips = _fields(extra.get("images_per_s") or {}, IMAGES_PER_S, f"{at}.images_per_s")
        _check_quartiles(ips, f"{at}.images_per_s")
        rates = [("median", ips.get("median")), *(("samples", v) for v in ips.get("samples") or [])]
        if (bad := next(((f, v) for f, v in rates if v is not None and v <= 0), None)) is not None:
            raise UsageError(f"{at}.images_per_s: field {bad[0]!r} holds {bad[1]!r}; images/s is a number above 0")
        rounds, cv = extra.get("rounds"), extra.get("cv")
        if rounds is not None and rounds < 1:
            raise UsageError(f"{at}: field 'rounds' is {rounds}; a measured case ran 1 or more")
        if cv is not None and cv < 0:
            raise UsageError(f"{at}: field 'cv' is {cv!r}; expected a finite number 0 or more")
    for i, e in enumerate(doc.get("errors") or []):
        _fields(e, ERROR, f"{where} errors[{i}]")
        _check_case(e.get("case") or {}, f"{where} errors[{i}].case")
    for kind in ("benchmarks", "errors"):
        records = doc.get(kind) or []
        ids = Counter(result_id(r.get("extra_info") or r, r.get("param") or r.get("name")) for r in records)
        twice = next((c for c, n in ids.items() if c is not None and n > 1), None)
        if twice is not None:
            raise UsageError(
                f"case {twice} is recorded twice in {where} ({ids[twice]} entries in {kind}); "
                "a run records each case once: was the file edited?"
            )
    return doc


def _check_case(case: dict, where: str) -> dict:
    """A recorded case's fields: their types, and values the harness can run (``bench.throughput.plan``'s
    axes and ``bench.backends``' backends, a batch above 0): any other was typed or edited by hand, and
    would be stored as a baseline key no run can ever match."""
    from bench.throughput import plan

    _fields(case, CASE, where)
    valid = {
        "mode": plan.MODES,
        "precision": tuple(plan.PRECISIONS),
        "compile": plan.COMPILE_MODES,
        "xla": plan.COMPILE_MODES,
        "data": plan.DATA,
        "backend": plan.backends.BACKENDS,
    }
    for field, values in valid.items():
        if case.get(field) is not None and case[field] not in values:
            raise UsageError(f"{where}: field {field!r} is {case[field]!r}; valid: {', '.join(values)}")
    if case.get("batch_size") is not None and case["batch_size"] < 1:
        raise UsageError(f"{where}: field 'batch_size' is {case['batch_size']}; a batch holds 1 image or more")
    return case


def _check_quartiles(ips: dict, where: str) -> None:
    """images/s's quartiles in order, q1 <= q3, and an IQR of 0 or more: percentiles of one set of
    rounds cannot be otherwise. (A median outside its own rounds is ``compare``'s finding for that
    benchmark: ``bench.regression.throughput``.)"""
    q1, q3, iqr = ips.get("q1"), ips.get("q3"), ips.get("iqr")
    if _is_number(q1) and _is_number(q3) and q1 > q3:
        raise UsageError(f"{where}: field 'q1' is {q1!r}, above field 'q3' {q3!r}; expected q1 <= q3")
    if _is_number(iqr) and iqr < 0:
        raise UsageError(f"{where}: field 'iqr' is {iqr!r}; an interquartile range is 0 or more")


def non_finite(value: Any, path: tuple = ()) -> tuple[str, str, float] | None:
    """The first NaN or Inf in ``value`` (any depth) as (where, field, value): ``benchmarks[0].extra_info``,
    ``cv`` (or ``loadavg_start[1]``), nan."""
    if isinstance(value, float) and not math.isfinite(value):
        named = max(i for i, k in enumerate(path) if isinstance(k, str))  # the field: its last name
        return _dotted(path[:named]), _dotted(path[named:]), value
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    return next((found for k, v in items if (found := non_finite(v, (*path, k))) is not None), None)


def _dotted(path: tuple) -> str:
    """``("benchmarks", 0, "extra_info")`` as ``benchmarks[0].extra_info``."""
    return "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path).removeprefix(".")


def per_image(correct, labels) -> dict:
    """A training result's per-image record of one evaluation (``evaluations.*``): ``correct``,
    which test images it got right (``encode_correct``), and ``labels_sha256``, a digest of the
    test labels in the order read (runs whose bits line up image for image share it)."""
    import hashlib

    import numpy as np

    order = hashlib.sha256(np.asarray(labels, dtype=np.int64).tobytes()).hexdigest()[:16]
    return {"correct": encode_correct(correct), "labels_sha256": order}


def encode_correct(correct) -> str:
    """Which test images an evaluation got right, in the order read: one bit each, packed, in
    base64 (1,250 bytes for 10,000 images)."""
    import numpy as np

    return base64.b64encode(np.packbits(np.asarray(correct, dtype=bool)).tobytes()).decode("ascii")


def decode_correct(text: str, n: int):
    """``encode_correct``'s bits back as a bool array of ``n`` images (ValueError when they are not that)."""
    import binascii

    import numpy as np

    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, TypeError) as e:
        raise ValueError(f"per-image bits are not base64: {e}") from None
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8))
    if bits.size < n or bits.size - n >= 8:
        raise ValueError(f"{bits.size} bits recorded for {n} test images")
    return bits[:n].astype(bool)


def run_identities(path: str, doc) -> list[tuple[str, object]]:
    """What makes ``doc`` one run, each as (how to name it, a key): the file (by its real path), its
    content, for a throughput result its time, commit and machine (a copy of the file), and each of
    its benchmarks' rounds (a file merged from a shard holds the shard's measurements unchanged, under
    another machine_info: the same rounds of one case are one measurement, wherever they are)."""
    import json

    from bench.throughput.workload import result_id

    out = [
        ("the same file", ("path", os.path.realpath(path))),
        ("the same result", ("content", json.dumps(doc, sort_keys=True))),
    ]
    if is_throughput(doc) and doc.get("datetime"):
        commit = (doc.get("commit_info") or {}).get("id")
        machine = json.dumps(doc.get("machine_info"), sort_keys=True)
        out.append((f"the run of {doc['datetime']} (commit {commit})", ("run", doc["datetime"], commit, machine)))
    if is_throughput(doc):
        for b in doc["benchmarks"]:
            extra = b.get("extra_info") or {}
            case = result_id(extra, b.get("param") or b.get("name"))
            samples = (extra.get("images_per_s") or {}).get("samples")
            if samples:
                out.append((f"the measurement of {case}", ("rounds", case, json.dumps(samples))))
    return out
