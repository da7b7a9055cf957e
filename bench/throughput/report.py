"""PNGs (matplotlib, Agg) and a table of images/s from saved throughput results.

``--by precision`` (``plot``): one panel per mode (train, infer); bars are the median images/s over
rounds, grouped by model and coloured by precision, with the inter-quartile range as error bars.
Noisy results are hatched, errored ones are listed. Where several runs or device classes are given,
each bar is labelled with its device class and run (file), so none hides another; results that
recorded no case get a panel of their own, by id, errored ones listed there. The title names every
device class and machine that produced them. ``python -m bench report FILES --out PNG`` or
``--plot PNG`` on a run.

Files are read by ``load``: checked as ``compare`` reads them (``check``), each run once.

``--by backend`` (``backend_table``, ``plot_backends``): the same results compared across Keras
backends, from one or several files (one per backend, or merged): each case's images/s beside
its ratio to tensorflow on the same model, mode, precision, batch, input and device, of the same
run where that run measured tensorflow (``tensorflow_reference``).

No TensorFlow import: the report must run where only jax or torch is installed.
"""

from __future__ import annotations

from pathlib import Path

from bench.errors import UsageError
from bench.io import save_figure
from bench.throughput import summary

BACKEND_COLOURS = {"tensorflow": "#ff7f0e", "jax": "#1f77b4", "torch": "#d62728"}
PRECISION_HATCHES = {"fp32": "", "mixed_fp16": "//", "mixed_bf16": ".."}
OTHER_HATCHES = ("xx", "\\\\", "++", "oo")
COMPILE_ALPHA = {"on": 1.0, "auto": 0.8, "off": 0.55}  # darker: compiled


def rows(docs: list[dict], runs: list[str] | None = None) -> list[dict]:
    """Flat rows of every case in ``docs``, measured or errored, with or without a recorded case: the
    case's fields (model, mode, batch_size, precision, compile, data, backend; read with
    ``Case.from_dict``, so files from before the backend axis read as tensorflow; None where the
    result recorded no case), ``compile_label``, ``device_class``, ``median``, ``q1``, ``q3``,
    ``noisy``, ``error``, the rest of ``bench.throughput.summary.rows``, and ``run``: the name of the
    document it came from (``runs``, e.g. its file name; "run 1", "run 2"... by default), so that two
    runs of one case stay two rows that a reader can tell apart."""
    runs = list(runs) if runs is not None else [f"run {i + 1}" for i in range(len(docs))]
    return [{**r, "run": run} for doc, run in zip(docs, runs) for r in summary.rows(doc)]


def load(paths: list[str]) -> list[dict]:
    """Each result file, read and checked as ``compare`` reads it (``load_result``, then
    ``check``); one run given twice (the same file, a copy of it, or the same time, commit and
    machine: ``baselines update``'s test) is a ``UsageError``, since it would show as two runs."""
    from bench.regression.throughput import load_result
    from bench.results import run_identities

    seen: dict[object, str] = {}
    docs = []
    for path in paths:
        doc = check(load_result(path), path)
        for what, key in run_identities(path, doc):
            if key in seen:
                raise UsageError(f"{what} is given twice: {seen[key]!r} and {path!r}; give each run once")
            seen[key] = path
        docs.append(doc)
    return docs


def check(doc: dict, path: str) -> dict:
    """``doc`` (read with ``load_result``) as ``python -m bench compare`` would judge it: a result whose
    images/s compare would call invalid (a median outside its own samples, no samples; read with
    ``bench.regression.throughput.results``, which also requires a device class) or whose IQR is not
    its own q3 - q1 is a one-line ``UsageError``, not a bar (``load_result`` refuses quartiles out of
    order and a negative IQR)."""
    from bench.regression.throughput import results

    for b, r in zip(doc.get("benchmarks") or [], results(doc)):
        extra = b.get("extra_info") or {}
        if r["error"] and not extra.get("error"):
            raise UsageError(f"{path!r}: {r['key']}: {summary._one_line(r['error'])}")
        ips = extra.get("images_per_s") or {}
        q1, q3, iqr = (ips.get(k) for k in ("q1", "q3", "iqr"))
        if None not in (iqr, q1, q3) and abs(iqr - (q3 - q1)) > 1e-6 * max(1.0, abs(iqr)):
            raise UsageError(f"{path!r}: {r['key']}: images_per_s.iqr {iqr!r} is not q3 - q1 ({q3!r} - {q1!r})")
    return doc


