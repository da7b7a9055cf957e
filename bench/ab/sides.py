"""What one side of an A/B run is, parsed from its spec text.

A side is a source tree, optional package pins over the current environment, and an optional Keras
backend, joined with ``+``:

``.``                               the working tree as it is (uncommitted changes included), this venv
``git:REF``                         ``REF`` of the repository checked out in a temporary worktree
``pkg:keras==3.14.0,tensorboard==2.20.0``  the working tree in a cached uv environment with these pins
``pkg:keras==latest``               the same with the newest release of keras (resolved when prepared)
``backend:jax``                     the working tree on Keras's jax backend
``git:HEAD~3+pkg:keras==3.14.0``    the parts combine; each kind at most once

Parsing checks only the text; ``resolve`` turns a git ref into a commit (an unknown ref is a
one-line ``UsageError``); ``bench.ab.envs`` pins each ``NAME==latest`` to a version and builds the
environment.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
from pathlib import Path

from bench.backends import BACKENDS
from bench.errors import UsageError

CURRENT = "."
KINDS = ("git", "pkg", "backend")
LATEST = "latest"  # pkg:NAME==latest: the newest release uv resolves for this Python, pinned when the side is prepared


@dataclasses.dataclass(frozen=True)
class Side:
    """One side: ``ref`` (a git ref, None for the working tree), ``packages`` (pip requirement
    strings overriding the project's pins) and ``backend`` (None: the tree's default)."""

    text: str
    ref: str | None = None
    packages: tuple[str, ...] = ()
    backend: str | None = None
    commit: str | None = None  # ``ref`` resolved by ``resolve``

    @property
    def env_spec(self) -> dict:
        """What the side's environment is built from (its cache key)."""
        return {"packages": list(self.packages), "extras": self.extras}

    @property
    def extras(self) -> list[str]:
        """pyproject extras the side's environment needs: TensorFlow for CPU, and the backend's framework."""
        return ["cpu"] + ([self.backend] if self.backend in ("jax", "torch") else [])

    @property
    def latest(self) -> tuple[str, ...]:
        """The packages not pinned to one version, as uv is to resolve them: ``NAME==latest`` as its
        name (extras included), a range (``>=3.0``, ``~=3.10``, ``==3.*``) as given. Each becomes the
        newest release it admits when the side is prepared, so that an environment is cached by
        version and a new release gets its own."""
        return tuple(p.removesuffix(f"=={LATEST}") for p in self.packages if not exact(p))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def parse(text: str) -> Side:
    """A ``Side`` from its spec; a malformed one is a one-line ``UsageError``."""
    text = text.strip()
    if text == CURRENT:
        return Side(CURRENT)
    if not text:  # e.g. an unset "$REF": read as '.', an A/B would quietly become an A/A
        raise UsageError("a side is empty; expected '.', git:REF, pkg:NAME==VERSION|latest[,...] or backend:NAME")
    parts: dict[str, str] = {}
    for part in text.split("+"):
        kind, sep, value = part.partition(":")
        kind, value = kind.strip(), value.strip()
        if not sep or kind not in KINDS:
            raise UsageError(
                f"side {text!r}: {part!r} is not one of git:REF, pkg:NAME==VERSION|latest[,...], backend:NAME (or '.')"
                + (f"; did you mean {_guess(part.strip())}?" if not sep and part.strip() else "")
            )
        if kind in parts:
            raise UsageError(f"side {text!r} names {kind}: twice")
        if not value:
            raise UsageError(f"side {text!r}: {kind}: needs a value")
        parts[kind] = value
    packages = tuple(_requirement(text, p) for p in parts.get("pkg", "").split(",") if p.strip())
    backend = parts.get("backend")
    if backend is not None and backend not in BACKENDS:
        raise UsageError(f"side {text!r}: backend {backend!r} is invalid; valid: {', '.join(BACKENDS)}")
    return Side(text, ref=parts.get("git"), packages=packages, backend=backend)


def _guess(part: str) -> str:
    """The spec a bare ``part`` (no ``kind:``) most likely meant: a backend's name, a pin, else a git ref."""
    if part in BACKENDS:
        return f"backend:{part}"
    if any(op in part for op in ("==", ">=", "<=", "~=", "!=")):
        return f"pkg:{part}"
    return f"git:{part}"


def exact(requirement: str) -> bool:
    """Whether ``requirement`` (as ``_requirement`` normalised it) names one version: ``==X.Y.Z``
    or ``===X``, not a range, a wildcard or ``==latest``."""
    from packaging.requirements import Requirement

    if requirement.endswith(f"=={LATEST}"):
        return False
    specs = list(Requirement(requirement).specifier)
    return len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version


def _requirement(side: str, text: str) -> str:
    """A pinned requirement (``name==version``, ``name>=...`` etc.) or ``name==latest``, normalised."""
    from packaging.requirements import InvalidRequirement, Requirement

    name, sep, version = text.strip().partition("==")
    latest = sep and version.strip().lower() == LATEST
    try:
        req = Requirement(name if latest else text.strip())
    except InvalidRequirement as e:
        reason = str(e).splitlines()[0]  # packaging's message goes on to draw a caret under the text
        raise UsageError(f"side {side!r}: {text.strip()!r} is not a package requirement ({reason})") from None
    if latest:
        if req.specifier or req.marker or req.url:
            raise UsageError(f"side {side!r}: {text.strip()!r}: ==latest takes a bare name (e.g. keras==latest)")
        return f"{req}=={LATEST}"
    if not req.specifier:
        raise UsageError(f"side {side!r}: {text.strip()!r} needs a version (e.g. {req.name}==X.Y.Z or ==latest)")
    return str(req)


def git(repo: Path, *args: str, check: bool = True) -> str:
    """stdout of ``git args`` in ``repo``; a failure is a one-line ``UsageError`` when ``check``."""
    out = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
    if check and out.returncode != 0:
        msg = (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1]
        raise UsageError(f"git {' '.join(args)} in {str(repo)!r}: {msg}")
    return out.stdout.strip()


def resolve(side: Side, repo: Path) -> Side:
    """``side`` with its git ref resolved to a commit of ``repo``; an unknown ref is a ``UsageError``."""
    if side.ref is None:
        return side
    out = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{side.ref}^{{commit}}"], cwd=repo, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise UsageError(f"side {side.text!r}: {side.ref!r} is not a commit of the repository at {str(repo)!r}")
    return dataclasses.replace(side, commit=out.stdout.strip())


def spec_hash(spec: dict) -> str:
    """A short stable hash of an environment spec (the cache directory's name)."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
