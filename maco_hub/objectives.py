"""What a visualization maximizes: immutable objectives, their algebra, and the engine's score_fn.

Every objective is a frozen dataclass with a readable ``description`` (a gallery caption).
``a + b``, ``a - b``, ``2 * a``, ``-a`` and ``a / 2`` return new :class:`Sum` objects; operands
never change. ``objective.validate(loaded)`` checks it against a loaded model and returns the
resolved copy (class names turned into indices, layer kinds and default positions filled in).

Reductions over a layer output (N, C, H, W), (N, T, D) or (N, D):

* :class:`Channel`: mean of one unit over space, or over the chosen tokens (``"all"``,
  ``"patch"``: the tokens after the CLS/register prefix, ``"cls"``: token 0 only).
* :class:`Neuron`: one unit at one position (y, x) or one token; default: the centre (the centre
  patch token for token layers).
* :class:`LayerEnergy` (kind ``"layer"``): mean squared activation of the whole layer output.
* :class:`Direction`: at each position / chosen token, ``dot(a, v) * max(cos(a, v), 0.1) ** p``,
  averaged. The cosine is clamped at 0.1 (Lucid's floor) so any power p, fractional included, is
  defined (no NaN) and anti-aligned activations are never rewarded; ``p = 0`` is the plain dot.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from .errors import ConfigError, LayerNotFoundError, UnitOutOfRangeError
from .hooks import LayerInfo, layer_table, unknown_layer_message

if TYPE_CHECKING:
    from .models import LoadedModel

TOKEN_CHOICES = ("all", "patch", "cls")
COSINE_FLOOR = 0.1

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

    def validate(self, loaded: LoadedModel) -> Objective:
        """Check against ``loaded``; return the resolved objective (raises on a bad one)."""
        raise NotImplementedError

    def _score(self, acts: Activations, logits: torch.Tensor | None, table: Table) -> torch.Tensor:
        """Score per row (N,) to maximize, from this objective's rows of activations/logits."""
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
            return Sum(_scaled(_terms(self), float(factor)))
        return NotImplemented

    __rmul__ = __mul__

    def __neg__(self) -> Objective:
        return self * -1.0

    def __truediv__(self, divisor: object) -> Objective:
        if _is_scalar(divisor):
            if divisor == 0:
                raise ZeroDivisionError(f"Cannot divide objective {self.description!r} by 0.")
            return self * (1.0 / float(divisor))
        return NotImplemented


@dataclass(frozen=True)
class ClassLogit(Objective):
    """The logit (or log-softmax) of one class of a classifier."""

    kind: ClassVar[str] = "class"
    class_id: int | str  # class index, or a label that validate() resolves to an index
    _: KW_ONLY
    log_softmax: bool = False  # maximize log p(class) instead of the raw logit
    label: str | None = None  # class name; validate() fills it from the model's labels

    @property
    def description(self) -> str:
        what = "log-softmax" if self.log_softmax else "logit"
        if isinstance(self.class_id, str):
            return f"class {self.class_id!r} ({what})"
        name = f" {self.label!r}" if self.label else ""
        return f"class {self.class_id}{name} ({what})"

    @property
    def needs_logits(self) -> bool:
        return True

    def validate(self, loaded: LoadedModel) -> ClassLogit:
        index = loaded.resolve_class(self.class_id)
        return replace(self, class_id=index, label=self.label or loaded.label(index))

    def _score(self, acts: Activations, logits: torch.Tensor | None, table: Table) -> torch.Tensor:
        logits = logits.float()
        if self.log_softmax:
            logits = logits.log_softmax(dim=-1)
        return logits[:, self.class_id]


