"""Environments for ``pkg:`` sides: a uv virtual environment per spec, cached by the spec's hash.

The environment holds the project's own pins (pyproject's dependencies, pytest-benchmark among
them, and the side's extras) with the side's packages overriding them (``uv pip install
--override``), and not the project itself: each side runs its own tree's code from that tree. It
lives in ``~/.cache/cnn-bench/ab-envs/<hash>/`` (``$CNN_BENCH_CACHE`` moves the root); a file
``cnn-bench-env.json`` written last marks it complete and records what was installed, so a second
run reuses it at once and a half-built or damaged one is rebuilt. A version that does not resolve,
or a name nothing installs, is a one-line ``UsageError``. ``pin_latest`` first turns each ``NAME==latest``, and each range such as
``NAME>=3.0``, into the newest release uv resolves for this interpreter (``uv pip compile --no-deps``, no pre-releases), so the cache is keyed
by the version, and a new release gets an environment of its own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

from bench.ab.sides import LATEST, Side, spec_hash
from bench.environment import REPO_ROOT
from bench.errors import UsageError
from bench.io import read_json, write_json

MARKER = "cnn-bench-env.json"


def cache_root() -> Path:
    return Path(os.environ.get("CNN_BENCH_CACHE") or Path.home() / ".cache" / "cnn-bench") / "ab-envs"


def project_requirements(extras: list[str], pyproject: Path = REPO_ROOT / "pyproject.toml") -> list[str]:
    """The project's pinned requirements with ``extras``."""
    project = tomllib.loads(pyproject.read_text())
    optional = project["project"].get("optional-dependencies", {})
    reqs = list(project["project"]["dependencies"])
    for extra in extras:
        reqs += optional.get(extra, [])
    return reqs


def spec(side: Side, python: str = sys.executable) -> dict:
    """Everything the environment depends on: the pins, the overrides and the interpreter."""
    version = subprocess.run(
        [python, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True, text=True
    )
    return {
        "python": version.stdout.strip(),
        "requirements": project_requirements(side.extras),
        "overrides": list(side.packages),
    }


def pin_latest(side: Side, *, run: Callable = subprocess.run, python: str = sys.executable, log=print) -> Side:
    """``side`` with each ``NAME==latest`` and each range (``Side.latest``) pinned to the newest
    release it admits that installs on ``python``; one uv cannot resolve is a one-line ``UsageError``."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    if not side.latest:
        return side
    names = "\n".join(side.latest) + "\n"
    out = _uv(
        run,
        side,
        "pip",
        "compile",
        "-",
        "--no-deps",
        "--no-header",
        "--no-annotate",
        "--quiet",
        "--python",
        python,
        input=names,
    )
    newest = {canonicalize_name(r.name): str(r.specifier) for r in map(Requirement, _lines(out)) if r.specifier}
    pinned = []
    for package in side.packages:
        if package.removesuffix(f"=={LATEST}") not in side.latest:
            pinned.append(package)
            continue
        req = Requirement(package.removesuffix(f"=={LATEST}"))
        version = newest.get(canonicalize_name(req.name))
        if version is None:
            raise UsageError(f"side {side.text!r}: uv pip compile named no version of {str(req)!r}")
        extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
        pinned.append(f"{req.name}{extras}{version}" + (f"; {req.marker}" if req.marker else ""))
    log(
        f"cnn-bench ab: {side.text} pins {', '.join(p for p in pinned if p not in side.packages)} (the newest releases they admit)"
    )
    return dataclasses.replace(side, packages=tuple(pinned))


def _lines(text: str) -> list[str]:
    """The requirement lines of ``uv pip compile``'s output (no blank lines, no comments)."""
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def ensure(side: Side, *, run: Callable = subprocess.run, root: Path | None = None, log=print) -> dict:
    """The side's environment, built if needed: ``{"python": path, "hash", "cached": bool, "packages": {...}}``.

    A cached entry counts only when its record is whole and its interpreter is there; a damaged one
    is rebuilt (the log says so). One build of a spec at a time: a lock file per spec serialises two
    runs that want it (the second then reuses the first's). Every ``pkg:`` requirement must be
    installed as asked: uv's ``--override`` drops one for a package nothing requires (a misspelt
    name), which would quietly make the A/B an A/A; such an environment is removed and the side is a
    one-line ``UsageError``."""
    env_spec = spec(side)
    key = spec_hash(env_spec)
    path = (root or cache_root()) / key
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path.parent / f"{key}.lock"):
        record = _cached(path, key, log=log)
        if record is not None:
            return {**record, "cached": True}
        if path.exists():
            shutil.rmtree(path)  # a build that did not finish, or a damaged one
        path.mkdir(parents=True)
        log(f"cnn-bench ab: building the environment for {side.text!r} in {path} (uv; cached for next time)")
        (path / "requirements.txt").write_text("\n".join(env_spec["requirements"]) + "\n")
        (path / "overrides.txt").write_text("\n".join(env_spec["overrides"]) + "\n")
        venv = path / "venv"
        python = venv / "bin" / "python"
        _uv(run, side, "venv", "--quiet", "--python", sys.executable, str(venv))
        _uv(
            run,
            side,
            "pip",
            "install",
            "--quiet",
            "--compile-bytecode",  # each of the side's processes imports its framework: no recompiling it
            "--python",
            str(python),
            "-r",
            str(path / "requirements.txt"),
            "--override",
            str(path / "overrides.txt"),
        )
        frozen = _uv(run, side, "pip", "freeze", "--python", str(python))
        packages = dict(line.split("==", 1) for line in frozen.splitlines() if "==" in line)
        direct = {ln.split(" @ ", 1)[0].strip(): "" for ln in frozen.splitlines() if " @ " in ln}  # URL installs
        if refused := _not_installed(side, {**direct, **packages}):
            shutil.rmtree(path, ignore_errors=True)
            raise UsageError(refused)
        record = {"python": str(python), "hash": key, "spec": env_spec, "packages": packages}
        write_json(marker_path(path), record)
    return {**record, "cached": False}


