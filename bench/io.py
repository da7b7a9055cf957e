"""Reading and atomically writing the harness's JSON files."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from bench.errors import UsageError, first_line


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on a clean exit it is fsynced and renamed over
    ``path`` (with the replaced file's mode), so readers never see a half-written file and a crash
    keeps the old one. On an error the temporary file is removed and ``path`` is untouched.
    ``suffix`` keeps the extension that writers such as matplotlib read the format from.

    A symlink is written through: its target is replaced and the link kept. A path that is not a
    regular file (a directory, a device, a FIFO, a socket) is a one-line ``UsageError``, never replaced."""
    path = Path(os.path.realpath(path))  # through a symlink (and a chain of them) to the file it names
    _check_regular(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        _keep_mode(Path(tmp), path)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as JSON to ``path`` atomically (``atomic_path``). NaN and Inf are rejected
    (strict JSON cannot spell them): record a failed value as an error."""
    text = _json_text(data)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def _json_text(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False, allow_nan=False, default=_default) + "\n"


class FileClaim:
    """One run's output file, named by ``template`` with ``{time}`` (the run's start, to the second)
    and ``fields`` filled in. Two runs started in the same second must not write one file: when the
    template holds ``{time}``, the run's first write moves its file in only where no file is
    (``os.link`` fails on one that exists), else takes ``<time>-2``, ``<time>-3``, ... (as
    ``claim_directory`` does for directories); its later writes replace its own file. A template
    without ``{time}`` names the user's choice of file, replaced as ``write_json`` replaces it.
    ``path`` is the file written (before the first write: the name it will have if free)."""

    def __init__(self, template: str, *, stamp: str | None = None, **fields: str):
        import string
        import time

        self.template, self.fields = template, fields
        self.stamp = stamp or time.strftime("%Y%m%dT%H%M%S")
        self.path = fill_template(template, stamp=self.stamp, **fields)
        self.claimed = "time" not in {n for _, n, _, _ in string.Formatter().parse(template)}

    def write_json(self, data: Any) -> Path:
        """Write ``data`` as JSON (``write_json``'s rules) to this run's file; returns its path."""
        text = _json_text(data)
        return self.write(lambda tmp: tmp.write_text(text))

    def write(self, fill: Callable[[Path], object], *, suffix: str = ".tmp") -> Path:
        """Write this run's file whole: ``fill(tmp)`` writes a temporary file (named with ``suffix``,
        whose extension writers such as matplotlib read the format from), which then becomes the file,
        as ``atomic_path`` or, on the first write of a ``{time}`` template, ``_create_new`` moves it in."""
        if self.claimed:
            with atomic_path(self.path, suffix=suffix) as tmp:
                fill(tmp)
            return self.path
        import itertools

        for attempt in itertools.count(1):
            path = fill_template(
                self.template, stamp=self.stamp if attempt == 1 else f"{self.stamp}-{attempt}", **self.fields
            )
            if _create_new(path, fill, suffix=suffix):
                self.path, self.claimed = path, True
                return path
        raise AssertionError("unreachable")


def _create_new(path: Path, fill: Callable[[Path], object], *, suffix: str = ".tmp") -> bool:
    """``path`` written whole by ``fill(tmp)`` if no file is there (True), else untouched (False): the
    content goes to a temporary file first, linked in under ``path`` (where the file system has no hard
    links: the name reserved with ``O_EXCL``, then the file renamed over it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        fill(Path(tmp))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        _keep_mode(Path(tmp), path)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError:  # no hard links here
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                return False
            os.replace(tmp, path)
        return True
    finally:
        Path(tmp).unlink(missing_ok=True)


def _check_regular(path: Path, flag: str | None = None) -> None:
    """A one-line ``UsageError`` when ``path`` exists and is not a regular file: replacing it would
    turn a device, FIFO or socket into a file (or fail on a directory)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:  # missing (a new file), or not reachable: the write says what is wrong
        return
    if not stat.S_ISREG(mode):
        what = "a directory" if stat.S_ISDIR(mode) else "not a regular file (a device, FIFO or socket)"
        named = f"{flag} {str(path)!r}" if flag else repr(str(path))
        raise UsageError(f"{named} is {what}; expected a regular file or a new file name")


def _keep_mode(tmp: Path, path: Path) -> None:
    """Give the file about to replace ``path`` its mode (mkstemp makes 0600), else the umask's."""
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    os.chmod(tmp, mode)


def save_figure(fig, path: str | os.PathLike | FileClaim, *, dpi: int = 100) -> Path:
    """Save a matplotlib figure as PNG atomically (``atomic_path``; a ``FileClaim``: as it writes) and
    close it, whatever happens; returns the path written."""
    import matplotlib.pyplot as plt

    try:
        if isinstance(path, FileClaim):
            return path.write(lambda tmp: fig.savefig(tmp, dpi=dpi), suffix=".png")
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=dpi)
    finally:
        plt.close(fig)
    return Path(path)


