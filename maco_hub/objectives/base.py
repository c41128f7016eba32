"""The objective base class and its algebra: ``a + b``, ``a - b``, ``2 * a``, ``-a``, ``a / 2``.

Every operation returns a new :class:`Sum` of (weight, objective) terms; operands never change.
The concrete objectives live in :mod:`maco_hub.objectives`.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from .._numbers import FLOAT32_MAX, FLOAT32_TINY, as_finite, fits_float32
from ..errors import ConfigError
from ..models.hooks import LayerInfo

if TYPE_CHECKING:
    from ..models.loader import LoadedModel

Activations = Mapping[str, torch.Tensor]
Table = Mapping[str, LayerInfo]


class Objective:
    """Base class: metadata with defaults, algebra, and the scoring interface."""

    kind: ClassVar[str] = ""
    _METADATA: ClassVar[tuple[str, ...]] = ("layer", "unit", "class_id", "label")

    def __getattr__(self, name: str) -> Any:
        # layer / unit / class_id / label are None where a subclass has no such field. (Class
        # attributes would become dataclass defaults of the subclasses' fields.)
        if name in Objective._METADATA:
            return None
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def description(self) -> str:
        raise NotImplementedError

    @property
    def layers(self) -> frozenset[str]:
        """Layer names this objective reads."""
        return frozenset({self.layer}) if self.layer else frozenset()

    @property
    def needs_logits(self) -> bool:
        return False

    @property
    def reference_layers(self) -> frozenset[str]:
        """Layers where this objective also reads a reference image's activations
        (``acts[maco_hub.objectives.guided.reference_key(layer)]``)."""
        return frozenset()

    @property
    def reference_image(self) -> Any:
        """The image this objective compares the canvas with (an InputImage), if it brings one."""
        return None

    @property
    def image_hashes(self) -> frozenset[str]:
        """Pixel sha256 of the images this objective holds (a gallery stores them)."""
        return frozenset()

    def validate(self, loaded: LoadedModel) -> Objective:
        """Check against ``loaded``; return the resolved objective (raises on a bad one)."""
        raise NotImplementedError

    def score(self, acts: Activations, logits: torch.Tensor | None, table: Table) -> torch.Tensor:
        """Score per row (N,) to maximize, from this objective's rows of activations and logits
        (``table``: the model's layers, from :func:`maco_hub.models.hooks.layer_table`)."""
        raise NotImplementedError

    def __str__(self) -> str:
        return self.description

    def __add__(self, other: object) -> Objective:
        if isinstance(other, Objective):
            return Sum(_terms(self) + _terms(other))
        if _is_scalar(other) and other == 0:
            return self  # lets sum([a, b]) work
        return NotImplemented

    __radd__ = __add__

    def __sub__(self, other: object) -> Objective:
        if isinstance(other, Objective):
            return Sum(_terms(self) + _scaled(_terms(other), -1.0))
        return NotImplemented

    def __mul__(self, factor: object) -> Objective:
        if _is_scalar(factor):
            what = f"Cannot multiply objective {self.description!r} by {factor!r}"
            return Sum(_scaled(_terms(self), _finite(factor, what)))
        return NotImplemented

    __rmul__ = __mul__

    def __neg__(self) -> Objective:
        return self * -1.0

    def __truediv__(self, divisor: object) -> Objective:
        if _is_scalar(divisor):
            if divisor == 0:
                raise ZeroDivisionError(f"Cannot divide objective {self.description!r} by 0.")
            what = f"Cannot divide objective {self.description!r} by {divisor!r}"
            return Sum(_scaled(_terms(self), _finite(1.0 / _finite(divisor, what), what)))
        return NotImplemented


@dataclass(frozen=True)
class Sum(Objective):
    """A weighted sum of objectives: what ``+``, ``-``, ``*`` and ``/`` build."""

    kind: ClassVar[str] = "sum"
    terms: tuple[tuple[float, Objective], ...]  # (weight, objective) pairs, none of them a Sum

    def __post_init__(self) -> None:
        object.__setattr__(self, "terms", _checked_terms(self.terms))

    @property
    def description(self) -> str:
        text = ""
        for i, (weight, objective) in enumerate(self.terms):
            sign = "-" if weight < 0 else "+"
            size = abs(weight)
            part = objective.description if size == 1 else f"{size:g} × {objective.description}"
            text += (("-" if sign == "-" else "") + part) if i == 0 else f" {sign} {part}"
        return text

    @property
    def layer(self) -> str | None:
        names = {objective.layer for _, objective in self.terms}
        return names.pop() if len(names) == 1 else None

    @property
    def layers(self) -> frozenset[str]:
        return frozenset().union(*(objective.layers for _, objective in self.terms))

    @property
    def needs_logits(self) -> bool:
        return any(objective.needs_logits for _, objective in self.terms)

    @property
    def reference_layers(self) -> frozenset[str]:
        return frozenset().union(*(objective.reference_layers for _, objective in self.terms))

    @property
    def reference_image(self) -> Any:
        images = {o.image_hashes: o.reference_image for _, o in self.terms if o.reference_image is not None}
        if len(images) > 1:
            raise ConfigError(
                f"{self.description} compares the canvas with {len(images)} images; one objective "
                "can bring one image: explain them as separate objectives."
            )
        return next(iter(images.values()), None)

    @property
    def image_hashes(self) -> frozenset[str]:
        return frozenset().union(*(objective.image_hashes for _, objective in self.terms))

    def validate(self, loaded: LoadedModel) -> Sum:
        return Sum(tuple((w, objective.validate(loaded)) for w, objective in self.terms))

    def score(self, acts: Activations, logits: torch.Tensor | None, table: Table) -> torch.Tensor:
        return sum(w * objective.score(acts, logits, table) for w, objective in self.terms)


def _checked_terms(terms: Any) -> tuple[tuple[float, Objective], ...]:
    """``terms`` as a tuple of (weight, objective) pairs whose weights float32 scores can carry."""
    try:
        pairs = tuple((weight, objective) for weight, objective in terms)
    except (TypeError, ValueError):
        raise ConfigError(f"Sum terms {terms!r} must be (weight, objective) pairs.") from None
    if not pairs:
        raise ConfigError("A Sum needs at least one (weight, objective) term.")
    checked = []
    for weight, objective in pairs:
        if not isinstance(objective, Objective):
            raise ConfigError(
                f"Sum term {objective!r} is not an objective; build one with maco_hub.objectives."
            )
        number = as_finite(weight)
        if number is None or not fits_float32(number):
            raise ConfigError(
                f"Objective weight {weight!r} of {objective.description!r} is unusable: scores are "
                f"float32, so use a finite weight of magnitude {FLOAT32_TINY:.2g} to "
                f"{FLOAT32_MAX:.2g}, or 0."
            )
        checked.append((number, objective))
    return tuple(checked)


def _finite(value: object, what: str) -> float:
    number = as_finite(value)
    if number is None:
        raise ConfigError(f"{what}: the weight {value!r} is not a finite number; use a finite weight.")
    return float(number)


def _terms(objective: Objective) -> tuple[tuple[float, Objective], ...]:
    return objective.terms if isinstance(objective, Sum) else ((1.0, objective),)


def _scaled(terms: tuple, factor: float) -> tuple[tuple[float, Objective], ...]:
    return tuple((w * factor, objective) for w, objective in terms)


def _is_scalar(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
