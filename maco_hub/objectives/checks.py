"""Checks of an objective against a loaded model's layers, and the reductions objectives share.

Every check raises a :class:`~maco_hub.errors.MacoHubError` naming the bad value and the valid
range; :func:`positions` views any layer output as (N, positions, units).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from .._numbers import as_integer
from ..errors import ConfigError, LayerNotFoundError, UnitOutOfRangeError
from ..models.hooks import LayerInfo, close_names, layer_table, unknown_layer_message

if TYPE_CHECKING:
    from ..models.loader import LoadedModel

TOKEN_CHOICES = ("all", "patch", "cls")


def check_index(name: str, value: Any) -> int:
    """``value`` as an int index (numpy integers too); bools, floats and negatives are refused."""
    index = as_integer(value)
    if index is None:
        raise ConfigError(f"{name}={value!r} must be an integer index.")
    if index < 0:
        raise UnitOutOfRangeError(f"{name}={value} must be >= 0.")
    return index


def check_class(class_id: Any) -> int | str:
    """A class as given: an index (numpy integers too, as an int) or a name; bools are refused."""
    if isinstance(class_id, str):
        return class_id
    index = as_integer(class_id)
    if index is None:
        raise ConfigError(
            f"class_id={class_id!r} must be a class index (an integer) or a class name "
            "(a string), e.g. 281 or 'tabby cat'."
        )
    return index


def check_layer(layer: Any) -> None:
    if not isinstance(layer, str) or not layer.strip():
        raise ConfigError(
            f"layer={layer!r} must be a module path (a non-empty string), as listed "
            "by maco_hub.layers(model)."
        )


def check_label(label: Any) -> None:
    if label is not None and not isinstance(label, str):
        raise ConfigError(f"label={label!r} must be a string or None.")


def check_position(position: Any) -> int | tuple[int, int] | None:
    """A neuron position as given: None, a token index or a (y, x) pair, as ints."""
    if position is None:
        return None
    if isinstance(position, (tuple, list)) and len(position) == 2:
        return check_index("position y", position[0]), check_index("position x", position[1])
    if as_integer(position) is not None:
        return check_index("position", position)
    raise ConfigError(
        f"position={position!r} must be None (the centre), a token index or a (y, x) pair of integers."
    )


def check_tokens(tokens: str) -> None:
    if tokens not in TOKEN_CHOICES:
        raise ConfigError(f"tokens={tokens!r} must be one of {', '.join(TOKEN_CHOICES)}.")


def layer_info(loaded: LoadedModel, layer: str) -> LayerInfo:
    table = layer_table(loaded)
    if layer in table:
        return table[layer]
    names = [name for name, _ in loaded.module.named_modules() if name]
    if layer in names:
        close = close_names(layer, list(table))
        hint = f" Closest usable: {', '.join(close)}." if close else ""
        raise LayerNotFoundError(
            f"Layer {layer!r} exists but its output is not a conv map, token sequence or vector "
            f"this library can read (or it only repeats its input).{hint}"
        )
    raise LayerNotFoundError(unknown_layer_message(layer, names))


def check_unit(info: LayerInfo, unit: int) -> None:
    if not 0 <= unit < info.units:
        raise UnitOutOfRangeError(
            f"Unit {unit} is out of range for layer {info.name!r}, which has {info.units} units "
            f"(valid: 0..{info.units - 1})."
        )


def check_token_choice(info: LayerInfo, tokens: str) -> None:
    if tokens != "all" and info.kind != "tokens":
        raise ConfigError(
            f"tokens={tokens!r} applies to token layers, but layer {info.name!r} is a {info.kind} "
            f"output {info.shape}: leave tokens at 'all' (its mean over space is used)."
        )
    if tokens == "cls" and info.kind == "tokens" and info.prefix_tokens == 0:
        raise ConfigError(
            f"tokens='cls' on layer {info.name!r}: this model has no CLS token there "
            f"({info.shape[0]} tokens, all patches). Use tokens='all' or tokens='patch'."
        )


def positions(act: torch.Tensor, info: LayerInfo, tokens: str) -> torch.Tensor:
    """Activations as (N, positions, units): conv pixels, chosen tokens, or one vector."""
    act = act.float()
    if act.ndim == 4:
        return act.flatten(2).transpose(1, 2)
    if act.ndim == 3:
        if tokens == "cls":
            return act[:, :1]
        return act[:, info.prefix_tokens :] if tokens == "patch" else act
    return act[:, None, :]


def neuron_position(info: LayerInfo, position: Any) -> int | tuple[int, int] | None:
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
                f"(valid: y 0..{height - 1}, x 0..{width - 1})."
            )
        return y, x
    count, prefix = info.shape[0], info.prefix_tokens
    if position is None:
        patches = count - prefix
        side = int(patches**0.5)
        centre = (side // 2) * side + side // 2 if side * side == patches else patches // 2
        return prefix + centre
    if not isinstance(position, int):
        raise ConfigError(f"Position {position!r} on token layer {info.name!r} must be a token index.")
    if not 0 <= position < count:
        raise UnitOutOfRangeError(
            f"Token {position} is out of range for layer {info.name!r}, which has {count} tokens "
            f"(valid: 0..{count - 1})."
        )
    return int(position)


def _pair(position: Any) -> tuple[int, int]:
    if isinstance(position, tuple):  # made of ints by check_position
        return position
    raise ConfigError(f"Position {position!r} on a conv layer must be a (y, x) pair.")
