"""A PNG of images/s per model and precision from saved throughput results (matplotlib, Agg).

One panel per mode (train, infer); bars are the median images/s over rounds, grouped by model
and coloured by precision, with the inter-quartile range as error bars. Noisy results are
hatched, errored ones are listed. The title names the hardware and software that produced them.
``python -m bench report FILES --out PNG`` or ``--plot PNG`` on a run.
"""

from __future__ import annotations

from pathlib import Path

from bench.errors import UsageError
from bench.io import save_figure


def rows(docs: list[dict]) -> list[dict]:
    """Flat rows (model, mode, precision, batch, median, q1, q3, noisy, error) from result documents."""
    out = []
    for doc in docs:
        for b in doc.get("benchmarks", []):
            x = b.get("extra_info", {})
            case, ips = x.get("case") or {}, x.get("images_per_s") or {}
            if not case or "median" not in ips:
                continue
            out.append(
                {
                    **case,
                    "median": ips["median"],
                    "q1": ips["q1"],
                    "q3": ips["q3"],
                    "noisy": bool(x.get("noisy")),
                    "error": None,
                }
            )
        for e in doc.get("errors", []):
            out.append({**(e.get("case") or {}), "median": None, "error": e.get("error")})
    return out


def plot(docs: list[dict], path: str | Path) -> Path:
    """Write the PNG atomically; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench.environment import machine_line

    data = rows(docs)
    if not data:
        raise UsageError("no throughput results to plot")
    modes = [m for m in ("train", "infer") if any(r.get("mode") == m for r in data)]
    precisions = sorted({r["precision"] for r in data if r.get("precision")})
    fig, axes = plt.subplots(1, len(modes), figsize=(6 * len(modes), 4.5), squeeze=False)
    colours = dict(zip(precisions, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for ax, mode in zip(axes[0], modes):
        sel = [r for r in data if r.get("mode") == mode and r["median"] is not None]
        labels = sorted({f"{r['model']}\nbs{r['batch_size']} {r['data']} xla {r['xla']}" for r in sel})
        width = 0.8 / max(1, len(precisions))
        for j, prec in enumerate(precisions):
            for r in (r for r in sel if r["precision"] == prec):
                i = labels.index(f"{r['model']}\nbs{r['batch_size']} {r['data']} xla {r['xla']}")
                ax.bar(
                    i + j * width,
                    r["median"],
                    width,
                    color=colours[prec],
                    hatch="//" if r["noisy"] else None,
                    yerr=[[r["median"] - r["q1"]], [r["q3"] - r["median"]]],
                    capsize=3,
                    label=prec if prec not in ax.get_legend_handles_labels()[1] else None,
                )
        ax.set_xticks([i + width * (len(precisions) - 1) / 2 for i in range(len(labels))], labels, fontsize=8)
        ax.set_ylabel("images/s (median, IQR bars; hatched = noisy)")
        ax.set_title(mode)
        ax.legend(title="precision", fontsize=8)
        errors = [
            f"{r['model']} {r.get('precision')} bs{r.get('batch_size')}: {r['error'][:60]}"
            for r in data
            if r.get("mode") == mode and r["error"]
        ]
        if errors:
            ax.text(
                0.01, 0.99, "errors:\n" + "\n".join(errors), transform=ax.transAxes, va="top", fontsize=7, color="red"
            )
    first = docs[0]
    device_class = (first.get("harness") or {}).get("device_class", "?")
    fig.suptitle(f"{device_class} | {machine_line(first.get('machine_info', {}))}", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)