def partial_note(doc: dict, path: str) -> str | None:
    """A line naming the cases ``doc`` planned and holds no result for (an interrupted run, a missing
    shard: ``bench.regression.throughput.unmeasured``), None when it measured its whole plan: a
    report of part of a sweep must not read as the whole of it."""
    from bench.regression.throughput import unmeasured

    missing = [u["key"].split("/", 1)[1] for u in unmeasured(doc)]
    if not missing:
        return None
    return f"note: {path} did not measure {len(missing)} planned case(s): {', '.join(missing)}"


def tensorflow_reference(row: dict, data: list[dict]) -> dict | None:
    """The tensorflow row a non-tensorflow ``row`` is compared with: same model, mode, precision,
    batch, input and device class, measured, and of the same run (file) where that run measured
    tensorflow; where it did not (one file per backend), of the one run that did, and none where
    several runs did (which of them would be a guess). Among those the one with the same compile
    setting, else the fastest (so a backend is set against tensorflow's best where the settings
    differ). None for a tensorflow row (tensorflow is the reference, not compared with itself or
    another run of it), a row without a recorded case, or where tensorflow has no such row."""
    if row["backend"] in (None, "tensorflow") or row["model"] is None:
        return None
    same = [
        t
        for t in data
        if t["backend"] == "tensorflow"
        and t["median"] is not None
        and all(t[k] == row[k] for k in ("model", "mode", "precision", "batch_size", "data", "device_class"))
    ]
    own = [t for t in same if t["run"] == row["run"]]
    if not own and len({t["run"] for t in same}) > 1:
        return None
    pool = own or same
    pool = [t for t in pool if t["compile"] == row["compile"]] or pool
    return max(pool, key=lambda t: t["median"], default=None)


def ratio_to_tensorflow(row: dict, data: list[dict]) -> float | None:
    """``row``'s median images/s over its tensorflow reference's (``tensorflow_reference``), or None."""
    ref = tensorflow_reference(row, data)
    if ref is None or row["median"] is None:
        return None
    return row["median"] / ref["median"]


def backend_table(docs: list[dict], runs: list[str] | None = None) -> str:
    """images/s per model x backend x precision (one row per case, errored ones and ones without a
    recorded case included), with the ratio to tensorflow.

    Rows of the same model, mode, batch and precision sit together, tensorflow first; "vs
    tensorflow" is ``ratio_to_tensorflow`` ("1.25x": a quarter more images/s), "-" for tensorflow
    itself and without a tensorflow row to compare with. A "run" column names the file where several
    were given."""
    data = rows(docs, runs)
    if not data:
        raise UsageError("no throughput results (measured or errored) in the given file(s)")
    data.sort(key=lambda r: (*summary.sort_key(r), r["run"]))
    several_runs = len({r["run"] for r in data}) > 1
    header = [
        "model",
        "mode",
        "precision",
        "batch",
        "data",
        "device",
        "backend",
        "compile",
        *(["run"] if several_runs else []),
        "images/s",
        "IQR",
        "CV",
        "vs tensorflow",
    ]
    body = []
    for r in data:
        ratio = ratio_to_tensorflow(r, data)
        cv = "-" if r["cv"] is None or r["error"] else f"{r['cv']:.1%}"
        body.append(
            [
                r["model"] or r["id"],
                *(summary._text(r[k]) for k in ("mode", "precision", "batch_size", "data", "device_class")),
                summary._text(r["backend"]),
                summary._text(r["compile_label"]),
                *([r["run"]] if several_runs else []),
                summary.rate(r["median"]),
                summary.rate(r["iqr"]),
                f"{cv} noisy" if r["noisy"] and not r["error"] else cv,
                "-" if ratio is None else f"{ratio:.2f}x",
                f"error: {r['error']}" if r["error"] else "",
            ]
        )
    numeric = {header.index(c) for c in ("batch", "images/s", "IQR", "vs tensorflow")}
    backends = sorted({r["backend"] for r in data if r["backend"]}, key=_backend_rank)
    compared = sum(1 for r in data if ratio_to_tensorflow(r, data) is not None)
    others = sum(1 for r in data if r["backend"] != "tensorflow" and r["median"] is not None)
    errored = sum(1 for r in data if r["error"])
    footer = (
        f"{len(data)} case(s) on {', '.join(backends) or 'no recorded backend'}, {errored} errored;"
        f" {compared} of {others} measured non-tensorflow case(s) have a tensorflow row to compare with"
    )
    return summary.aligned(header, body, numeric=numeric) + "\n" + footer