def read_json(path: str | os.PathLike, *, what: str = "file") -> Any:
    """Load JSON, turning a missing or corrupt file, or one that is not a regular file (a FIFO would
    wait for a writer for ever), into a one-line ``UsageError``."""
    path = Path(path)
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise UsageError(
                f"{what} {str(path)!r} is not a regular file (a directory, device or FIFO); expected a JSON file"
            )
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{what} {str(path)!r} does not exist") from None
    except OSError as e:
        raise UsageError(f"cannot read {what} {str(path)!r}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise UsageError(f"{what} {str(path)!r} is not UTF-8 text (byte {e.start}: {e.reason})") from None
    try:
        return json.loads(text, parse_int=_json_int)
    except json.JSONDecodeError as e:
        raise UsageError(
            f"{what} {str(path)!r} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})"
        ) from None
    except _HugeInteger as e:
        raise UsageError(
            f"{what} {str(path)!r} holds the integer {e.args[0][:20]}... ({len(e.args[0])} digits), beyond any "
            "number a result or baselines file records; expected a number within float's range (about 1.8e308)"
        ) from None


class _HugeInteger(ValueError):
    """An integer in a JSON file beyond float's range: no field of the harness's files can hold one,
    and every check that compares it with a float (``math.isfinite``, ``float()``) would overflow."""


def _json_int(text: str) -> int:
    """``json.loads``' ``parse_int``: ``text`` as an int, refused (``_HugeInteger``) beyond float's range,
    before ``int()`` meets Python's 4,300-digit limit on converting a string."""
    if len(text.lstrip("-")) > 309:  # at least 1e309: past float's largest (about 1.8e308)
        raise _HugeInteger(text)
    value = int(text)
    try:
        float(value)
    except OverflowError:
        raise _HugeInteger(text) from None
    return value


def writable_dir(flag: str, path: str | os.PathLike) -> Path:
    """``path`` if the harness can make it (where missing) and write into it; else a one-line
    ``UsageError`` naming ``flag``. Every output is checked so before any work starts."""
    return _writable(flag, Path(path), Path(path), "is not a writable directory")


def writable_file(flag: str, path: str | os.PathLike) -> Path:
    """``path`` as a file the harness can (atomically) write: not a directory, in a writable one."""
    path = Path(path)
    if path.is_dir() or str(path).endswith(os.sep):
        raise UsageError(f"{flag} {str(path)!r} is a directory; expected a file name")
    _check_regular(path, flag)
    _writable(flag, Path(os.path.realpath(path)).parent, path, "cannot be written")
    return path


def fill_template(template: str, *, stamp: str | None = None, **fields: str) -> Path:
    """An output path from ``template`` with ``{time}`` (``stamp``, by default now) and ``fields``
    filled in; an unknown or malformed placeholder, or one that reaches inside its field
    (``{time.year}``, ``{time[0]}``), is a one-line ``UsageError`` naming what it may hold."""
    import string
    import time

    names = ("time", *fields)
    may = " and ".join(f"{{{k}}}" for k in names)
    try:
        unknown = [n for _, n, _, _ in string.Formatter().parse(template) if n is not None and n not in names]
        if unknown:
            raise UsageError(f"{template!r} is an invalid file name template ({{{unknown[0]}}}); it may hold {may}")
        return Path(template.format(time=stamp or time.strftime("%Y%m%dT%H%M%S"), **fields))
    except ValueError as e:  # '{', '{time!x}', '{time:%}'
        raise UsageError(
            f"{template!r} is an invalid file name template ({first_line(e)}); it may hold {may}"
        ) from None


def claim_directory(template: str, stamp: str) -> Path:
    """The directory ``template`` names with ``{time}`` as ``stamp``, made now. When the template
    holds ``{time}`` and that directory exists (another run began in the same second), the time
    becomes ``stamp-2``, ``stamp-3``, ...: each run gets a directory of its own, made by no other
    (``mkdir`` fails on one that exists). A template without ``{time}`` names one directory, which
    a rerun may write into again."""
    import itertools
    import string

    if "time" not in {n for _, n, _, _ in string.Formatter().parse(template)}:
        return fill_template(template)
    for attempt in itertools.count(1):
        path = fill_template(template, stamp=stamp if attempt == 1 else f"{stamp}-{attempt}")
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
        except OSError as e:
            raise UsageError(f"--out {str(path)!r} cannot be made ({e.strerror or e})") from None


def distinct_outputs(
    outputs: Sequence[tuple[str, str | os.PathLike]], inputs: Sequence[str | os.PathLike] = ()
) -> None:
    """A one-line ``UsageError`` when an output (``(flag, path)``) is one of the ``inputs`` or another
    output's file (``x.json``, ``./x.json``, a symlink or a hard link to it are one file): a command
    must not write over what it reads, nor one of its outputs over another."""
    seen: list[tuple[str, str]] = [(os.fspath(p), f"the input {os.fspath(p)!r}") for p in inputs]
    for flag, path in outputs:
        for other, what in seen:
            if _same_file(path, other):
                raise UsageError(f"{flag} {os.fspath(path)!r} is {what}: give the output a path of its own")
        seen.append((os.fspath(path), f"the file {flag} writes"))


def _same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)  # hard links
    except OSError:  # one of them does not exist (yet)
        return False


def png_file(flag: str, path: str | os.PathLike) -> Path:
    """``writable_file`` for a figure: its name must end in ``.png``, the format it is written in."""
    path = writable_file(flag, path)
    if path.suffix.lower() != ".png":
        raise UsageError(f"{flag} {str(path)!r} is not a .png file name; the figure is written as PNG")
    return path


def _writable(flag: str, directory: Path, named: Path, problem: str) -> Path:
    """Whether ``directory`` can be made and written, tried on its nearest existing ancestor (a
    temporary file made there and removed), so that a check leaves nothing behind."""
    existing = directory.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(20, f"{existing} is a file")
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as e:
        raise UsageError(f"{flag} {str(named)!r} {problem} ({e.strerror or e})") from None
    return named


def _default(obj: Any) -> Any:
    # numpy scalars and arrays, tuples inside dataclasses, paths
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (Path, os.PathLike)):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")