@dataclass(frozen=True)
class Channel(Objective):
    """One unit of a layer, averaged over space (conv) or over the chosen tokens."""

    kind: ClassVar[str] = "channel"
    layer: str  # dotted module path, as listed by maco_hub.layers(model)
    unit: int  # channel (conv) or feature (tokens, vector) index
    _: KW_ONLY
    tokens: str = "all"  # token layers: "all", "patch" (no CLS/registers) or "cls"
    layer_kind: str | None = None  # "conv" / "tokens" / "vector", filled by validate()

    def __post_init__(self) -> None:
        _check_index("unit", self.unit)
        _check_tokens(self.tokens)

    @property
    def description(self) -> str:
        if self.layer_kind == "vector":
            return f"{self.layer} unit {self.unit}"
        if self.layer_kind == "conv":
            return f"{self.layer} channel {self.unit} (mean over space)"
        over = {"all": "mean over all tokens", "patch": "mean over patch tokens",
                "cls": "CLS token"}[self.tokens]
        if self.layer_kind is None and self.tokens == "all":
            over = "mean over space or tokens"
        return f"{self.layer} channel {self.unit} ({over})"

    def validate(self, loaded: LoadedModel) -> Channel:
        info = _layer_info(loaded, self.layer)
        _check_unit(info, self.unit)
        _check_token_choice(info, self.tokens)
        return replace(self, layer_kind=info.kind)

    def _score(self, acts: Activations, logits: torch.Tensor | None, table: Table) -> torch.Tensor:
        positions = _positions(acts[self.layer], table[self.layer], self.tokens)
        return positions[..., self.unit].mean(dim=1)


@dataclass(frozen=True)
class Neuron(Objective):
    """One unit of a layer at one spatial position (y, x) or one token index."""

    kind: ClassVar[str] = "neuron"
    layer: str  # dotted module path, as listed by maco_hub.layers(model)
    unit: int  # channel (conv) or feature (tokens, vector) index
    _: KW_ONLY
    position: int | tuple[int, int] | None = None  # (y, x), token index, or None for the centre
    layer_kind: str | None = None  # "conv" / "tokens" / "vector", filled by validate()

    def __post_init__(self) -> None:
        _check_index("unit", self.unit)
        if isinstance(self.position, list):
            object.__setattr__(self, "position", tuple(self.position))

    @property
    def description(self) -> str:
        if self.layer_kind == "vector":
            return f"{self.layer} unit {self.unit}"
        if self.position is None:
            where = "the centre"
        elif isinstance(self.position, tuple):
            where = f"({self.position[0]}, {self.position[1]})"
        else:
            where = f"token {self.position}"
        return f"{self.layer} unit {self.unit} at {where}"

    def validate(self, loaded: LoadedModel) -> Neuron:
        info = _layer_info(loaded, self.layer)
        _check_unit(info, self.unit)
        return replace(self, position=_neuron_position(info, self.position),
                       layer_kind=info.kind)

    def _score(self, acts: Activations, logits: torch.Tensor | None, table: Table) -> torch.Tensor:
        act = acts[self.layer].float()
        if act.ndim == 4:
            y, x = self.position
            return act[:, self.unit, y, x]
        if act.ndim == 3:
            return act[:, self.position, self.unit]
        return act[:, self.unit]


@dataclass(frozen=True)
class LayerEnergy(Objective):
    """The "layer" objective: mean squared activation of a whole layer (DeepDream-like)."""

    kind: ClassVar[str] = "layer"
    layer: str  # dotted module path, as listed by maco_hub.layers(model)

    @property
    def description(self) -> str:
        return f"{self.layer} (mean squared activation)"

    def validate(self, loaded: LoadedModel) -> LayerEnergy:
        _layer_info(loaded, self.layer)
        return self

    def _score(self, acts: Activations, logits: torch.Tensor | None, table: Table) -> torch.Tensor:
        return acts[self.layer].float().pow(2).flatten(1).mean(dim=1)


