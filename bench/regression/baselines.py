"""baselines.json: the recorded numbers every gate compares against.

Top level: ``{"schema": 1, "throughput": {...}, "accuracy": {...}, "ab_calibration": {...}}``. Each
section maps a key to an entry; the section's owner (``bench.regression.throughput`` for throughput,
``bench.regression.accuracy`` for accuracy) validates its entries; the A/A thresholds keyed by device
class and design, which ``python -m bench ab --calibrate`` writes and both ``ab`` and ``compare`` read,
are checked here (``check_calibrations``). Baselines change only through ``python -m
bench baselines update`` and ``ab --calibrate``; an update holds a lock from its read to its one
atomic write, so concurrent updates never lose one another's entries.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from bench.environment import REPO_ROOT
from bench.errors import BaselinesError, UsageError
from bench.io import read_json, write_json
from bench.results import non_finite

SCHEMA = 1
SECTIONS = ("throughput", "accuracy", "ab_calibration")
DEFAULT_PATH = REPO_ROOT / "baselines.json"


def load(path: str | Path = DEFAULT_PATH) -> dict:
    """The whole file, validated at the top level; any problem is a ``BaselinesError``."""
    check_path(path)
    try:
        data = read_json(path, what="baselines file")
    except UsageError as e:
        raise BaselinesError(str(e)) from None
    if not isinstance(data, dict):
        raise BaselinesError(f"baselines file {str(path)!r} must hold a JSON object, not {type(data).__name__}")
    if data.get("schema") != SCHEMA:
        raise BaselinesError(
            f"baselines file {str(path)!r} has schema {data.get('schema')!r}; this harness reads schema {SCHEMA}"
        )
    unknown = set(data) - {"schema", *SECTIONS}
    if unknown:
        raise BaselinesError(
            f"baselines file {str(path)!r} has unknown section(s) {sorted(unknown)}; valid: {list(SECTIONS)}"
        )
    for section in SECTIONS:
        entries = data.setdefault(section, {})
        if not isinstance(entries, dict) or not all(isinstance(v, dict) for v in entries.values()):
            raise BaselinesError(f"baselines file {str(path)!r}: section {section!r} must map keys to objects")
        check_finite(entries, f"baselines file {str(path)!r}: {section}")
    check_calibrations(data["ab_calibration"], path)
    return data


def check_path(path: str | Path) -> Path:
    """``path`` as a ``Path``; an empty one is a ``BaselinesError``, not the current directory
    (``Path("")`` is ``.``), which a message would then name instead of what was given."""
    if not str(path):
        raise BaselinesError(
            f"baselines file '' names no file; expected the path of a JSON file (default: {DEFAULT_PATH.name})"
        )
    return Path(path)


def check_finite(entries: dict, where: str) -> None:
    """No NaN or Inf in any field of any entry (``bench.results.non_finite``), checked or not: JSON
    has none, so ``show`` would print what is not JSON, ``update`` could not write the file back, and
    a gate would compare against it."""
    for key, entry in entries.items():
        if (bad := non_finite(entry)) is not None:
            parent, field, value = bad
            raise BaselinesError(
                f"{where}/{key}{'.' + parent if parent else ''}: field {field!r} is {value!r}; expected a finite number"
            )


def check_calibrations(entries: dict, path: str | Path) -> None:
    """Each ``ab_calibration`` entry: a threshold, a fraction from 0 to 1, and the throughput options,
    interleave and cases its A/A ran (what a run must share for the threshold to count)."""
    for key, entry in entries.items():
        where = f"baselines file {str(path)!r}: ab_calibration[{key!r}]"
        t = entry.get("threshold")
        if isinstance(t, bool) or not isinstance(t, int | float) or not 0 <= t < 1:  # NaN too
            raise BaselinesError(f"{where}.threshold is {t!r}; expected a fraction from 0 to 1")
        args = entry.get("throughput_args")
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise BaselinesError(f"{where}.throughput_args is {args!r}; expected a list of strings")
        if not isinstance(entry.get("interleave", ""), str):
            raise BaselinesError(f"{where}.interleave is {entry['interleave']!r}; expected a string")
        if not isinstance(entry.get("cases", {}), dict):
            raise BaselinesError(f"{where}.cases is {entry['cases']!r}; expected the A/A's cases by key")
        if calibration_rounds(entry) is None:
            raise BaselinesError(f"{where}.throughput_args is {args!r}; expected --rounds to be a positive integer")


def calibration_key(device_class: str, design: dict) -> str:
    """baselines.json's ``ab_calibration`` key of one A/A: its device class and its design (the
    interleave and the throughput options every process got), so that each design keeps its own
    threshold: an A/A with turns for ``ab`` and one between processes for ``compare`` live side by side."""
    return " | ".join([device_class, design.get("interleave") or "", " ".join(design.get("throughput_args") or [])])


def calibration_rounds(entry: dict) -> int | None:
    """The rounds each process of an A/A timed: its ``--rounds``, read as ``bench throughput`` reads
    it (the throughput default when not given); None when that is not a positive integer."""
    from bench.throughput.plan import OPTIONS

    parser = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    parser.add_argument("--rounds", **OPTIONS["--rounds"])
    try:
        rounds = parser.parse_known_args(list(entry.get("throughput_args") or []))[0].rounds
    except argparse.ArgumentError:
        return None
    return rounds if rounds > 0 else None


def calibration_device_class(key: str) -> str:
    """The device class of an ``ab_calibration`` key (``calibration_key``; before it, the device class alone)."""
    return key.split(" | ", 1)[0]


def section(path: str | Path, name: str) -> dict:
    """One section's entries."""
    return load(path)[name]