def marker_path(path: Path) -> Path:
    return path / MARKER


def _cached(path: Path, key: str, *, log=print) -> dict | None:
    """The record of a complete environment at ``path``, or None (logging why a present one is rebuilt)."""
    marker = marker_path(path)
    if not marker.exists():
        if path.exists():
            log(f"cnn-bench ab: the environment in {path} was not finished; rebuilding it")
        return None
    try:
        record = read_json(marker, what="environment record")
    except UsageError as e:
        why = str(e)
    else:
        why = _damage(record, key)
        if why is None:
            return record
    log(f"cnn-bench ab: the environment in {path} is damaged ({why}); rebuilding it")
    return None


def _damage(record, key: str) -> str | None:
    """What is wrong with an environment record, or None."""
    if not isinstance(record, dict):
        return "its record is not an object"
    python, packages = record.get("python"), record.get("packages")
    if not isinstance(python, str) or not isinstance(packages, dict) or record.get("hash") != key:
        return "its record lacks the interpreter, the packages or the hash"
    if not os.access(python, os.X_OK):
        return f"its interpreter {python} is missing"
    return None


@contextlib.contextmanager
def _locked(lock: Path):
    """An exclusive lock on ``lock`` while the block runs (waits for another holder)."""
    import fcntl

    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _not_installed(side: Side, packages: dict[str, str]) -> str | None:
    """The one line refusing a ``pkg:`` requirement the built environment does not hold as asked (None: all do)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    installed = {canonicalize_name(name): version for name, version in packages.items()}
    for package in side.packages:
        req = Requirement(package)
        have = installed.get(canonicalize_name(req.name))
        if have is None:
            return (
                f"side {side.text!r}: {req.name!r} is not installed (no package of the project requires it: a"
                f" misspelt name?); pkg: overrides packages the environment installs, e.g. keras, tensorflow-cpu"
            )
        if have and req.specifier and not req.specifier.contains(have, prereleases=True):
            return f"side {side.text!r}: {package!r} asked, but {req.name} {have} was installed"
    return None


def _uv(run: Callable, side: Side, *args: str, input: str | None = None) -> str:
    uv = shutil.which("uv")
    if uv is None:
        raise UsageError(
            f"side {side.text!r} needs uv to build its environment; install it (https://docs.astral.sh/uv/)"
        )
    out = run([uv, *args], capture_output=True, text=True, input=input)
    if out.returncode != 0:
        raise UsageError(
            f"side {side.text!r}: uv {args[0]} {args[1] if len(args) > 1 else ''} failed: {_reason(out.stderr)}"
        )
    return out.stdout


def _reason(stderr: str) -> str:
    """uv's reason on one line: its 'Because ...' sentence where there is one."""
    lines = [ln.strip(" ×╰─▶│").removeprefix("cause:").strip() for ln in stderr.splitlines()]
    lines = [ln for ln in lines if ln]
    because = [ln for ln in lines if ln.lower().startswith(("because", "no solution", "error"))]
    return " ".join((because or lines or ["no output"])[:2])[:300]
