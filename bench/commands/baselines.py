"""``python -m bench baselines show|update``: the only way baselines.json changes.

``update`` reads and checks every result file first, then, holding the file's lock, lets each
section's owner turn them into entries (throughput: pytest-benchmark JSON, via
``bench.regression.throughput``; accuracy: training results, via ``bench.regression.accuracy``, whose
seeds join the entry's unless ``--replace``), prints the diff and writes the file once, atomically:
a bad file changes nothing, and so does one run given twice (the same file, a copy of it, or a
shard and the file merged from it: it would count as two runs that agree). ``--dry-run`` prints the
diff only.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from bench import results
from bench.errors import UsageError
from bench.io import writable_file
from bench.regression import baselines
from bench.regression.throughput import few_runs_warning

# section -> (module providing `is_result(doc)` and `baseline_entries(docs, args)`)
OWNERS = {"throughput": "bench.regression.throughput", "accuracy": "bench.regression.accuracy"}
UPDATE_ONLY = {  # flag -> argparse dest, for show to refuse
    "--dry-run": "dry_run",
    "--replace": "replace",
    "--tolerance": "tolerance",
    "--provenance": "provenance",
    "--reported": "reported",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["show", "update"], help="show the file, or update it from results")
    parser.add_argument("results", nargs="*", default=[], help="result JSON files (update)")  # a default: optional
    parser.add_argument(
        "--baselines", default=str(baselines.DEFAULT_PATH), help="baselines file (default: %(default)s)"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the diff without writing")
    parser.add_argument(
        "--replace",
        action="store_true",
        help="replace accuracy entries with these runs (default: add their seeds to the entry's)",
    )
    parser.add_argument(
        "--tolerance", default=None, help="rule for new entries, e.g. 'throughput:-5%%' or 'top1:-1.5pt'"
    )
    parser.add_argument(
        "--provenance", default=None, help="free text stored with new entries (where the numbers came from)"
    )
    parser.add_argument(
        "--reported",
        action="store_true",
        help="update: also store the articles' reported accuracies as full-budget entries (measured: false)",
    )


def run(args: argparse.Namespace) -> int:
    baselines.check_path(args.baselines)
    if args.action == "show":
        extra = [*args.results] + [
            flag for flag, given in UPDATE_ONLY.items() if getattr(args, given) not in (None, False)
        ]
        if extra:
            raise UsageError(f"baselines show takes no result files or update options; got {' '.join(extra)}")
        data = baselines.load(args.baselines)
        _validate(data, args.baselines)
        print(json.dumps(data, indent=2))
        return 0
    if not args.results and not args.reported:
        raise UsageError("baselines update needs at least one result file (or --reported)")
    if not args.dry_run:
        writable_file("--baselines", args.baselines)
    by_section: dict[str, list[tuple[str, dict]]] = {}
    if args.reported:
        from bench.regression.accuracy import reported_documents

        by_section["accuracy"] = [(f"reported figure of {doc['recipe']}", doc) for doc in reported_documents()]
    seen: dict[object, str] = {}
    for path in args.results:
        doc = results.read(path)
        for same in results.run_identities(path, doc):  # one run given twice would count as two runs (a spread of 0)
            if same[1] in seen:
                raise UsageError(f"{same[0]} is given twice: {seen[same[1]]!r} and {path!r}; one run counts once")
            seen[same[1]] = path
        section = next((s for s, mod in OWNERS.items() if importlib.import_module(mod).is_result(doc)), None)
        if section is None:
            raise UsageError(f"{path!r} is neither a throughput (pytest-benchmark) nor a training result file")
        by_section.setdefault(section, []).append((path, doc))

    made: dict[str, dict] = {}

    def entries(data: dict) -> dict[str, dict]:  # every section's, from the file as it is under the lock
        _validate(data, args.baselines)  # an entry the gates would refuse is not written back as if it were fine
        made.update(
            (section, importlib.import_module(OWNERS[section]).baseline_entries(docs, args, existing=data[section]))
            for section, docs in by_section.items()
        )
        return dict(made)

    diff = baselines.update_sections(args.baselines, entries, dry_run=args.dry_run)
    if warning := few_runs_warning(made.get("throughput") or {}):
        print(warning, file=sys.stderr)  # only once every section was made: a bad file stays one line
    print("\n".join(diff) if diff else "no change")
    if args.dry_run:
        print("(dry run: nothing written)")
    return 0


def _validate(data: dict, path: str) -> None:
    """Every entry of every section checked, as the gates will read it: one line naming the first bad one."""
    for section, owner in OWNERS.items():
        importlib.import_module(owner).validate_entries(data[section], path)
