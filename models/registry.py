"""The model registry: one dict keyed by name, filled by ``@register_model``.

Each entry records where the network comes from and what it must measure up to (dataset, default
input shape, classes, expected parameter counts, the paper's multiply-adds), so that the unit
suite is generated from the registry and a new model is covered the moment it is registered.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import inspect
import re
from collections.abc import Callable

import keras


class ModelArgumentError(ValueError):
    """A builder argument (input shape, classes, family option) that the network cannot take."""


class UnknownModelError(KeyError):
    """Raised for a name that is not registered; the message lists close matches."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about one model.

    ``params``/``trainable``: exact expected counts of the default (article) variant at the
    default input shape and classes; ``non_trainable`` is their difference (the BN moving
    statistics), derived, or checked against it when a registration gives it.
    ``paper_params`` ± ``paper_params_tol``: trainable parameters as a paper quotes them, rounded
    (0.85M ± 0.005M),
    checked on ``create(**paper_overrides)``; ``paper_macs``: the paper's multiply-adds per image,
    checked within ``macs_rtol`` on the same variant.
    ``reference``: a keras.applications constructor (``"ResNet50"``) whose weights copied into
    ``create(**reference_overrides)`` must give the same outputs.
    ``weight_decay``: the L2 factor the default variant puts on its kernels, from the family's
    table; None where the model has no regularizer. Training recipes describe it from here.
    ``builder``: the family's builder that ``fn`` calls; its keyword-only arguments are the
    ``options`` that ``create`` takes (None: not known, and not checked).
    """

    name: str
    fn: Callable[..., keras.Model]
    family: str
    source: str
    dataset: str
    input_shape: tuple[int, int, int]
    classes: int
    params: int | None = None
    trainable: int | None = None
    non_trainable: int | None = None
    paper_params: float | None = None
    paper_params_tol: float = 0.0
    paper_macs: float | None = None
    macs_rtol: float = 0.05
    paper_overrides: dict = dataclasses.field(default_factory=dict)
    reference: str | None = None
    reference_overrides: dict = dataclasses.field(default_factory=dict)
    weight_decay: float | None = None
    builder: Callable[..., keras.Model] | None = None
    description: str = ""

    def __post_init__(self):
        if self.params is None or self.trainable is None:
            return
        derived = self.params - self.trainable
        if self.non_trainable is not None and self.non_trainable != derived:
            raise ValueError(
                f"model {self.name!r}: non_trainable={self.non_trainable:,} but params - trainable = {derived:,}"
            )
        object.__setattr__(self, "non_trainable", derived)

    @property
    def options(self) -> tuple[str, ...] | None:
        """The overrides ``create`` takes, in the builder's order; None when no builder is registered."""
        if self.builder is None:
            return None
        params = inspect.signature(self.builder).parameters.values()
        return tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)

    def check_overrides(self, overrides) -> None:
        """A ``ModelArgumentError`` naming the first override that is not one of ``options``, and the valid
        ones: a typo, or an argument the model's name fixes (``depth`` of ``resnet20``). Values are
        checked by the builder."""
        options = self.options
        if options is None:
            return
        unknown = [key for key in overrides if key not in options]
        if unknown:
            raise ModelArgumentError(
                f"{self.name}: {unknown[0]!r} is not an option of this model; valid: {', '.join(options)}"
            )

    def create(self, **overrides) -> keras.Model:
        self.check_overrides(overrides)
        kwargs = {"input_shape": self.input_shape, "classes": self.classes, "name": self.name}
        kwargs.update(overrides)
        return self.fn(**kwargs)


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    *, family: str, source: str, dataset: str, input_shape: tuple[int, int, int], classes: int, **meta
) -> Callable[[Callable[..., keras.Model]], Callable[..., keras.Model]]:
    """Decorator: register ``fn`` under its own name with the given metadata.

    ``fn`` takes keyword-only overrides (``input_shape``, ``classes``, ``name`` and the family's
    options) and returns a fresh ``keras.Model``. Registering a name twice is an error.
    """

    def decorate(fn: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
        name = fn.__name__
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered (by {_REGISTRY[name].fn.__module__})")
        doc = (fn.__doc__ or "").strip().splitlines()
        _REGISTRY[name] = ModelSpec(
            name=name,
            fn=fn,
            family=family,
            source=source,
            dataset=dataset,
            input_shape=tuple(input_shape),
            classes=classes,
            description=doc[0] if doc else "",
            **meta,
        )
        return fn

    return decorate


def get_spec(name: str) -> ModelSpec:
    """The registered spec for ``name``; an unknown name raises with the closest matches."""
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), _REGISTRY, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; valid: {', '.join(list_models())}"
        raise UnknownModelError(f"unknown model {name!r}{hint}") from None


def create(model_name: str, /, **overrides) -> keras.Model:
    """A fresh, randomly initialised ``keras.Model`` for a registered ``name``.

    Overrides are passed to the builder: ``input_shape``, ``classes``, ``classifier_activation``,
    ``name`` and any family option (``shortcut``, ``stride_in``, ``alpha`` ...).
    """
    return get_spec(model_name).create(**overrides)


def list_models(pattern: str | list[str] | tuple[str, ...] = "*") -> list[str]:
    """Sorted registered names matching a glob (or any of several globs)."""
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    return sorted((n for n in _REGISTRY if any(fnmatch.fnmatchcase(n, p) for p in patterns)), key=_natural)


def select(text: str) -> list[str]:
    """The registered names that ``text`` names: comma-separated names or globs, in order, each once.
    A glob that matches nothing, an unknown name (with the closest matches) or no name at all is an
    ``UnknownModelError``: a typo must never widen into every model, nor narrow into none."""
    valid = f"matches no registered model; valid: {', '.join(list_models())}"
    names: list[str] = []
    for pattern in (p.strip() for p in str(text).split(",") if p.strip()):
        found = list_models(pattern)
        if not found:
            if not any(ch in pattern for ch in "*?["):
                get_spec(pattern)  # a name, not a glob: unknown, with its closest matches
            raise UnknownModelError(f"{pattern!r} {valid}")
        names += [n for n in found if n not in names]
    if not names:
        raise UnknownModelError(f"{text!r} {valid}")
    return names


def _natural(name: str) -> list:
    """Sort key that puts resnet20 before resnet110."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]