@dataclass(frozen=True)
class Direction(Objective):
    """A direction in a layer's unit space: dot(a, v) * max(cos(a, v), 0.1) ** cosine_power."""

    kind: ClassVar[str] = "direction"
    layer: str  # dotted module path, as listed by maco_hub.layers(model)
    vector: tuple[float, ...]  # one value per unit (any 1-D sequence, array or tensor)
    _: KW_ONLY
    cosine_power: float = 1.0  # p; 0 gives the plain dot product
    tokens: str = "all"  # token layers: "all", "patch" (no CLS/registers) or "cls"
    label: str | None = None  # a name for the direction, shown in the description

    def __post_init__(self) -> None:
        try:
            values = torch.as_tensor(self.vector, dtype=torch.float64).detach().cpu()
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ConfigError(f"Direction vector {self.vector!r} must be 1-D numbers.") from exc
        if values.ndim != 1 or values.numel() == 0 or not bool(values.abs().sum() > 0):
            raise ConfigError(
                f"Direction vector of shape {tuple(values.shape)} must be 1-D, non-empty and "
                "non-zero (one value per unit of the layer).")
        object.__setattr__(self, "vector", tuple(values.tolist()))
        object.__setattr__(self, "cosine_power", float(self.cosine_power))
        _check_tokens(self.tokens)

    @property
    def description(self) -> str:
        name = f" {self.label!r}" if self.label else ""
        return f"{self.layer} direction{name} ({len(self.vector)}-d, cos^{self.cosine_power:g})"

    def validate(self, loaded: LoadedModel) -> Direction:
        info = _layer_info(loaded, self.layer)
        if len(self.vector) != info.units:
            raise ConfigError(
                f"Direction vector has {len(self.vector)} values but layer {self.layer!r} has "
                f"{info.units} units; pass one value per unit.")
        _check_token_choice(info, self.tokens)
        return self

    def _score(self, acts: Activations, logits: torch.Tensor | None, table: Table) -> torch.Tensor:
        positions = _positions(acts[self.layer], table[self.layer], self.tokens)
        vector = torch.tensor(self.vector, dtype=positions.dtype, device=positions.device)
        dot = positions @ vector
        cosine = dot / (positions.norm(dim=-1) * vector.norm()).clamp_min(1e-8)
        return (dot * cosine.clamp_min(COSINE_FLOOR) ** self.cosine_power).mean(dim=1)


@dataclass(frozen=True)
class Sum(Objective):
    """A weighted sum of objectives: what ``+``, ``-``, ``*`` and ``/`` build."""

    kind: ClassVar[str] = "sum"
    terms: tuple[tuple[float, Objective], ...]  # (weight, objective) pairs, none of them a Sum

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

    def validate(self, loaded: LoadedModel) -> Sum:
        return Sum(tuple((w, objective.validate(loaded)) for w, objective in self.terms))

    def _score(self, acts: Activations, logits: torch.Tensor | None, table: Table) -> torch.Tensor:
        return sum(w * objective._score(acts, logits, table) for w, objective in self.terms)


def parse(text: str, *, model: LoadedModel | None = None) -> Objective:
    """The CLI shorthand: ``LAYER:UNIT`` (channel), ``LAYER`` (layer), ``class:INDEX|NAME``.

    With ``model`` the objective is also validated against it and returned resolved.

    >>> parse("vit.layers.6:12").description
    'vit.layers.6 channel 12 (mean over space or tokens)'
    >>> parse("class:285").description
    'class 285 (logit)'
    """
    objective = _parse(text)
    return objective.validate(model) if model is not None else objective


# ------------------------------------------------------------------------------------ helpers


def _terms(objective: Objective) -> tuple[tuple[float, Objective], ...]:
    return objective.terms if isinstance(objective, Sum) else ((1.0, objective),)


def _scaled(terms: tuple, factor: float) -> tuple[tuple[float, Objective], ...]:
    return tuple((w * factor, objective) for w, objective in terms)