def _backend_rank(backend: str) -> tuple:
    order = summary.BACKEND_ORDER
    return (order.index(backend) if backend in order else len(order), backend)


NO_CASE = "(no case recorded)"


def _mode(r: dict) -> str:
    """The panel a row goes in: its mode, or one panel of its own for results that recorded no case."""
    return r["mode"] or NO_CASE


def _modes(data: list[dict]) -> list[str]:
    modes = [m for m in ("train", "infer") if any(_mode(r) == m for r in data)]
    modes += sorted({_mode(r) for r in data} - {"train", "infer", NO_CASE})
    return modes + ([NO_CASE] if any(r["mode"] is None for r in data) else [])


def _error_lines(data: list[dict], mode: str) -> list[str]:
    return [
        f"{r['model']} {r['backend']} {r['precision']} bs{r['batch_size']}: {r['error'][:60]}"
        if r["model"] is not None
        else f"{r['id']}: {r['error'][:60]}"
        for r in data
        if _mode(r) == mode and r["error"]
    ]


def _list_errors(ax, lines: list[str]) -> None:
    """Errored cases as red text in the panel's top left, with head room above the bars so it hides none."""
    if lines:
        bottom, top = ax.get_ylim()
        ax.set_ylim(bottom, top + (top - bottom) * (0.08 + 0.05 * len(lines)))
        ax.text(
            0.01,
            0.99,
            "errors:\n" + "\n".join(lines),
            transform=ax.transAxes,
            va="top",
            fontsize=7,
            color="red",
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"},
        )


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot(docs: list[dict], path, runs: list[str] | None = None) -> Path:
    """``--by precision``: write the PNG atomically to ``path`` (a path, or a ``bench.io.FileClaim``);
    returns the path written. Bars are labelled by what tells
    them apart: the case, and the device class and run (``runs``, e.g. file names) where several
    were given, so that no bar is drawn over another; the title names every device class and machine."""
    plt = _pyplot()
    from bench.environment import machine_line

    data = rows(docs, runs)
    if not data:
        raise UsageError("no throughput results (measured or errored) in the given file(s)")
    modes = _modes(data)
    precisions = sorted({r["precision"] or "?" for r in data})
    several = {k: len({r[k] for r in data}) > 1 for k in ("backend", "device_class", "run")}

    def label(r: dict) -> str:
        if r["model"] is None:
            lines = [r["id"]]
        else:
            lines = [r["model"], f"bs{r['batch_size']} {r['data']} {r['compile_label']}"]
        lines += [str(r[k]) for k in ("backend", "device_class", "run") if several[k] and r[k] is not None]
        return "\n".join(lines)

    widest = max(len({label(r) for r in data if _mode(r) == m}) for m in modes)
    per_bar = max(1.9, _label_inches([label(r) for r in data]))
    fig, axes = plt.subplots(1, len(modes), figsize=(max(6.0, per_bar * widest) * len(modes), 4.5), squeeze=False)
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colours = {p: palette[i % len(palette)] for i, p in enumerate(precisions)}  # more precisions than colours: cycle
    for ax, mode in zip(axes[0], modes):
        sel = [r for r in data if _mode(r) == mode and r["median"] is not None]
        labels = sorted({label(r) for r in sel})
        width = 0.8 / max(1, len(precisions))
        for j, prec in enumerate(precisions):
            for r in (r for r in sel if (r["precision"] or "?") == prec):
                ax.bar(
                    labels.index(label(r)) + j * width,
                    r["median"],
                    width,
                    color=colours[prec],
                    hatch="//" if r["noisy"] else None,
                    yerr=_yerr(r),
                    capsize=3,
                    label=prec if prec not in ax.get_legend_handles_labels()[1] else None,
                )
        ax.set_xticks([i + width * (len(precisions) - 1) / 2 for i in range(len(labels))], labels, fontsize=8)
        ax.set_ylabel("images/s (median, IQR bars; hatched = noisy)")
        ax.set_title(mode)
        if sel:
            ax.legend(title="precision", fontsize=8)
        _list_errors(ax, _error_lines(data, mode))
    devices = sorted({r["device_class"] for r in data})
    machines = list(dict.fromkeys(machine_line(d.get("machine_info") or {}) for d in docs))
    _suptitle(fig, f"{', '.join(devices)} | {'; '.join(machines)}")
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)


