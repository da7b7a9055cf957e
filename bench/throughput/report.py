"""PNGs (matplotlib, Agg) and a table of images/s from saved throughput results.

``--by precision`` (``plot``): one panel per mode (train, infer); bars are the median images/s over
rounds, grouped by model and coloured by precision, with the inter-quartile range as error bars.
Noisy results are hatched, errored ones are listed. The title names the hardware and software that
produced them. ``python -m bench report FILES --out PNG`` or ``--plot PNG`` on a run.

``--by backend`` (``backend_table``, ``plot_backends``): the same results compared across Keras
backends, from one or several files (one per backend, or merged): each case's images/s beside
its ratio to tensorflow on the same model, mode, precision, batch, input and device.

No TensorFlow import: the report must run where only jax or torch is installed.
"""

from __future__ import annotations

from pathlib import Path

from bench.errors import UsageError
from bench.io import save_figure
from bench.throughput import summary

BACKEND_COLOURS = {"tensorflow": "#ff7f0e", "jax": "#1f77b4", "torch": "#d62728"}
PRECISION_HATCHES = {"fp32": "", "mixed_float16": "//", "mixed_bf16": ".."}
OTHER_HATCHES = ("xx", "\\\\", "++", "oo")
COMPILE_ALPHA = {"on": 1.0, "auto": 0.8, "off": 0.55}  # darker: compiled


def rows(docs: list[dict]) -> list[dict]:
    """Flat rows of every case in ``docs``, measured or errored: the case's fields (model, mode,
    batch_size, precision, compile, data, backend; read with ``Case.from_dict``, so files from
    before the backend axis read as tensorflow), ``compile_label``, ``device_class``, ``median``,
    ``q1``, ``q3``, ``noisy``, ``error`` and the rest of ``bench.throughput.summary.rows``."""
    return [r for doc in docs for r in summary.rows(doc)]


def tensorflow_reference(row: dict, data: list[dict]) -> dict | None:
    """The tensorflow row ``row`` is compared with: same model, mode, precision, batch, input and
    device class, measured; among those the one with the same compile setting, else the fastest
    (so a backend is set against tensorflow's best where the settings differ). None where tensorflow
    has no such row."""
    same = [
        t
        for t in data
        if t["backend"] == "tensorflow"
        and t["median"] is not None
        and all(t[k] == row[k] for k in ("model", "mode", "precision", "batch_size", "data", "device_class"))
    ]
    pool = [t for t in same if t["compile"] == row["compile"]] or same
    return max(pool, key=lambda t: t["median"], default=None)


def ratio_to_tensorflow(row: dict, data: list[dict]) -> float | None:
    """``row``'s median images/s over its tensorflow reference's (``tensorflow_reference``), or None."""
    ref = tensorflow_reference(row, data)
    if ref is None or row["median"] is None:
        return None
    return row["median"] / ref["median"]


def backend_table(docs: list[dict]) -> str:
    """images/s per model x backend x precision (one row per case), with the ratio to tensorflow.

    Rows of the same model, mode, batch and precision sit together, tensorflow first; "vs
    tensorflow" is ``ratio_to_tensorflow`` ("1.25x": a quarter more images/s), "-" without a
    tensorflow row to compare with."""
    data = [r for r in rows(docs) if r["model"] is not None]
    if not data:
        raise UsageError("no throughput results with a recorded case to compare")
    data.sort(key=summary.sort_key)
    header = [
        "model",
        "mode",
        "precision",
        "batch",
        "data",
        "device",
        "backend",
        "compile",
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
                r["model"],
                r["mode"],
                r["precision"],
                str(r["batch_size"]),
                r["data"],
                r["device_class"],
                r["backend"],
                r["compile_label"],
                summary.rate(r["median"]),
                summary.rate(r["iqr"]),
                f"{cv} noisy" if r["noisy"] and not r["error"] else cv,
                "-" if ratio is None else f"{ratio:.2f}x",
                f"error: {r['error']}" if r["error"] else "",
            ]
        )
    numeric = {header.index(c) for c in ("batch", "images/s", "IQR", "vs tensorflow")}
    backends = sorted({r["backend"] for r in data}, key=_backend_rank)
    compared = sum(1 for r in data if r["backend"] != "tensorflow" and ratio_to_tensorflow(r, data) is not None)
    others = sum(1 for r in data if r["backend"] != "tensorflow")
    footer = f"{len(data)} case(s) on {', '.join(backends)}; {compared} of {others} non-tensorflow case(s) have a tensorflow row to compare with"
    return summary.aligned(header, body, numeric=numeric) + "\n" + footer


def _backend_rank(backend: str) -> tuple:
    order = summary.BACKEND_ORDER
    return (order.index(backend) if backend in order else len(order), backend)