@contextlib.contextmanager
def locked(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock for a read-modify-write of ``path``, so that two concurrent updates
    both land, one after the other. The lock is ``flock`` on the directory that holds the file:
    the file itself is replaced by each write, and a directory needs no lock file left behind. A
    symlinked file is locked where its target is, which is where the write goes (``bench.io``)."""
    directory = Path(os.path.realpath(path)).parent
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        raise BaselinesError(f"cannot lock baselines file {str(path)!r}: {e.strerror or e}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _make_folder(path: Path) -> list[Path]:
    """Make the folder of ``path`` and the folders above it that are missing; returns those made,
    deepest first. A folder that cannot be made is a ``BaselinesError``."""
    missing = [f for f in path.absolute().parents if not f.exists()]
    try:
        path.absolute().parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BaselinesError(f"cannot make the folder of baselines file {str(path)!r}: {e.strerror or e}") from None
    return missing


def update_sections(
    path: str | Path, make: Callable[[dict], dict[str, dict[str, dict]]], *, dry_run: bool = False
) -> list[str]:
    """Under the lock: read the file, ``make(data)`` the new entries of every section from it
    (``{section: {key: entry}}``, an entry of None removing its key; it may raise, and then nothing is
    written), merge them and write the file once, atomically. Returns a readable diff."""
    path = check_path(path)
    real = Path(os.path.realpath(path))  # a symlink's target: where the lock is taken and the write goes
    made = [] if dry_run else _make_folder(real)  # like every output's, a new file's folder is made
    with locked(path) if real.parent.is_dir() else contextlib.nullcontext():  # dry run: no file
        data = load(path) if path.exists() else {"schema": SCHEMA, **{s: {} for s in SECTIONS}}
        try:
            new = make(data)
        except BaseException:
            for folder in made:  # nothing written: the folders made for it go too
                folder.rmdir()
            raise
        diff = []
        for name, entries in new.items():
            if name not in SECTIONS:
                raise UsageError(f"baselines section {name!r} is invalid; valid: {list(SECTIONS)}")
            old = data[name]
            for key, entry in sorted(entries.items()):
                if key in old and old[key] != entry:
                    diff.append(f"- {name}/{key}: {json.dumps(old[key], sort_keys=True)}")
                if entry is not None and old.get(key) != entry:
                    diff.append(f"+ {name}/{key}: {json.dumps(entry, sort_keys=True)}")
        if not dry_run and diff:
            merged = {
                name: {k: e for k, e in {**data[name], **entries}.items() if e is not None}
                for name, entries in new.items()
            }
            write_json(path, {**data, **merged})
    return diff


def update(path: str | Path, name: str, entries: dict[str, dict], *, dry_run: bool = False) -> list[str]:
    """Merge ``entries`` into section ``name`` and write atomically; returns a readable diff."""
    return update_sections(path, lambda _data: {name: entries}, dry_run=dry_run)
