"""Values that may change over the optimization: crop sizes and noise.

A schedule is a constant, a callable ``f(step, total_steps)``, or one of the small serializable
classes below (preferred: they round-trip through a gallery's reproducibility record).
"""

from __future__ import annotations

import functools
import hashlib
import types
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from .._numbers import as_finite, as_integer
from ..errors import ConfigError

Range = tuple[float, float]


@dataclass(frozen=True)
class Alternating:
    """``small`` for ``small_steps`` steps, then ``large`` for one step, and again.

    Small crops draw fine detail; large crops make the whole canvas read as one object.
    """

    small: Range = (0.25, 0.30)  # crop side as a fraction of the canvas side
    large: Range = (0.60, 1.00)  # crop side as a fraction of the canvas side
    small_steps: int = 1  # small-crop steps before each large-crop step

    def __post_init__(self) -> None:
        steps = as_integer(self.small_steps)
        if steps is None or steps < 1:
            raise ConfigError(
                f"Alternating small_steps={self.small_steps!r} is not a positive integer; "
                "use 1 for small, large, small, … or 2 for small, small, large, …."
            )
        object.__setattr__(self, "small_steps", steps)
        for name in ("small", "large"):
            object.__setattr__(self, name, _finite_value(f"Alternating {name}", getattr(self, name)))

    def __call__(self, step: int, total_steps: int) -> Range:
        return self.small if step % (self.small_steps + 1) < self.small_steps else self.large


@dataclass(frozen=True)
class Linear:
    """Linear interpolation from ``start`` (first step) to ``end`` (last step); ranges or numbers."""

    start: Any  # a number or a (low, high) pair
    end: Any  # same type as start

    def __post_init__(self) -> None:
        start, end = _finite_value("Linear start", self.start), _finite_value("Linear end", self.end)
        if isinstance(start, tuple) != isinstance(end, tuple) or (
            isinstance(start, tuple) and len(start) != len(end)
        ):
            raise ConfigError(
                f"Linear start={self.start!r} and end={self.end!r} must be of one kind: two "
                "numbers, or two (low, high) pairs."
            )
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)

    def __call__(self, step: int, total_steps: int) -> Any:
        t = step / max(total_steps - 1, 1)
        if isinstance(self.start, (int, float)):
            return self.start + t * (self.end - self.start)
        return tuple(a + t * (b - a) for a, b in zip(self.start, self.end, strict=True))


Schedule = float | Range | Alternating | Linear | Callable[[int, int], Any]

_CLASSES = {"alternating": Alternating, "linear": Linear}
# Fields added after rows were first written: recorded only when not at their default, so the row
# keys of galleries made before them stay the same.
_UNRECORDED_DEFAULTS = {"small_steps": 1}


def value_at(schedule: Schedule, step: int, total_steps: int) -> Any:
    """The schedule's value at ``step`` (0-based) of ``total_steps``."""
    return schedule(step, total_steps) if callable(schedule) else schedule


def to_record(schedule: Schedule) -> Any:
    """A JSON-able description.

    A plain callable cannot be rebuilt: it is recorded by name plus a fingerprint of its code,
    constants, defaults, closure and the simple globals it reads, so two different callables never
    share a record (and a gallery row key), and marked ``"reproducible": false``.
    """
    for name, cls in _CLASSES.items():
        if isinstance(schedule, cls):
            fields = {
                k: _listify(v)
                for k, v in asdict(schedule).items()
                if (k, v) not in _UNRECORDED_DEFAULTS.items()
            }
            return {"schedule": name, **fields}
    if callable(schedule):
        return {
            "schedule": "callable",
            "name": getattr(schedule, "__qualname__", type(schedule).__name__),
            "fingerprint": fingerprint(schedule),
            "reproducible": False,
        }
    return _listify(schedule)


def is_reproducible(record: Any) -> bool:
    """Whether :func:`from_record` can rebuild the schedule ``record`` describes."""
    return not (isinstance(record, dict) and record.get("schedule") not in _CLASSES)


def from_record(record: Any) -> Schedule:
    """Inverse of :func:`to_record` for constants and the classes above."""
    if isinstance(record, dict):
        kind = record.get("schedule")
        if kind == "callable":
            raise ConfigError(
                f"schedule {record.get('name')!r} was a plain callable and cannot be "
                "rebuilt from its record; pass it again in the config, or use "
                "maco_hub.schedules.Linear / Alternating, which are recorded in full."
            )
        if kind not in _CLASSES:
            raise ConfigError(
                f"schedule record {record!r} has no known kind; expected one of {sorted(_CLASSES)}."
            )
        fields = {k: _tuplify(v) for k, v in record.items() if k != "schedule"}
        try:
            return _CLASSES[kind](**fields)
        except TypeError as error:
            raise ConfigError(f"schedule record {record!r} is malformed ({error}).") from None
    return _tuplify(record)


def fingerprint(function: Callable) -> str:
    """sha256 (20 hex digits) of what a callable computes, as far as can be read from it."""
    return hashlib.sha256(_describe(function, depth=0).encode()).hexdigest()[:20]


def _describe(value: Any, depth: int) -> str:
    if depth > 8:
        return "..."
    if isinstance(value, functools.partial):
        return (
            f"partial({_describe(value.func, depth + 1)}, {_value(value.args, depth)}, "
            f"{_value(value.keywords, depth)})"
        )
    if isinstance(value, types.MethodType):
        return f"method({_describe(value.__func__, depth + 1)}, {_value(value.__self__, depth)})"
    if isinstance(value, types.FunctionType):
        code = value.__code__
        globals_read = {
            name: _value(value.__globals__[name], depth)
            for name in code.co_names
            if name in value.__globals__ and not isinstance(value.__globals__[name], types.ModuleType)
        }
        closure = [
            _value(cell.cell_contents, depth) for cell in value.__closure__ or () if _has_contents(cell)
        ]
        return (
            f"function({value.__module__}.{value.__qualname__}, {_code(code, depth)}, "
            f"defaults={_value(value.__defaults__, depth)}, "
            f"kwdefaults={_value(value.__kwdefaults__, depth)}, closure={closure}, "
            f"globals={sorted(globals_read.items())})"
        )
    return f"object({type(value).__module__}.{type(value).__qualname__}, {value!r})"


def _code(code: types.CodeType, depth: int) -> str:
    consts = [_code(c, depth + 1) if isinstance(c, types.CodeType) else repr(c) for c in code.co_consts]
    return f"code({code.co_code.hex()}, {consts}, {code.co_names})"


def _value(value: Any, depth: int) -> str:
    return _describe(value, depth + 1) if callable(value) and not isinstance(value, type) else repr(value)


def _has_contents(cell: types.CellType) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:  # an empty cell
        return False
    return True


def _finite_value(name: str, value: Any) -> int | float | tuple:
    """A schedule's number or sequence of numbers, checked finite (a sequence as a tuple)."""
    if isinstance(value, (str, bytes)):
        items = None
    elif as_finite(value) is not None:
        return as_finite(value)
    else:
        try:
            items = tuple(as_finite(v) for v in value)
        except TypeError:
            items = None
    if not items or any(v is None for v in items):
        raise ConfigError(
            f"{name}={value!r} is invalid: use a finite number or a (low, high) pair of finite numbers."
        )
    return items


def _listify(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _tuplify(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value
