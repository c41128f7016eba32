"""Identities maco_hub derives by hashing: row keys (which also name a row's files) and seeds."""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from typing import Any

from .._numbers import check_seed

KEY_LENGTH = 20  # hex digits of a row key
_KEY_RE = re.compile(rf"^[0-9a-f]{{{KEY_LENGTH}}}$")


def canonical_json(value: Any) -> str:
    """Stable JSON text: sorted keys, no whitespace."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def seed_for(base_seed: int, objective_record: dict[str, Any]) -> int:
    """The seed of one objective: depends on the base seed and the objective, not on its position.

    So an objective gets the same starting phase whichever list it is explained in, and a gallery
    can be extended with overlapping lists without duplicating rows. ``base_seed`` must be in
    0..:data:`maco_hub._numbers.MAX_SEED` (beyond it, two base seeds would give the same rows).
    """
    crc = zlib.crc32(canonical_json(objective_record).encode())
    return (check_seed(base_seed) * 1_000_003 + crc) % 2**31


def key_of(identity: Any) -> str:
    """The row key of an identity (see :meth:`maco_hub.gallery.record.RowRecord.identity`)."""
    return hashlib.sha256(canonical_json(identity).encode()).hexdigest()[:KEY_LENGTH]


def is_row_key(value: Any) -> bool:
    """Whether ``value`` has the form of a row key (so it is safe in a file name)."""
    return isinstance(value, str) and bool(_KEY_RE.match(value))
