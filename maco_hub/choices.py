"""What ``explain()`` is asked to visualize: classes, channels, text prompts or objectives, checked
and resolved.

Everything a user passes is checked before any model loads (types, empty lists, a lone string);
then, with the model, resolved into objectives: classes by name or index (``"all"`` for every class
of the head), channels of one layer or several (``"all"`` for every unit, in unit order), text
prompts (CLIP/SigLIP), objectives given as objects or as the CLI's strings, or the model's
documented defaults when nothing is chosen; an objective asked twice is kept once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import objectives as obj
from ._numbers import as_integer
from .errors import ConfigError
from .gallery.keys import canonical_json
from .models.loader import LoadedModel
from .objectives.checks import check_layer, layer_info
from .objectives.defaults import default_objectives
from .objectives.records import objective_to_record

if TYPE_CHECKING:
    from .objectives.builtin import Objective

logger = logging.getLogger(__name__)

ALL_CLASSES = "all"  # classes="all": every class of the model's head, in label order
ALL_UNITS = "all"  # channels="all": every unit of each layer, in unit order


@dataclass(frozen=True)
class AllUnits:
    """``channels="all"`` of one layer, until the model says how many units it has."""

    layer: str


def _check_choice(classes, layer, channels, objectives) -> None:
    """Refuse combinations of what to visualize that cannot work (before any model is loaded)."""
    if objectives is not None and (classes is not None or channels is not None or layer is not None):
        raise ConfigError(
            "Give either objectives=[...] or classes=/layer=+channels=/texts=, not both; "
            "add class objectives to the list with maco_hub.objectives.ClassLogit."
        )
    if channels is not None and layer is None:
        raise ConfigError(
            f"channels={channels!r} needs layer=...; list layers with "
            "maco_hub.layers(model) or `maco-hub layers MODEL`."
        )
    if layer is not None and channels is None:
        raise ConfigError(
            f"layer={layer!r} needs channels=[...] (unit indices to visualize) or channels={ALL_UNITS!r}."
        )
    if isinstance(classes, str) and classes != ALL_CLASSES:
        raise ConfigError(
            f"classes={classes!r} is a single string: pass a list such as [{classes!r}], "
            f"or {ALL_CLASSES!r} for every class of the head."
        )


def requested(classes, layer, channels, objectives, *, layers=None, texts=None) -> list[Objective | AllUnits]:
    """The objectives named by ``classes``, ``layer`` (or ``layers``) + ``channels``, ``texts`` or
    ``objectives``, checked before any model is loaded (``classes="all"``, ``channels="all"`` and
    the defaults need the model: :func:`resolved_objectives`)."""
    names = _layer_names(layer, layers, channels)
    _check_choice(classes, layer if layers is None else names, channels, objectives)
    if objectives is not None and texts is not None:
        raise ConfigError(
            "Give either objectives=[...] or texts=[...], not both; add text objectives to the "
            "list with maco_hub.objectives.Text."
        )
    if objectives is not None:
        return [_objective(item) for item in _items("objectives", objectives)]
    wanted: list[Objective | AllUnits] = (
        []
        if classes is None or _all_classes(classes)
        else [obj.ClassLogit(c) for c in _items("classes", classes)]
    )
    if isinstance(channels, str):
        if channels != ALL_UNITS:
            raise ConfigError(
                f"channels={channels!r} is a single string: pass a list of unit indices such as "
                f"[0, 1], or {ALL_UNITS!r} for every unit of the layer."
            )
        for name in names:
            check_layer(name)
        wanted += [AllUnits(name) for name in names]
    elif channels is not None:
        units = _items("channels", channels, "layer= and channels=")
        wanted += [obj.Channel(name, c) for name in names for c in units]
    if texts is not None:
        wanted += [obj.Text(text) for text in _items("texts", texts)]
    return wanted


def _layer_names(layer: Any, layers: Any, channels: Any) -> list[str]:
    """The layers ``channels`` apply to: ``layer`` or ``layers`` (a non-empty list), in order, each once."""
    if layers is None:
        return [layer] if layer is not None else []
    if layer is not None:
        raise ConfigError(f"Give layer={layer!r} or layers=[...], not both; put every layer in layers=[...].")
    names = _items("layers", layers)
    if channels is None:
        raise ConfigError(f"layers={names!r} needs channels=[...] (unit indices) or channels={ALL_UNITS!r}.")
    return list(dict.fromkeys(names))


def _all_classes(classes: Any) -> bool:
    return isinstance(classes, str) and classes == ALL_CLASSES


def _items(name: str, values: Any, omit: str | None = None) -> list:
    """``values`` (a list, tuple, range or array) as a non-empty list."""
    if isinstance(values, (str, bytes, dict, obj.Objective)) or not hasattr(values, "__iter__"):
        raise ConfigError(f"{name}={values!r} is not a list: pass a list such as {name}=[{values!r}].")
    items = list(values)
    if not items:
        raise ConfigError(
            f"{name}=[] is empty: pass {name} to visualize, or leave {omit or name} out "
            "for the model's documented defaults."
        )
    return items


def _objective(item: Any) -> Objective:
    """An objectives entry: an objective, or a string read with :func:`maco_hub.objectives.parse`."""
    if isinstance(item, str):
        return obj.parse(item)
    if not isinstance(item, obj.Objective):
        raise ConfigError(
            f"objectives entry {item!r} is not an objective: build one with "
            "maco_hub.objectives (e.g. ClassLogit(3)) or write it as 'LAYER:UNIT', 'LAYER' "
            "or 'class:NAME'."
        )
    return item


def resolved_objectives(
    loaded: LoadedModel, requested: list[Objective | AllUnits], classes: Any
) -> list[Objective]:
    """What to visualize: the requested objectives after every class of the head when ``classes``
    is "all" (in label order), every unit of a layer in unit order where ``channels`` was "all",
    or, when nothing was chosen, the model's documented defaults (logged)."""
    wanted = []
    for item in requested:
        wanted += _units(loaded, item) if isinstance(item, AllUnits) else [item]
    if _all_classes(classes):
        loaded.require_head()
        wanted = [obj.ClassLogit(c) for c in range(loaded.num_classes)] + wanted
        logger.info("Visualizing all %d classes of %s.", loaded.num_classes, loaded.model_id)
    if not wanted:
        choice = default_objectives(loaded)
        logger.info("Nothing chosen to visualize; using the defaults: %s.", choice.description)
        wanted = list(choice.objectives)
    return wanted


def _units(loaded: LoadedModel, item: AllUnits) -> list[Objective]:
    """Every unit of ``item.layer``, in unit order."""
    info = layer_info(loaded, item.layer)
    logger.info("Visualizing all %d units of layer %s (%s %s).", info.units, info.name, info.kind, info.shape)
    return [obj.Channel(item.layer, unit) for unit in range(info.units)]


def unique(objectives: list[Objective]) -> list[Objective]:
    """``objectives`` in order, each once: a repeat would be the same row (same record and seed)."""
    kept: dict[str, Objective] = {}
    repeated = []
    for objective in objectives:
        record = canonical_json(objective_to_record(objective))
        if record in kept:
            repeated.append(objective.description)
        else:
            kept[record] = objective
    if repeated:
        logger.warning(
            "%d repeated objective(s) dropped, each is visualized once: %s.",
            len(repeated),
            "; ".join(dict.fromkeys(repeated)),
        )
    return list(kept.values())


def checked_batch_size(batch_size: Any) -> int:
    size = as_integer(batch_size)
    if size is None or size < 1:
        raise ConfigError(
            f"batch_size={batch_size!r} is invalid: use an integer number of images per batch, 1 or more."
        )
    return size
