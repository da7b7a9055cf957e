"""``python -m bench merge SHARDS... --out MERGED.json``: the shards of one sharded sweep as one result file.

Each of N runners measures ``python -m bench throughput --shard i/N`` of the same plan; this joins
their result files (``bench.throughput.merge.shards``) into one pytest-benchmark JSON that
``compare``, ``report`` and ``baselines update`` read as one run. Every file and the ``--out`` path
are checked before anything is written; shards of different plans, commits or versions, a shard
given twice, a case recorded twice or outside the plan, a file that is no shard's result, an
``--out`` that is one of the shard files, and missing shards or cases (unless ``--allow-partial``)
are refused in one line, exit 2. A partial shard (an interrupted run) makes the merged file partial too.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", nargs="+", help="the shards' result files (python -m bench throughput --shard i/N)")
    parser.add_argument("--out", required=True, help="the merged result file to write (atomically)")
    parser.add_argument(
        "--allow-partial",
        action="store_true",
        help="merge even when shards are missing; the merged file is then marked partial and names them",
    )


def run(args: argparse.Namespace) -> int:
    from bench.io import distinct_outputs, writable_file, write_json
    from bench.throughput import merge, summary

    out = writable_file("--out", args.out)
    distinct_outputs([("--out", args.out)], args.results)  # writing a shard over would lose it
    merged = merge.shards(args.results, allow_partial=args.allow_partial)
    print(summary.table(merged, summary.load_baselines()))
    s = merged["harness"]["shard"]
    note = f"; shards {', '.join(map(str, s['missing']))} missing" if s["missing"] else ""
    unmeasured = len(s["missing_cases"])
    note += f"; {unmeasured} case{'s' if unmeasured > 1 else ''} without a result" if unmeasured else ""
    note += ", marked partial" if note else ("; partial shards: marked partial" if merged.get("partial") else "")
    print(
        f"\ncnn-bench: wrote {write_json(out, merged)} ({len(s['merged'])} of {s['count']} shards of plan {s['plan']}, "
        f"{len(merged['harness']['options']['cases'])} of {len(s['plan_cases'])} cases{note})"
    )
    return 0