def _is_scalar(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_index(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{name}={value!r} must be an integer index.")
    if value < 0:
        raise UnitOutOfRangeError(f"{name}={value} must be >= 0.")


def _check_tokens(tokens: str) -> None:
    if tokens not in TOKEN_CHOICES:
        raise ConfigError(f"tokens={tokens!r} must be one of {', '.join(TOKEN_CHOICES)}.")


def _layer_info(loaded: LoadedModel, layer: str) -> LayerInfo:
    table = layer_table(loaded)
    if layer in table:
        return table[layer]
    names = [name for name, _ in loaded.module.named_modules() if name]
    if layer in names:
        close = unknown_layer_message(layer, list(table)).split(" Closest: ")
        hint = f" Closest usable: {close[1]}" if len(close) > 1 else ""
        raise LayerNotFoundError(
            f"Layer {layer!r} exists but its output is not a conv map, token sequence or vector "
            f"this library can read (or it only repeats its input).{hint}")
    raise LayerNotFoundError(unknown_layer_message(layer, names))


def _check_unit(info: LayerInfo, unit: int) -> None:
    if not 0 <= unit < info.units:
        raise UnitOutOfRangeError(
            f"Unit {unit} is out of range for layer {info.name!r}, which has {info.units} units "
            f"(valid: 0..{info.units - 1}).")


def _check_token_choice(info: LayerInfo, tokens: str) -> None:
    if tokens == "cls" and info.kind == "tokens" and info.prefix_tokens == 0:
        raise ConfigError(
            f"tokens='cls' on layer {info.name!r}: this model has no CLS token there "
            f"({info.shape[0]} tokens, all patches). Use tokens='all' or tokens='patch'.")


def _positions(act: torch.Tensor, info: LayerInfo, tokens: str) -> torch.Tensor:
    """Activations as (N, positions, units): conv pixels, chosen tokens, or one vector."""
    act = act.float()
    if act.ndim == 4:
        return act.flatten(2).transpose(1, 2)
    if act.ndim == 3:
        if tokens == "cls":
            return act[:, :1]
        return act[:, info.prefix_tokens:] if tokens == "patch" else act
    return act[:, None, :]


def _neuron_position(info: LayerInfo, position: Any) -> int | tuple[int, int] | None:
    if info.kind == "vector":
        if position is not None:
            raise ConfigError(f"Layer {info.name!r} is a vector: a neuron there takes no position.")
        return None
    if info.kind == "conv":
        height, width = info.shape[1], info.shape[2]
        y, x = (height // 2, width // 2) if position is None else _pair(position)
        if not (0 <= y < height and 0 <= x < width):
            raise UnitOutOfRangeError(
                f"Position {(y, x)} is outside layer {info.name!r}'s {height}x{width} map "
                f"(valid: y 0..{height - 1}, x 0..{width - 1}).")
        return y, x
    count, prefix = info.shape[0], info.prefix_tokens
    if position is None:
        patches = count - prefix
        side = int(patches ** 0.5)
        centre = (side // 2) * side + side // 2 if side * side == patches else patches // 2
        return prefix + centre
    if isinstance(position, bool) or not isinstance(position, numbers.Integral):
        raise ConfigError(f"Position {position!r} on token layer {info.name!r} must be a token index.")
    if not 0 <= position < count:
        raise UnitOutOfRangeError(
            f"Token {position} is out of range for layer {info.name!r}, which has {count} tokens "
            f"(valid: 0..{count - 1}).")
    return int(position)


def _pair(position: Any) -> tuple[int, int]:
    if isinstance(position, (tuple, list)) and len(position) == 2:
        return int(position[0]), int(position[1])
    raise ConfigError(f"Position {position!r} on a conv layer must be a (y, x) pair.")


_FORMS = ("'LAYER:UNIT' (channel), 'LAYER' (mean squared activation), 'class:INDEX' or "
          "'class:NAME' (class logit)")


def _parse(text: str) -> Objective:
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"Cannot parse objective {text!r}. Accepted forms: {_FORMS}.")
    text = text.strip()
    head, sep, tail = text.rpartition(":") if ":" in text else (text, "", "")
    if text.lower().startswith("class:"):
        target = text[len("class:"):].strip()
        if not target:
            raise ConfigError(f"Objective {text!r} names no class. Accepted forms: {_FORMS}.")
        return ClassLogit(int(target) if target.isdigit() else target)
    if not sep:
        if any(c.isspace() for c in text):
            raise ConfigError(f"Cannot parse objective {text!r}. Accepted forms: {_FORMS}.")
        return LayerEnergy(text)
    if head.strip() and tail.strip().isdigit() and not any(c.isspace() for c in head.strip()):
        return Channel(head.strip(), int(tail))
    raise ConfigError(f"Cannot parse objective {text!r}. Accepted forms: {_FORMS}.")
