"""Values that may change over the optimization: crop sizes and noise.

A schedule is a constant, a callable ``f(step, total_steps)``, or one of the small serializable
classes below (preferred: they round-trip through a gallery's reproducibility record).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

Range = tuple[float, float]


@dataclass(frozen=True)
class Alternating:
    """``small`` on even steps, ``large`` on odd steps.

    Small crops draw fine detail; large crops make the whole canvas read as one object.
    """

    small: Range = (0.25, 0.30)  # crop side as a fraction of the canvas side, even steps
    large: Range = (0.60, 1.00)  # crop side as a fraction of the canvas side, odd steps

    def __call__(self, step: int, total_steps: int) -> Range:
        return self.small if step % 2 == 0 else self.large


@dataclass(frozen=True)
class Linear:
    """Linear interpolation from ``start`` (first step) to ``end`` (last step); ranges or numbers."""

    start: Any  # a number or a (low, high) pair
    end: Any  # same type as start

    def __call__(self, step: int, total_steps: int) -> Any:
        t = step / max(total_steps - 1, 1)
        if isinstance(self.start, (int, float)):
            return self.start + t * (self.end - self.start)
        return tuple(a + t * (b - a) for a, b in zip(self.start, self.end, strict=True))


Schedule = float | Range | Alternating | Linear | Callable[[int, int], Any]

_CLASSES = {"alternating": Alternating, "linear": Linear}


def value_at(schedule: Schedule, step: int, total_steps: int) -> Any:
    """The schedule's value at ``step`` (0-based) of ``total_steps``."""
    return schedule(step, total_steps) if callable(schedule) else schedule


def to_record(schedule: Schedule) -> Any:
    """A JSON-able description; plain callables are recorded by name and cannot be rebuilt."""
    for name, cls in _CLASSES.items():
        if isinstance(schedule, cls):
            return {"schedule": name, **{k: _listify(v) for k, v in asdict(schedule).items()}}
    if callable(schedule):
        return {"schedule": "callable", "name": getattr(schedule, "__qualname__", repr(schedule))}
    return _listify(schedule)


def from_record(record: Any) -> Schedule:
    """Inverse of :func:`to_record` for constants and the classes above."""
    if isinstance(record, dict):
        kind = record.get("schedule")
        if kind not in _CLASSES:
            raise ValueError(f"schedule {record!r} cannot be rebuilt; pass it explicitly")
        fields = {k: _tuplify(v) for k, v in record.items() if k != "schedule"}
        return _CLASSES[kind](**fields)
    return _tuplify(record)


def _listify(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _tuplify(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value
