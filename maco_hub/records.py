"""JSON records that make a visualization reproducible: objectives as data, row keys, seeds."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import zlib
from typing import Any

from . import objectives as obj
from .errors import ConfigError

_TYPES = {cls.__name__: cls for cls in (obj.ClassLogit, obj.Channel, obj.Neuron, obj.LayerEnergy,
                                        obj.Direction, obj.Sum)}


def objective_to_record(objective: obj.Objective) -> dict[str, Any]:
    """A JSON-able description from which :func:`objective_from_record` rebuilds the objective."""
    name = type(objective).__name__
    if name not in _TYPES:
        raise ConfigError(f"objective type {name!r} cannot be recorded; use one of {sorted(_TYPES)}")
    if isinstance(objective, obj.Sum):
        return {"type": name, "terms": [[w, objective_to_record(o)] for w, o in objective.terms]}
    values = {f.name: getattr(objective, f.name) for f in dataclasses.fields(objective)
              if f.name != "_"}
    return {"type": name, **{k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}}


def objective_from_record(record: dict[str, Any]) -> obj.Objective:
    """Inverse of :func:`objective_to_record`."""
    values = dict(record)
    cls = _TYPES.get(values.pop("type", None))
    if cls is None:
        raise ConfigError(f"objective record {record!r} has no known 'type'; expected one of "
                          f"{sorted(_TYPES)}")
    if cls is obj.Sum:
        return obj.Sum(tuple((float(w), objective_from_record(r)) for w, r in values["terms"]))
    if isinstance(values.get("position"), list):
        values["position"] = tuple(values["position"])
    return cls(**values)


def canonical_json(value: Any) -> str:
    """Stable JSON text: sorted keys, no whitespace."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def seed_for(base_seed: int, objective_record: dict[str, Any]) -> int:
    """The seed of one objective: depends on the base seed and the objective, not on its position.

    So an objective gets the same starting phase whichever list it is explained in, and a gallery
    can be extended with overlapping lists without duplicating rows.
    """
    return (int(base_seed) * 1_000_003 + zlib.crc32(canonical_json(objective_record).encode())) % 2**31


def row_key(record: dict[str, Any]) -> str:
    """Identity of a row: model + revision, objective, seed, engine config and spectrum."""
    identity = {k: record.get(k) for k in ("model_id", "model_revision", "objective_record", "seed",
                                           "config")}
    identity["spectrum_sha256"] = (record.get("spectrum") or {}).get("sha256")
    return hashlib.sha256(canonical_json(identity).encode()).hexdigest()[:20]
