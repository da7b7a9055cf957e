"""Reading and atomically writing the harness's JSON files."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from bench.errors import UsageError


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as JSON to ``path`` atomically: a temporary file in the same directory,
    fsync, then rename, so readers never see a half-written file and a crash keeps the old one.
    NaN and Inf are rejected (strict JSON cannot spell them): record a failed value as an error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2, sort_keys=False, allow_nan=False, default=_default) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_json(path: str | os.PathLike, *, what: str = "file") -> Any:
    """Load JSON, turning a missing or corrupt file into a one-line ``UsageError``."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UsageError(f"{what} {str(path)!r} does not exist") from None
    except OSError as e:
        raise UsageError(f"cannot read {what} {str(path)!r}: {e.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"{what} {str(path)!r} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None


def finite_or_none(value: Any) -> float | None:
    """``float(value)`` when it is a finite number, else ``None`` (NaN, Inf, missing)."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _default(obj: Any) -> Any:
    # numpy scalars and arrays, tuples inside dataclasses, paths
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (Path, os.PathLike)):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")
