"""What to visualize when nothing was chosen: a small, fixed, documented default per model.

* A classifier: :data:`COUNT` of its classes. For an ImageNet-1k head (1000 classes whose first
  labels are "tench" and "goldfish"), the hand-picked :data:`IMAGENET_CLASSES` (fish, insect,
  mammal, flower, fruit, drink, landscape, building), found by name; otherwise, or when one of
  those names does not resolve, classes evenly spread over the label order (the centre of each of
  COUNT equal slices of the class indices).
* A backbone (no trained head): the first COUNT channels of its last block, which is the numbered
  module (a name ending in ``.<index>``, e.g. ``vit.layers.11``, ``encoder.stages.3``) with a
  channel map or token output that finishes last in a forward pass, i.e. the outermost of the last
  blocks. For token layers with a CLS/register prefix, channels are averaged over patch tokens.
  Without numbered modules, the last conv/token layer in module order is used.

:func:`default_objectives` returns the objectives (validated against the model) and a one-line
description of the choice for logging.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from .._numbers import as_integer
from ..errors import ClassNotFoundError, ConfigError
from ..models.hooks import LayerInfo, capture, layer_table
from ..models.placement import blank_pixels
from .builtin import Channel, ClassLogit, Objective

if TYPE_CHECKING:
    from ..models.loader import LoadedModel

COUNT = 8
IMAGENET_CLASSES = ("goldfish", "monarch", "tabby", "daisy", "lemon", "espresso", "volcano", "church")
"""Diverse ImageNet-1k classes (by name) that MACO renders recognizably on common classifiers."""

_NUMBERED = re.compile(r"\.\d+$")


@dataclass(frozen=True)
class DefaultObjectives:
    """The default objectives of a model and why they were chosen."""

    objectives: tuple[Objective, ...]  # validated against the model
    description: str  # one line for logs, e.g. "8 hand-picked ImageNet classes: ..."


def default_objectives(loaded: LoadedModel, count: int = COUNT) -> DefaultObjectives:
    """The documented default objectives of ``loaded`` (see the module docstring).

    >>> choice = default_objectives(maco_hub.load_model("google/vit-base"))  # doctest: +SKIP
    >>> choice.description  # doctest: +SKIP
    "8 hand-picked ImageNet-1k classes: 1 'goldfish, Carassius auratus', ..."
    """
    if as_integer(count) is None or count < 1:
        raise ConfigError(f"count={count!r} must be a positive integer (objectives to choose).")
    count = as_integer(count)
    if loaded.has_classifier:
        return _classes(loaded, count)
    return _channels(loaded, count)


def spread(total: int, count: int) -> list[int]:
    """``min(count, total)`` indices evenly spread over ``range(total)``: centres of equal slices."""
    count = min(count, total)
    return sorted({int((2 * i + 1) * total // (2 * count)) for i in range(count)})


def _classes(loaded: LoadedModel, count: int) -> DefaultObjectives:
    total = loaded.num_classes
    if not total:
        raise ConfigError(
            f"Model {loaded.model_id!r} has a classifier head with no known class "
            "count; pass classes=[...] explicitly."
        )
    picked = _imagenet_picks(loaded, count)
    how = f"{len(picked or ())} hand-picked ImageNet-1k classes"
    if picked is None:
        picked = spread(total, count)
        how = f"{len(picked)} classes evenly spread over the {total} labels"
    objectives = tuple(ClassLogit(index).validate(loaded) for index in picked)
    names = ", ".join(f"{o.class_id} {o.label!r}" if o.label else str(o.class_id) for o in objectives)
    return DefaultObjectives(objectives, f"{how}: {names}")


def _imagenet_picks(loaded: LoadedModel, count: int) -> list[int] | None:
    labels = loaded.id2label or {}
    if loaded.num_classes != 1000 or not _starts_like_imagenet(labels) or count > len(IMAGENET_CLASSES):
        return None
    try:
        return [loaded.resolve_class(name) for name in IMAGENET_CLASSES[:count]]
    except ClassNotFoundError:
        return None


def _starts_like_imagenet(labels: dict[int, str]) -> bool:
    first, second = labels.get(0, ""), labels.get(1, "")
    return first.lower().startswith("tench") and second.lower().startswith("goldfish")


def _channels(loaded: LoadedModel, count: int) -> DefaultObjectives:
    info = last_block(loaded)
    units = list(range(min(count, info.units)))
    tokens = "patch" if info.kind == "tokens" and info.prefix_tokens else "all"
    objectives = tuple(Channel(info.name, unit, tokens=tokens).validate(loaded) for unit in units)
    where = (
        "mean over patch tokens"
        if tokens == "patch"
        else ("mean over tokens" if info.kind == "tokens" else "mean over space")
    )
    which = f"channels 0-{units[-1]}" if len(units) > 1 else "channel 0"
    return DefaultObjectives(
        objectives,
        f"{which} of {info.name!r}, the last block ({info.kind} output "
        f"{info.shape}, {where}); the model has no trained classification head",
    )


def last_block(loaded: LoadedModel) -> LayerInfo:
    """The backbone's last block: see the module docstring."""
    table = layer_table(loaded)
    spatial = [info for info in table.values() if info.kind in ("conv", "tokens")]
    if not spatial:
        raise ConfigError(
            f"Model {loaded.model_id!r} has no layer with a channel map or token "
            "output to visualize; pass objectives=[...] explicitly."
        )
    numbered = [info.name for info in spatial if _NUMBERED.search(info.name)]
    if not numbered:
        return spatial[-1]
    with capture(loaded, numbered) as store, torch.no_grad():
        loaded.forward(blank_pixels(loaded.module, loaded.preprocessing.size))
        finished = list(store.take())  # in the order the modules returned
    return table[finished[-1]] if finished else table[numbered[-1]]