def _modes(data: list[dict]) -> list[str]:
    modes = [m for m in ("train", "infer") if any(r["mode"] == m for r in data)]
    modes += sorted({r["mode"] for r in data if r["mode"] and r["mode"] not in modes})
    return modes


def _error_lines(data: list[dict], mode: str) -> list[str]:
    return [
        f"{r['model'] or r['id']} {r['backend'] or ''} {r['precision'] or ''} bs{r['batch_size']}: {r['error'][:60]}"
        for r in data
        if r["mode"] == mode and r["error"]
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


def plot(docs: list[dict], path: str | Path) -> Path:
    """``--by precision``: write the PNG atomically; returns its path."""
    plt = _pyplot()
    from bench.environment import machine_line

    data = [r for r in rows(docs) if r["model"] is not None]
    if not data:
        raise UsageError("no throughput results to plot")
    modes = _modes(data)
    precisions = sorted({r["precision"] for r in data if r["precision"]})
    several_backends = len({r["backend"] for r in data}) > 1

    def label(r: dict) -> str:
        backend = f"\n{r['backend']}" if several_backends else ""
        return f"{r['model']}\nbs{r['batch_size']} {r['data']} {r['compile_label']}{backend}"

    widest = max(len({label(r) for r in data if r["mode"] == m}) for m in modes)
    fig, axes = plt.subplots(1, len(modes), figsize=(max(6.0, 1.9 * widest) * len(modes), 4.5), squeeze=False)
    colours = dict(zip(precisions, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for ax, mode in zip(axes[0], modes):
        sel = [r for r in data if r["mode"] == mode and r["median"] is not None]
        labels = sorted({label(r) for r in sel})
        width = 0.8 / max(1, len(precisions))
        for j, prec in enumerate(precisions):
            for r in (r for r in sel if r["precision"] == prec):
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
    first = docs[0]
    device_class = (first.get("harness") or {}).get("device_class", "?")
    _suptitle(fig, f"{device_class} | {machine_line(first.get('machine_info', {}))}")
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)


def _yerr(r: dict):
    if r["q1"] is None or r["q3"] is None:
        return None
    return [[max(0.0, r["median"] - r["q1"])], [max(0.0, r["q3"] - r["median"])]]


def plot_backends(docs: list[dict], path: str | Path) -> Path:
    """``--by backend``: one panel per mode; bars grouped by model (and batch, input, device where
    those vary), coloured by backend, hatched by precision, lighter where not compiled; each
    non-tensorflow bar is labelled with its ratio to tensorflow, noisy bars have a red edge. Written
    atomically; returns its path."""
    plt = _pyplot()
    from matplotlib.patches import Patch

    data = [r for r in rows(docs) if r["model"] is not None]
    if not data:
        raise UsageError("no throughput results to plot")
    modes = _modes(data)
    vary = [k for k in ("batch_size", "data", "device_class") if len({r[k] for r in data}) > 1]

    def group(r: dict) -> tuple:
        return (r["model"], *(r[k] for k in vary))

    def group_label(g: tuple) -> str:
        parts = [f"bs{v}" if k == "batch_size" else str(v) for k, v in zip(vary, g[1:])]
        return "\n".join([g[0], *([" ".join(parts)] if parts else [])])

    def series(r: dict) -> tuple:
        return (_backend_rank(r["backend"]), r["precision"], r["compile_label"])

    spare = iter(c for c in plt.rcParams["axes.prop_cycle"].by_key()["color"] if c not in BACKEND_COLOURS.values())
    colours = {b: BACKEND_COLOURS.get(b) or next(spare, "grey") for b in sorted({r["backend"] for r in data})}
    spare_hatches = iter(OTHER_HATCHES)
    hatches = {p: PRECISION_HATCHES.get(p, None) for p in sorted({r["precision"] for r in data})}
    hatches = {p: h if h is not None else next(spare_hatches, "--") for p, h in hatches.items()}

    fig, axes = plt.subplots(
        1, len(modes), figsize=(max(6.0, 1.6 * _widest(data, group)) * len(modes), 5), squeeze=False
    )
    for ax, mode in zip(axes[0], modes):
        sel = [r for r in data if r["mode"] == mode and r["median"] is not None]
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
                ratio = ratio_to_tensorflow(r, data) if r["backend"] != "tensorflow" else None
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
                key = (r["backend"], r["precision"], r["compile_label"])
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
    return max((len({group(r) for r in data if r["mode"] == m}) for m in _modes(data)), default=1)


def _suptitle(fig, text: str) -> None:
    """The figure's title, wrapped to its width (about 15 characters an inch at 8 pt): the machine
    and software it names must not be cut off at the edges of a narrow, one-mode figure."""
    import textwrap

    fig.suptitle(textwrap.fill(text, width=max(40, int(fig.get_figwidth() * 15))), fontsize=8)
