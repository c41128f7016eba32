"""The objectives users build (see :mod:`maco_hub.objectives`) and the ``"layer:unit"`` parser."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, replace
from typing import TYPE_CHECKING, ClassVar

import torch

from .._numbers import FLOAT32_MAX, as_finite
from ..errors import ConfigError
from .base import Activations, Objective, Sum, Table
from .checks import (
    check_class,
    check_index,
    check_label,
    check_layer,
    check_position,
    check_token_choice,
    check_tokens,
    check_unit,
    layer_info,
    neuron_position,
    positions,
)

if TYPE_CHECKING:
    from ..models.loader import LoadedModel

__all__ = [
    "COSINE_FLOOR",
    "Channel",
    "ClassLogit",
    "Direction",
    "LayerEnergy",
    "Neuron",
    "Objective",
    "Sum",
    "parse",
]

COSINE_FLOOR = 0.1


@dataclass(frozen=True)
class ClassLogit(Objective):
    """The logit (or log-softmax) of one class of a classifier."""

    kind: ClassVar[str] = "class"
    class_id: int | str  # class index, or a label that validate() resolves to an index
    _: KW_ONLY
    log_softmax: bool = False  # maximize log p(class) instead of the raw logit
    label: str | None = None  # class name; validate() fills it from the model's labels

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_id", check_class(self.class_id))
        if not isinstance(self.log_softmax, bool):
            raise ConfigError(f"log_softmax={self.log_softmax!r} must be True or False.")
        check_label(self.label)

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

    def score(self, acts: Activations, logits: torch.Tensor | None, table: Table) -> torch.Tensor:
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
        check_layer(self.layer)
        object.__setattr__(self, "unit", check_index("unit", self.unit))
        check_tokens(self.tokens)

    @property
    def description(self) -> str:
        if self.layer_kind == "vector":
            return f"{self.layer} unit {self.unit}"
        if self.layer_kind == "conv":
            return f"{self.layer} channel {self.unit} (mean over space)"
        over = {"all": "mean over all tokens", "patch": "mean over patch tokens", "cls": "CLS token"}[
            self.tokens
        ]
        if self.layer_kind is None and self.tokens == "all":
            over = "mean over space or tokens"
        return f"{self.layer} channel {self.unit} ({over})"

    def validate(self, loaded: LoadedModel) -> Channel:
        info = layer_info(loaded, self.layer)
        check_unit(info, self.unit)
        check_token_choice(info, self.tokens)
        return replace(self, layer_kind=info.kind)

    def score(self, acts: Activations, logits: torch.Tensor | None, table: Table) -> torch.Tensor:
        return positions(acts[self.layer], table[self.layer], self.tokens)[..., self.unit].mean(dim=1)


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
        check_layer(self.layer)
        object.__setattr__(self, "unit", check_index("unit", self.unit))
        object.__setattr__(self, "position", check_position(self.position))

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
        info = layer_info(loaded, self.layer)
        check_unit(info, self.unit)
        return replace(self, position=neuron_position(info, self.position), layer_kind=info.kind)

    def score(self, acts: Activations, logits: torch.Tensor | None, table: Table) -> torch.Tensor:
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

    def __post_init__(self) -> None:
        check_layer(self.layer)

    @property
    def description(self) -> str:
        return f"{self.layer} (mean squared activation)"

    def validate(self, loaded: LoadedModel) -> LayerEnergy:
        layer_info(loaded, self.layer)
        return self

    def score(self, acts: Activations, logits: torch.Tensor | None, table: Table) -> torch.Tensor:
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
        check_layer(self.layer)
        object.__setattr__(self, "vector", _direction_vector(self.vector))
        power = as_finite(self.cosine_power)
        if power is None or power < 0:
            raise ConfigError(
                f"cosine_power={self.cosine_power!r} is invalid: use a finite number >= 0 "
                "(0: the plain dot product; 1 and more favour aligned activations)."
            )
        object.__setattr__(self, "cosine_power", float(power))
        check_tokens(self.tokens)
        check_label(self.label)

    @property
    def description(self) -> str:
        name = f" {self.label!r}" if self.label else ""
        return f"{self.layer} direction{name} ({len(self.vector)}-d, cos^{self.cosine_power:g})"

    def validate(self, loaded: LoadedModel) -> Direction:
        info = layer_info(loaded, self.layer)
        if len(self.vector) != info.units:
            raise ConfigError(
                f"Direction vector has {len(self.vector)} values but layer {self.layer!r} has "
                f"{info.units} units; pass one value per unit."
            )
        check_token_choice(info, self.tokens)
        return self

    def score(self, acts: Activations, logits: torch.Tensor | None, table: Table) -> torch.Tensor:
        acts = positions(acts[self.layer], table[self.layer], self.tokens)
        vector = torch.tensor(self.vector, dtype=acts.dtype, device=acts.device)
        dot = acts @ vector
        cosine = dot / (acts.norm(dim=-1) * vector.norm()).clamp_min(1e-8)
        return (dot * cosine.clamp_min(COSINE_FLOOR) ** self.cosine_power).mean(dim=1)


def _direction_vector(vector: object) -> tuple[float, ...]:
    """``vector`` as a tuple of floats: 1-D, non-empty, finite, non-zero and within float32."""
    try:
        values = torch.as_tensor(vector, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"Direction vector {vector!r} must be 1-D numbers.") from exc
    if values.ndim != 1 or values.numel() == 0:
        raise ConfigError(
            f"Direction vector of shape {tuple(values.shape)} must be 1-D and non-empty "
            "(one value per unit of the layer)."
        )
    bad = (~torch.isfinite(values)).nonzero()
    if len(bad):
        index = int(bad[0])
        raise ConfigError(
            f"Direction vector entry {index} is {values[index].item()} (non-finite): every "
            "entry must be a finite number, one value per unit of the layer."
        )
    single = values.float()
    if not (torch.isfinite(single).all() and torch.isfinite(single.norm())):
        raise ConfigError(
            f"Direction vector (largest entry {values.abs().max().item():g}) does not fit "
            f"float32, in which layers are scored (entries and their norm at most "
            f"{FLOAT32_MAX:.2g}): rescale it."
        )
    if not bool(single.abs().sum() > 0):
        raise ConfigError(
            "Direction vector is zero (in float32): give a non-zero direction, one value "
            "per unit of the layer."
        )
    return tuple(values.tolist())


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


_FORMS = (
    "'LAYER:UNIT' (channel), 'LAYER' (mean squared activation), 'class:INDEX' or 'class:NAME' (class logit)"
)


def _parse(text: str) -> Objective:
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"Cannot parse objective {text!r}. Accepted forms: {_FORMS}.")
    text = text.strip()
    head, sep, tail = text.rpartition(":") if ":" in text else (text, "", "")
    if text.lower().startswith("class:"):
        target = text[len("class:") :].strip()
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
