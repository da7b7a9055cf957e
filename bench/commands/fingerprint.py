"""``python -m bench fingerprint RECIPE [train options] [--check | --record]``: what a training run of
RECIPE would be produced by (``bench.fingerprint``: resolved recipe, model configuration, data
settings, versions), without training it.

``--check`` compares it with the accuracy baseline the run would be gated against and exits 1 when
the recipe, model or data differ (in seconds, before a long training run); ``--record`` stores it
in an entry measured before fingerprints existed (never over a different one: re-measure instead).
"""

from __future__ import annotations

import argparse
import json
import sys

from bench.errors import UsageError
from bench.io import distinct_outputs, writable_file, write_json
from bench.regression import accuracy, baselines
from bench.training import options
from bench.training import recipes as recipes_mod

# train's options that change what a run is produced by, but not the baseline entry it is gated
# against (--budget, --device, --backend and --mock change the key): --record never stores them
RECORD_REFUSES = ("--set", "--precision", "--deterministic", "--steps-per-execution", "--cpu-replicas")

# train's options that what a run is produced by does not depend on. Where it runs (the cluster
# flags) is refused: fingerprint reads the data and builds the model in one process. The others are
# accepted, so that one command line serves train and fingerprint (`nox -s smoke -- --out D --fresh`),
# and each is named on stderr as ignored, never silently.
IGNORED = {
    "--out": "fingerprint trains nothing and writes no result there (--json writes the fingerprint)",
    "--fresh": "fingerprint trains nothing and reads no checkpoint",
    "--plot": "fingerprint trains nothing and has no learning curve",
    "--eager": "fingerprint builds the model and runs no step",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help=f"recipe name ({', '.join(sorted(recipes_mod.RECIPES))})")
    options.add_arguments(parser)
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--check", action="store_true", help="compare with the baseline entry; exit 1 if it differs")
    action.add_argument("--record", action="store_true", help="store it in a baseline entry that has none")
    parser.add_argument(
        "--baselines", default=str(baselines.DEFAULT_PATH), help="baselines file (default: %(default)s)"
    )
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the fingerprint as JSON")


def ignored(opts: options.Options) -> list[str]:
    """A note for each of train's options given that fingerprint ignores (``IGNORED``); a cluster flag
    is a one-line ``UsageError``."""
    notes = []
    for flag in (*options.CLUSTER_FLAGS, *IGNORED):
        value = getattr(opts, options.dest(flag))
        if value == options.Options.__dataclass_fields__[options.dest(flag)].default:
            continue
        shown = flag if isinstance(value, bool) else f"{flag} {value}"
        if flag not in IGNORED:  # what a run would be produced by does not depend on where it runs
            raise UsageError(f"{shown} is train's: fingerprint reads the data and builds the model in one process")
        notes.append(f"fingerprint: {shown} is train's and ignored here: {IGNORED[flag]}")
    return notes


def run(args: argparse.Namespace) -> int:
    from bench.training.loop import fingerprint_of

    opts = options.Options.from_args(args)
    notes = ignored(opts)
    if args.record:
        _check_unmodified(opts)
    if args.json is not None:
        if not args.json:
            raise UsageError("--json '' names no file; expected a file name")
        writable_file("--json", args.json)  # before the data is read
        distinct_outputs([("--json", args.json)], [args.baselines, *([opts.archive] if opts.archive else [])])
    entries = accuracy.load_entries(args.baselines) if args.check or args.record else {}
    doc = fingerprint_of(args.recipe, opts)
    for note in notes:  # once the inputs are checked: a bad one stays one line
        print(note, file=sys.stderr)
    key = accuracy.key_of(doc)
    fp = doc["fingerprint"]
    print(f"{key}: fingerprint {fp['digest']} ({_summary(fp)})")
    if args.json is not None:
        write_json(args.json, {"key": key, "fingerprint": fp})
    if not (args.check or args.record):
        return 0
    matched, entry = accuracy.lookup(entries, key)
    if entry is None:
        print(f"fingerprint: no baseline entry for {key}: FAIL")
        return 1
    if args.record:
        return _record(args.baselines, matched, fp)
    if not entry.get("fingerprint"):
        print(f"fingerprint: the baseline {matched} has no fingerprint (record it with --record): FAIL")
        return 1
    from bench import fingerprint

    found, notes = fingerprint.changes_and_notes(fingerprint.differences(entry["fingerprint"], fp))
    for part, lines in found.items():
        print(f"  {part} changed: {', '.join(lines)}")
    for note in notes:
        print(f"  {note}")
    verdict = "CHANGED: re-measure the baseline if intended" if found else "PASS"
    print(f"fingerprint: {'differs from' if found else 'matches'} the baseline's ({matched}): {verdict}")
    return 1 if found else 0


def _check_unmodified(opts: options.Options) -> None:
    """A one-line error when ``opts`` changes the fingerprint from that of the recipe as registered,
    run as train runs it by default: recorded, it would be the baseline's, and the unmodified runs
    gated against the entry would fail as changed (``baselines update`` refuses modified runs alike)."""
    given = []
    for flag in RECORD_REFUSES:
        value = getattr(opts, options.dest(flag))
        if value != options.Options.__dataclass_fields__[options.dest(flag)].default:
            given += [f"{flag} {v}" for v in value] if isinstance(value, tuple) else [f"{flag} {value}"]
    if given:
        raise UsageError(
            f"--record with {', '.join(given)}: that fingerprint is not the recipe's as registered, and "
            "a baseline's fingerprint must be (drop the option, or compare with --check)"
        )


def _record(path: str, key: str, fp: dict) -> int:
    """Store ``fp`` in entry ``key`` under the baselines lock (read, check, write once), so a
    concurrent update is never overwritten by an entry read before it. Over an older fingerprint
    only to add the fields it predates, with every recorded field the same, in the same environment."""
    unchanged, extended = [], []

    def make(data: dict) -> dict:
        entry = data[accuracy.SECTION][key]
        old = entry.get("fingerprint")
        if old and old.get("digest") == fp["digest"]:
            unchanged.append(key)
            return {}
        if old:
            _check_extends(key, old, fp)
            extended.append(key)
        return {accuracy.SECTION: {key: {**entry, "fingerprint": fp}}}

    baselines.update_sections(path, make)
    if unchanged:
        print(f"fingerprint: {key} already has this fingerprint; nothing written")
    else:
        print(
            f"fingerprint: recorded {fp['digest']} in {key}"
            + (" (the fields its old one predates added)" if extended else "")
        )
    return 0


def _check_extends(key: str, old: dict, fp: dict) -> None:
    """A one-line error unless ``fp`` is ``old`` with the fields ``old`` predates added."""
    from bench import fingerprint

    found = fingerprint.differences(old, fp)
    if not found.get("unrecorded") or any(k != "unrecorded" for k in found):
        what = "; ".join(f"{k}: {', '.join(v)}" for k, v in found.items() if k != "unrecorded") or "no new fields"
        raise UsageError(
            f"baseline {key} already has fingerprint {old.get('digest')}, not {fp['digest']} ({what}): "
            "re-measure the baseline (bench baselines update) instead of recording over it"
        )


def _summary(fp: dict) -> str:
    model, data = fp["model"], fp["data"]
    return (
        f"{model['params']:,} parameters in {sum(len(g['layers']) for g in model['groups'])} layers, "
        f"{data['dataset']} {data['train_examples']}/{data['test_examples']}, "
        + ", ".join(f"{k} {v}" for k, v in fp["environment"].items() if k in ("keras", "backend", "tensorflow"))
        + f"; {len(json.dumps(fp)) // 1024} KiB"
    )
