"""Objectives as JSON data, so a gallery row records exactly what it visualized."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import ConfigError
from . import builtin as obj
from .guided import Inversion
from .text import Text

_TYPES = {
    cls.__name__: cls
    for cls in (
        obj.ClassLogit,
        obj.Channel,
        obj.Neuron,
        obj.LayerEnergy,
        obj.Direction,
        obj.Sum,
        Inversion,
        Text,
    )
}


def objective_to_record(objective: obj.Objective) -> dict[str, Any]:
    """A JSON-able description from which :func:`objective_from_record` rebuilds the objective."""
    name = type(objective).__name__
    if name not in _TYPES:
        raise ConfigError(f"objective type {name!r} cannot be recorded; use one of {sorted(_TYPES)}")
    if isinstance(objective, obj.Sum):
        return {"type": name, "terms": [[w, objective_to_record(o)] for w, o in objective.terms]}
    if hasattr(objective, "record_values"):  # e.g. an Inversion's image, by its sha256
        return {"type": name, **objective.record_values()}
    values = {f.name: getattr(objective, f.name) for f in dataclasses.fields(objective) if f.name != "_"}
    return {"type": name, **{k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}}


def objective_from_record(record: dict[str, Any]) -> obj.Objective:
    """Inverse of :func:`objective_to_record`."""
    values = dict(record) if isinstance(record, dict) else {}
    name = values.pop("type", None)
    cls = _TYPES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ConfigError(
            f"objective record {record!r} has no known 'type'; expected one of {sorted(_TYPES)}"
        )
    try:
        if cls is obj.Sum:
            return obj.Sum(tuple((float(w), objective_from_record(r)) for w, r in values["terms"]))
        if isinstance(values.get("position"), list):
            values["position"] = tuple(values["position"])
        if cls is Inversion:  # the image comes from the gallery (maco_hub.objectives.guided.bind_images)
            return Inversion(None, **values)
        return cls(**values)
    except (TypeError, ValueError, KeyError) as error:
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(
            f"objective record {record!r} is malformed ({error}); it was not written by "
            "this version of maco_hub."
        ) from None
