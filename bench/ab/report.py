"""What an A/B run writes: a table per case, a markdown report, a PNG of the per-pair ratios and
the JSON with every pair's raw samples, both sides' environments and the machine load seen."""

from __future__ import annotations

from pathlib import Path

from bench.ab.verdict import ERROR

COLUMNS = ("case", "BASE img/s", "HEAD img/s", "HEAD/BASE", "95% interval", "pairs", "verdict", "confirmed")


def _confirmed(row: dict) -> str:
    if row.get("confirmation_error"):
        return "error"
    return {True: "confirmed", False: "not confirmed", None: "-"}[row.get("confirmed")]


def rows(cases: dict[str, dict]) -> list[list[str]]:
    out = []
    for key, r in cases.items():
        if r["verdict"] == ERROR:
            out.append(
                [key, _num(r.get("base")), _num(r.get("head")), "-", r["error"], str(len(r["ratios"])), ERROR, "-"]
            )
            continue
        out.append(
            [
                key,
                _num(r["base"]),
                _num(r["head"]),
                f"{r['ratio']:.3f}",
                f"[{r['lo']:.3f}, {r['hi']:.3f}]",
                str(r["n"]),
                r["verdict"],
                _confirmed(r),
            ]
        )
    return out


def _num(v) -> str:
    return f"{v:,.1f}" if v else "-"


def table(cases: dict[str, dict]) -> str:
    """A plain-text table, one line per case."""
    body = rows(cases)
    widths = [max([len(c), *(len(r[i]) for r in body)]) for i, c in enumerate(COLUMNS)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    return "\n".join([line(COLUMNS), line(["-" * w for w in widths]), *(line(r) for r in body)])


def header(doc: dict) -> list[str]:
    """Lines saying what ran where: both sides, the machine, the load, the threshold and its source."""
    lines = []
    for label in ("BASE", "HEAD"):
        env = doc["sides"][label]
        pins = ", ".join(env["side"]["packages"]) or "this environment"
        lines.append(f"{label}: {env['side']['text']} ({env['tree']}, commit {str(env['commit'])[:12]}; {pins})")
    loads = [p[label]["loadavg_before"][0] for p in doc["pairs"] for label in ("BASE", "HEAD")]
    lines.append(
        f"machine: {doc['produced_by']}; load average (1 min) before each process: {min(loads):.2f} to {max(loads):.2f}"
    )
    t = doc["threshold"]
    lines.append(
        f"threshold {t['value']:.1%} = max(rule {t['rule']}, A/A calibration "
        + (f"{t['calibration']:.1%})" if t["calibration"] is not None else "none that applies)")
    )
    how = {"rounds": "their rounds interleaved", "processes": "one process after the other"}.get(doc.get("interleave"))
    lines.append(
        f"{len(doc['pairs'])} pair(s) + {len(doc['confirmation_pairs'])} confirmation pair(s)"
        + (f", {how}" if how else "")
        + f"; {doc['wall_s']:.0f} s"
    )
    return lines


def markdown(doc: dict) -> str:
    """The report as markdown: header lines, the table, the verdict."""
    body = rows(doc["cases"])
    out = [f"# A/B: {doc['sides']['BASE']['side']['text']} vs {doc['sides']['HEAD']['side']['text']}", ""]
    out += [f"- {line}" for line in header(doc)]
    out += ["", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    out += ["| " + " | ".join(r) + " |" for r in body]
    out += ["", doc["summary"], ""]
    return "\n".join(out)


def plot(doc: dict, path: str | Path) -> Path:
    """Per-pair ratios HEAD/BASE per case (confirmation pairs hollow), with the threshold band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench.io import save_figure

    cases = doc["cases"]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.6 * len(cases) + 2), 3.6))
    thr = doc["threshold"]["value"]
    ax.axhspan(1 - thr, 1 + thr, color="0.9", label=f"threshold ±{thr:.1%}")
    ax.axhline(1.0, color="0.5", lw=0.8)
    for x, r in enumerate(cases.values()):
        ax.plot([x] * len(r["ratios"]), r["ratios"], "o", color="C0", alpha=0.8)
        again = (r.get("confirmation") or {}).get("ratios") or []
        ax.plot([x + 0.15] * len(again), again, "o", mfc="none", color="C3", alpha=0.8)
        if r["verdict"] != ERROR:
            ax.errorbar(
                [x - 0.15], [r["ratio"]], yerr=[[r["ratio"] - r["lo"]], [r["hi"] - r["ratio"]]], fmt="s", color="k"
            )
    shown = [v for r in cases.values() for v in [*r["ratios"], *((r.get("confirmation") or {}).get("ratios") or [])]]
    ax.set_yscale("log")
    ax.set_ylim(min([*shown, 1 - thr]) / 1.05, max([*shown, 1 + thr]) * 1.05)  # intervals beyond are clipped
    ax.set_xlim(-0.6, len(cases) - 0.4)
    ax.set_xticks(range(len(cases)), [k.split("-bs")[0] for k in cases], rotation=20)
    ax.set_ylabel("HEAD / BASE images/s per pair (log)")
    ax.set_title(f"{doc['sides']['BASE']['side']['text']} vs {doc['sides']['HEAD']['side']['text']}", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return save_figure(fig, path)


def bisect_summary(result: dict) -> str:
    """The first bad candidate, the steps, and the evidence table."""
    steps = result["steps"]
    lines = [result["assumption"] + "."]
    doubtful = []
    for i, s in enumerate(steps, 1):
        undecided = s["evidence"].get("undecided") or []
        verdict = (
            "untestable"
            if s["bad"] is None
            else "bad"
            if s["bad"]
            else ("good" if not undecided else "counted good, undecided")
        )
        runs = len(s["evidence"].get("earlier") or [])
        again = f" (after {runs} undecided A/B run(s) of it, A/B'd again with more pairs)" if runs else ""
        lines.append(f"step {i}: {s['candidate']} {verdict}{again}: {s['evidence']['summary']}")
        if undecided:
            doubtful.append(f"step {i} ({s['candidate']}: {', '.join(undecided)})")
    if doubtful:
        lines.append(
            "caution: a slowdown of the size to detect was not ruled out at "
            + "; ".join(doubtful)
            + ": if one of these was in fact bad, the first bad is that candidate or an earlier one;"
            " run that A/B again with a larger --max-pairs, allow more --reruns, or use a quieter machine"
        )
    if result.get("interrupted"):
        lines.append(f"interrupted after {len(steps)} step(s): no first bad yet")
        return "\n".join(lines)
    if result.get("first_bad_within"):
        lines.append(
            f"no single first bad: the first bad is one of {', '.join(result['first_bad_within'])} (after the last"
            f" good {result['last_good']}); untestable: {', '.join(result['untestable'])}; evidence of the last:"
        )
        return "\n".join([*lines, table(result["evidence"]["cases"])])
    if result["first_bad"] is None:
        end = result["steps"][-1]
        if end.get("end") and end["bad"] is None:
            lines.append(f"the bad end {result['candidates'][-1]} could not be tested here")
        else:
            lines.append(f"the bad end {result['candidates'][-1]} did not regress against the good end here")
        return "\n".join(lines)
    lines.append(
        f"first bad: {result['first_bad']} (last good: {result['last_good']}) after {len(steps)} A/B step(s) "
        f"over {len(result['candidates']) - 1} candidate(s); evidence:"
    )
    return "\n".join([*lines, table(result["evidence"]["cases"])])


def bisect_markdown(result: dict) -> str:
    return "\n".join([f"# Bisect over {result['what']}", "", "```", bisect_summary(result), "```", ""])