def _yerr(r: dict):
    if r["q1"] is None or r["q3"] is None:
        return None
    return [[max(0.0, r["median"] - r["q1"])], [max(0.0, r["q3"] - r["median"])]]


def plot_backends(docs: list[dict], path: str | Path, runs: list[str] | None = None) -> Path:
    """``--by backend``: one panel per mode; bars grouped by model (and batch, input, device, and
    run where those vary: two runs of one case are two labelled bars, never one drawn over the
    other), coloured by backend, hatched by precision, lighter where not compiled; each
    non-tensorflow bar is labelled with its ratio to tensorflow, noisy bars have a red edge. Written
    atomically; returns its path."""
    plt = _pyplot()
    from matplotlib.patches import Patch

    data = [{**r, "backend": r["backend"] or "?", "precision": r["precision"] or "?"} for r in rows(docs, runs)]
    if not data:
        raise UsageError("no throughput results (measured or errored) in the given file(s)")
    modes = _modes(data)

    def series(r: dict) -> tuple:
        return (_backend_rank(r["backend"]), r["precision"], r["compile_label"] or "?")

    vary = [k for k in ("batch_size", "data", "device_class") if len({r[k] for r in data}) > 1]
    same_bar = [(_mode(r), r["model"] or r["id"], *(r[k] for k in vary), series(r)) for r in data]
    if len(set(same_bar)) < len(same_bar):  # several runs of one case: the run tells their bars apart
        vary.append("run")

    def group(r: dict) -> tuple:
        return (r["model"] or r["id"], *(r[k] for k in vary))

    def group_label(g: tuple) -> str:
        fields = [(k, v) for k, v in zip(vary, g[1:]) if v is not None]
        short = [f"bs{v}" if k == "batch_size" else str(v) for k, v in fields if k in ("batch_size", "data")]
        long = [str(v) for k, v in fields if k not in ("batch_size", "data")]  # device class, run: a line each
        return "\n".join([g[0], *([" ".join(short)] if short else []), *long])

    spare = iter(c for c in plt.rcParams["axes.prop_cycle"].by_key()["color"] if c not in BACKEND_COLOURS.values())
    colours = {b: BACKEND_COLOURS.get(b) or next(spare, "grey") for b in sorted({r["backend"] for r in data})}
    spare_hatches = iter(OTHER_HATCHES)
    hatches = {p: PRECISION_HATCHES.get(p, None) for p in sorted({r["precision"] for r in data})}
    hatches = {p: h if h is not None else next(spare_hatches, "--") for p, h in hatches.items()}

    fig, axes = plt.subplots(
        1,
        len(modes),
        figsize=(
            max(6.0, max(1.6, _label_inches([group_label(group(r)) for r in data])) * _widest(data, group))
            * len(modes),
            5,
        ),
        squeeze=False,
    )
    for ax, mode in zip(axes[0], modes):
        sel = [r for r in data if _mode(r) == mode and r["median"] is not None]
        groups = sorted({group(r) for r in sel}, key=lambda g: tuple(str(v) for v in g))
        per_group = max((len({series(r) for r in sel if group(r) == g}) for g in groups), default=1)
        width = 0.8 / per_group
        handles: dict[tuple, Patch] = {}
        for i, g in enumerate(groups):
            bars = sorted((r for r in sel if group(r) == g), key=lambda r: (series(r), r["compile"]))
            for j, r in enumerate(bars):
                x = i + width * (j - (len(bars) - 1) / 2)  # centred on the group's tick
                style = dict(
                    color=colours[r["backend"]],
                    alpha=COMPILE_ALPHA.get(r["compile"], 0.8),
                    hatch=hatches[r["precision"]],
                )
                ax.bar(
                    x,
                    r["median"],
                    width,
                    **style,
                    edgecolor="red" if r["noisy"] else "black",
                    linewidth=1.5 if r["noisy"] else 0.5,
                    yerr=_yerr(r),
                    capsize=2,
                )
                ratio = ratio_to_tensorflow(r, data)
                if ratio is not None:
                    top = r["q3"] if r["q3"] is not None else r["median"]
                    ax.annotate(
                        f"{ratio:.2f}x",
                        (x, max(top, r["median"])),
                        xytext=(0, 2),
                        textcoords="offset points",
                        ha="center",
                        va="bottom",
                        fontsize=7,
                    )
                key = (r["backend"], r["precision"], r["compile_label"] or "?")
                handles.setdefault(
                    key,
                    Patch(facecolor=style["color"], alpha=style["alpha"], hatch=style["hatch"], label=" ".join(key)),
                )
        ax.set_xticks(range(len(groups)), [group_label(g) for g in groups], fontsize=8)
        ax.set_ylabel("images/s (median, IQR bars; red edge = noisy)")
        ax.set_title(f"{mode} (labels: ratio to tensorflow)")
        if handles:
            ax.legend(
                handles=[handles[k] for k in sorted(handles, key=lambda k: (_backend_rank(k[0]), k[1:]))], fontsize=7
            )
        _list_errors(ax, _error_lines(data, mode))
    devices = sorted({r["device_class"] for r in data})
    keras = sorted({str((d.get("machine_info") or {}).get("keras")) for d in docs} - {"None"})
    title = f"images/s by backend | {', '.join(devices)}" + (f" | Keras {', '.join(keras)}" if keras else "")
    _suptitle(fig, title)
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)


def _widest(data: list[dict], group) -> int:
    """The most bar groups in one mode's panel, to size the figure."""
    return max((len({group(r) for r in data if _mode(r) == m}) for m in _modes(data)), default=1)


def _label_inches(labels: list[str]) -> float:
    """The width the longest line of the tick labels needs at 8 pt (about 15 characters an inch), so
    that neighbouring labels (a device class, a file name) do not run into each other."""
    return max((len(line) for text in labels for line in text.splitlines()), default=0) / 14


def _suptitle(fig, text: str) -> None:
    """The figure's title, wrapped to its width (about 15 characters an inch at 8 pt): the machine
    and software it names must not be cut off at the edges of a narrow, one-mode figure."""
    import textwrap

    fig.suptitle(textwrap.fill(text, width=max(40, int(fig.get_figwidth() * 15))), fontsize=8)
