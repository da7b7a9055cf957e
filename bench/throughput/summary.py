"""The table a throughput run ends with: images/s per case, its spread, and its change against the baseline.

pytest-benchmark's own table shows seconds per round; the number a user runs the suite for,
images/s, is only in the result JSON. ``table(doc, baselines)`` prints it per case (errored cases
included, with their error): the median over rounds, the inter-quartile range, the coefficient of
variation (flagged when the run stayed noisy), utilization of the device's matmul peak, compile time
and the change of the median against baselines.json. It reads any result document, including one
merged from several backends' runs and documents written before the backend axis.

``rows(doc)`` is the one reader of a result document's cases shared with ``bench.throughput.report``;
``aligned`` is the plain-text layout both print with. No TensorFlow import here: the summary and the
report must work where only jax or torch is installed.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from bench.errors import BaselinesError
from bench.stats import finite
from bench.throughput.workload import Case, result_id

# backends in the order tables list them: the reference first
BACKEND_ORDER = ("tensorflow", "jax", "torch")


def rows(doc: dict) -> list[dict]:
    """One flat dict per case of a result document, measured or errored, in the document's order.

    Keys: the case's fields (model, mode, batch_size, precision, compile, data, backend, all None
    when the result recorded no case), ``compile_label``, ``id`` (the benchmark id its baseline is
    stored under, ``workload.result_id``), ``device``, ``device_class``, ``median``,
    ``q1``, ``q3``, ``iqr``, ``cv``, ``noisy``, ``utilization``, ``compile_s``, ``steps_per_round``,
    ``peak_memory_bytes`` and ``error`` (None when measured). A case both in ``benchmarks`` (with an
    error) and in ``errors`` appears once. Missing or non-finite numbers are None; a benchmark
    without a usable median is an error row, so a broken file shows rather than vanishes."""
    harness_class = (doc.get("harness") or {}).get("device_class") or (doc.get("machine_info") or {}).get(
        "device_class"
    )
    out: list[dict] = []
    seen: set[tuple] = set()
    for b in doc.get("benchmarks") or []:
        x = b.get("extra_info") or {}
        ips = x.get("images_per_s") or {}
        row = _row(x, fallback_id=b.get("param") or b.get("name"), device_class=harness_class)
        median = finite(ips.get("median"))
        error = x.get("error") or (None if median is not None else "no images/s recorded")
        q1, q3 = finite(ips.get("q1")), finite(ips.get("q3"))
        iqr = finite(ips.get("iqr"))
        row.update(
            median=None if error else median,
            q1=None if error else q1,
            q3=None if error else q3,
            iqr=None if error else (iqr if iqr is not None else (q3 - q1 if None not in (q1, q3) else None)),
            cv=finite(x.get("cv")),
            noisy=bool(x.get("noisy")),
            utilization=finite(x.get("utilization")),
            compile_s=finite(x.get("compile_s")),
            steps_per_round=x.get("steps_per_round"),
            peak_memory_bytes=x.get("peak_memory_bytes"),
            error=_one_line(error),
        )
        out.append(row)
        seen.add((row["device_class"], row["id"]))
    for e in doc.get("errors") or []:
        row = _row(e, fallback_id=e.get("name"), device_class=harness_class)
        if (row["device_class"], row["id"]) in seen:
            continue
        row.update(
            {k: None for k in ("median", "q1", "q3", "iqr", "cv", "utilization", "compile_s")},
            noisy=False,
            steps_per_round=None,
            peak_memory_bytes=None,
            error=_one_line(e.get("error") or "errored"),
        )
        out.append(row)
    return out


def _row(record: dict, *, fallback_id: str | None, device_class: str | None) -> dict:
    """The identifying part of a row: the case (through ``Case.from_dict``, which reads old files),
    its ids and where it ran."""
    fields = ("model", "mode", "batch_size", "precision", "compile", "data", "backend")
    case = _case(record.get("case"))
    row = {f: getattr(case, f) if case else None for f in fields}
    row.update(
        compile_label=case.compile_label if case else None,
        id=result_id(record, fallback_id) or "?",
        device=record.get("device"),
        device_class=record.get("device_class") or device_class or "?",
    )
    return row


def _case(d) -> Case | None:
    if not isinstance(d, dict) or not d:
        return None
    try:
        return Case.from_dict(d)
    except TypeError:  # a field missing: not a case this harness wrote
        return None


def baseline_median(row: dict, baselines: dict | None) -> float | None:
    """The stored median images/s for ``row`` (the entry keyed ``<device class>/<case id>``, as
    ``python -m bench compare`` looks it up), or None."""
    entry = (baselines or {}).get(f"{row['device_class']}/{row['id']}")
    median = finite(entry.get("images_per_s")) if isinstance(entry, dict) else None
    return median if median is not None and median > 0 else None


def change(current: float | None, baseline: float | None) -> float | None:
    """Relative change of ``current`` against ``baseline`` (-0.031 for 3.1 % slower), or None."""
    if current is None or baseline is None or baseline <= 0:
        return None
    return current / baseline - 1


def load_baselines(path: str | Path | None = None, *, stream: TextIO | None = None) -> dict | None:
    """baselines.json's throughput entries, for ``table``; None when the file does not exist.

    A file that cannot be read or fails validation (``bench.regression.baselines.load`` and
    ``bench.regression.throughput.validate_entries``, the loaders ``python -m bench compare`` uses) must
    not cost the user the run's table: one line ``baselines unreadable: ...`` goes to ``stream``
    (stderr) and None comes back, as if there were none."""
    from bench.regression import baselines
    from bench.regression.throughput import validate_entries

    path = Path(baselines.DEFAULT_PATH if path is None else path)
    if not path.exists():
        return None
    try:
        return validate_entries(baselines.section(path, "throughput"), path)
    except BaselinesError as e:
        print(f"baselines unreadable: {_one_line(str(e))}", file=stream or sys.stderr)
        return None


JUDGED_BY = "a raw change: `python -m bench compare FILE` judges it against the baseline's spread"


def table(doc: dict, baselines: dict | None = None) -> str:
    """The run's images/s table: one row per case (errored ones with their error), then one line of totals.

    ``baselines`` is baselines.json's throughput section (``load_baselines``; the whole file is
    accepted too). "vs baseline" is the change of the median against the entry stored for
    ``<device class>/<case id>``, "-" where there is none. Rows are grouped by model, mode, batch and
    precision, backends side by side (tensorflow first); compile and data get columns only when they
    vary."""
    if baselines and isinstance(baselines.get("throughput"), dict) and "schema" in baselines:
        baselines = baselines["throughput"]
    data = sorted(rows(doc), key=sort_key)
    missing = unmeasured(doc)
    if missing:
        from bench.regression.throughput import planned

        missing_line = f"{len(missing)} of {len(planned(doc))} planned case(s) not measured: {', '.join(missing)}"
    if not data:
        return "no throughput results" + (f"\n{missing_line}" if missing else "")
    vary = [c for c in ("compile_label", "data") if len({r[c] for r in data}) > 1]
    header = ["model", "mode", "backend", "device", "precision", "batch"]
    header += [{"compile_label": "compile", "data": "data"}[c] for c in vary]
    header += ["images/s", "IQR", "CV", "util %", "compile s", "vs baseline"]
    body = []
    for r in data:
        pct = change(r["median"], baseline_median(r, baselines))
        cv = "-" if r["cv"] is None or r["error"] else f"{r['cv']:.1%}"
        body.append(
            [
                r["model"] or r["id"],
                *(_text(r[k]) for k in ("mode", "backend", "device_class", "precision", "batch_size")),
                *(_text(r[c]) for c in vary),
                rate(r["median"]),
                rate(r["iqr"]),
                f"{cv} noisy" if r["noisy"] and not r["error"] else cv,
                "-" if r["utilization"] is None else f"{100 * r['utilization']:.1f}",
                seconds(r["compile_s"]),
                "-" if pct is None else f"{100 * pct:+.1f}%",
                f"error: {r['error']}" if r["error"] else "",
            ]
        )
    numeric = {header.index(c) for c in ("batch", "images/s", "IQR", "util %", "compile s", "vs baseline")}
    errored = sum(1 for r in data if r["error"])
    noisy = sum(1 for r in data if r["noisy"] and not r["error"])
    matched = sum(1 for r in data if baseline_median(r, baselines) is not None and not r["error"])
    totals = f"{len(data)} case(s): {len(data) - errored} measured, {errored} errored, {noisy} noisy"
    if baselines is not None:
        totals += f"; {matched} with a baseline"
    if matched:  # a raw change on a drifting machine is not a verdict
        totals += f" ({JUDGED_BY})"
    if missing:
        totals += "\n" + missing_line
    return aligned(header, body, numeric=numeric) + "\n" + totals


def unmeasured(doc: dict) -> list[str]:
    """The ids of the cases the run planned with no result in ``doc``, neither measured nor errored
    (deselected by ``-k``, or never reached): ``compare``'s own list, so a run that leaves any fails
    as compare fails it."""
    from bench.regression.throughput import unmeasured_ids

    return unmeasured_ids(doc)


def plot_line(doc: dict, path) -> str:
    """``--plot``'s line: the figure of ``doc``'s cases written to ``path`` (a path, or the run's
    ``bench.io.FileClaim``), or, for a run with no case to plot (an empty shard), why none was written:
    that is not an error of the run."""
    if not rows(doc):
        return f"cnn-bench: no figure written to {getattr(path, 'path', path)}: the run has no case to plot"
    from bench.throughput.report import plot

    return f"cnn-bench: wrote {plot([doc], path)}"


def sort_key(r: dict) -> tuple:
    """Cases of a model, mode, batch and precision together, backends in ``BACKEND_ORDER``; rows
    without a recorded case last."""
    backend = r["backend"] or ""
    return (
        r["model"] is None,
        r["model"] or r["id"],
        _mode_rank(r["mode"]),
        r["batch_size"] or 0,
        r["precision"] or "",
        r["data"] or "",
        r["device_class"],
        BACKEND_ORDER.index(backend) if backend in BACKEND_ORDER else len(BACKEND_ORDER),
        backend,
        r["compile"] or "",
    )


def _mode_rank(mode: str | None) -> int:
    return {"train": 0, "infer": 1}.get(mode or "", 2)


def aligned(header: Sequence[str], body: Sequence[Sequence[str]], *, numeric: set[int] = frozenset()) -> str:
    """Plain text columns for a terminal: a header, a rule, the rows; columns in ``numeric`` are
    right-aligned. A row may carry one extra, unpadded trailing cell (an error message)."""
    n = len(header)
    widths = [max(len(str(row[i])) for row in [header, *body]) for i in range(n)]

    def line(cells: Sequence[str]) -> str:
        padded = [str(c).rjust(w) if i in numeric else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        return "  ".join(padded + [str(c) for c in cells[n:] if c]).rstrip()

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *(line(r) for r in body)])


def rate(x: float | None) -> str:
    """images/s to a sensible precision: 12,345 / 996.6 / 42.57 / 0.123."""
    if x is None:
        return "-"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 100:
        return f"{x:.1f}"
    return f"{x:.3g}" if abs(x) < 1 else f"{x:.2f}"


def seconds(x: float | None) -> str:
    """A duration in seconds: 0.42 / 3.41 / 12.3 / 154."""
    if x is None:
        return "-"
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:.0f}"


def _text(v) -> str:
    return "-" if v is None else str(v)


def _one_line(text: str | None) -> str | None:
    if text is None:
        return None
    lines = str(text).strip().splitlines()
    return lines[0] if lines else str(text)
