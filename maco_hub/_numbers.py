"""What counts as an integer or a finite number in a user's argument (numpy scalars included).

Both return the value as a plain Python ``int`` / ``float`` (so records stay JSON, and a Python
int or float comes back unchanged, so row keys do not change), or None for anything else: bools,
strings, floats where an integer is meant, NaN and infinities. Callers word the error.
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any

from .errors import ConfigError

STANDARDIZE_EPS = 1e-6  # added to the std where the engine standardizes a phase or canvas
MAX_RNG_SEED = 2**32 - 1  # seeds of numpy's generators (shuffles, evaluate's crop boxes)
MAX_SEED = 2**31 - 1  # seeds are 0..MAX_SEED: gallery.keys.seed_for maps that range one to one
FLOAT32_MAX = 3.4028234663852886e38  # the largest finite float32 (torch.finfo(torch.float32).max)
FLOAT32_TINY = 1.1754943508222875e-38  # the smallest normal float32


def as_integer(value: Any) -> int | None:
    """``value`` as an int when it is one (Python, numpy or a 0-d integer tensor, not a bool)."""
    if isinstance(value, bool) or "bool" in str(getattr(value, "dtype", "")):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def as_finite(value: Any) -> int | float | None:
    """``value`` as an int or float when it is a finite real number (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    number = int(value) if isinstance(value, numbers.Integral) else float(value)
    try:
        return number if math.isfinite(number) else None
    except OverflowError:  # an int beyond float range
        return None


def fits_float32(value: float) -> bool:
    """Whether a finite ``value`` stays finite and, unless 0, normal in float32 (scores' dtype)."""
    return value == 0 or FLOAT32_TINY <= abs(value) <= FLOAT32_MAX


def check_seed(seed: Any, name: str = "seed") -> int:
    """``seed`` as an int, or a :class:`~maco_hub.errors.ConfigError` unless it is an integer
    in 0..:data:`MAX_SEED` (numpy integers are accepted; bools and floats are not)."""
    value = as_integer(seed)
    if value is None or not 0 <= value <= MAX_SEED:
        raise ConfigError(f"{name}={seed!r} is invalid: use an integer from 0 to {MAX_SEED}.")
    return value


def check_int(name: str, value: Any, low: int, high: int, meaning: str) -> int:
    """``value`` as an ``int`` if it is an integer (numpy's too, never a bool) in ``[low, high]``;
    else :class:`~maco_hub.errors.ConfigError` naming it, the range and what it means."""
    number = as_integer(value)
    if number is None or not low <= number <= high:
        raise ConfigError(f"{name}={value!r} must be an integer from {low} to {high} ({meaning}).")
    return number
