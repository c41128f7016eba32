"""The reproducibility record of a gallery row, typed: what makes the row (its identity, which the
row key hashes), the settings that tell rows of one objective apart, and how it ran.

A record is stored as JSON in the row's ``record`` column (:meth:`RowRecord.to_dict`). The objectives
optimized together with the row (its *batch*, which :func:`maco_hub.regenerate` re-runs) are stored
once per shard, not in every row: a row names its batch by ``batch_id`` (a hash of the batch's
members) and the shard holds the table (:mod:`maco_hub.gallery.format`). Rows written before that
carry the whole list as ``batch``; both read back the same.

Execution settings (device, CPU threads, compile, crop resampling, crops per model call) never enter
the identity: a rerun with other ones finds the rows it already made. Rows written before that rule
with non-default execution settings keep the key they were written with (:meth:`RowRecord.key`).

Fields added later are stored, and hashed into the key, only when set, so rows made without them
keep their keys: ``accentuation`` (the image a row started from, by the sha256 of its pixels, and
how close it was kept), ``variant`` and ``diversity`` (one of several variants of an objective,
optimized together with a diversity penalty). A gallery stores the images rows name once, as
``inputs/SHA.png`` (:mod:`maco_hub.gallery.inputs`).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .._text import short_repr
from ..errors import GalleryError
from .keys import KEY_LENGTH, canonical_json, is_row_key, key_of

EXECUTION_FIELDS = ("threads", "compile", "resample", "crops_per_forward")
"""Engine config fields that change how a run executes, not the picture it makes."""
BATCH_ID_LENGTH = 16  # hex digits of a batch id
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")

_TEXT_FIELDS = ("model_source", "objective", "device", "maco_hub_version", "torch_version", "python_version")
_SPECTRUM_FIELDS = ("id", "name", "revision", "sha256")
GUIDANCE_FIELDS = ("accentuation", "variant", "diversity")  # stored and hashed only when set


@dataclass(frozen=True)
class BatchMember:
    """One objective of a batch, as data: its objective record and its seed."""

    objective_record: Mapping[str, Any]  # see maco_hub.objectives.records
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return {"objective_record": _plain(self.objective_record), "seed": self.seed}


@dataclass(frozen=True)
class RowRecord:
    """Everything needed to make a row again (see :func:`maco_hub.regenerate`)."""

    model_id: str  # Hub repo id, demo short name, local folder name or "<Class module>"
    model_revision: str | None  # resolved Hub commit, a local folder's fingerprint, or None
    objective_record: Mapping[str, Any]  # the objective as data (maco_hub.objectives.records)
    seed: int  # this row's seed (derived from the base seed and the objective)
    config: Mapping[str, Any]  # the engine config's record (EngineConfig.to_record)
    spectrum: Mapping[str, Any]  # {"id", "name", "revision", "sha256"} (Spectrum.reference)
    objective: str = ""  # readable description (the caption)
    model_source: str | None = None  # what a converted model was made from
    preprocessing: Mapping[str, Any] | None = None  # the model's pixel convention (Preprocessing.to_dict)
    batch: tuple[BatchMember, ...] = ()  # the objectives optimized together with this one, in order
    accentuation: Mapping[str, Any] | None = None  # {"image_sha256", "layer", "weight"}: the start image
    variant: int | None = None  # index among the variants of this objective (set when there are several)
    diversity: Mapping[str, Any] | None = None  # {"variants", "weight", "layer"} of the penalty between them
    device: str | None = None  # device type it ran on
    engine_settings: Mapping[str, Any] = field(default_factory=dict)  # what automatic settings resolved to
    maco_hub_version: str | None = None
    torch_version: str | None = None
    python_version: str | None = None
    stored_key: str | None = field(default=None, compare=False)  # the key it was written with, if any
    stored_batch_id: str | None = field(default=None, compare=False)  # its shard's (checked) id of batch

    def __post_init__(self) -> None:  # own copies, so a caller's dicts never change a record
        for name in (
            "objective_record",
            "config",
            "spectrum",
            "preprocessing",
            "engine_settings",
            *GUIDANCE_FIELDS,
        ):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _plain(value))
        object.__setattr__(self, "batch", tuple(self.batch))

    # --------------------------------------------------------------------------- identity

    def identity(self) -> dict[str, Any]:
        """What the row key hashes: model and revision, objective, seed, the config fields that shape
        the picture (execution settings at their defaults) and the spectrum's sha256."""
        return {
            **self.subject(),
            "config": identity_config(self.config),
            "spectrum_sha256": self.spectrum.get("sha256"),
            **self.guidance(),
        }

    def guidance(self) -> dict[str, Any]:
        """The later fields that are set (see the module docstring), as plain JSON values."""
        return {
            name: _plain(getattr(self, name)) for name in GUIDANCE_FIELDS if getattr(self, name) is not None
        }

    @property
    def method(self) -> str:
        """The image parameterization: "maco" or "fourier" (EngineConfig.method)."""
        return self.config.get("method", "maco")

    @property
    def image_hashes(self) -> frozenset[str]:
        """Pixel sha256 of every image the row's batch was made from: the start image and the
        images its objectives compare with (a gallery stores each as inputs/SHA.png)."""
        found = {self.accentuation["image_sha256"]} if self.accentuation else set()
        for record in (self.objective_record, *(m.objective_record for m in self.batch)):
            found |= record_images(record)
        return frozenset(found)

    def subject(self) -> dict[str, Any]:
        """What is visualized: model, revision, objective and seed. Rows of one subject made with
        other :meth:`settings` are kept apart."""
        return {
            "model_id": self.model_id,
            "model_revision": self.model_revision,
            "objective_record": _plain(self.objective_record),
            "seed": self.seed,
        }

    def settings(self) -> tuple[Any, Any, Any]:
        """(steps, canvas, spectrum sha256): what tells rows of one subject apart in cards and pages."""
        return self.config.get("steps"), self.config.get("canvas"), self.spectrum.get("sha256")

    @property
    def identity_key(self) -> str:
        """The hash of :meth:`identity`: the key of every row written from now on."""
        return key_of(self.identity())

    @property
    def key(self) -> str:
        """The row's key: the one it was written with, else :attr:`identity_key`."""
        return self.stored_key or self.identity_key

    def accepts_key(self, key: str) -> bool:
        """Whether ``key`` is this record's: its identity key, or the key rows written before
        execution settings left the identity got (their config hashed as recorded)."""
        legacy = {**self.identity(), "config": _plain(self.config)}
        return key in (self.identity_key, key_of(legacy))

    @property
    def batch_id(self) -> str | None:
        """A hash of the batch's members (None for a record without a batch)."""
        if not self.batch:
            return None
        return self.stored_batch_id or batch_id(self.batch)

    @property
    def steps(self) -> int | None:
        return self.config.get("steps")

    @property
    def canvas(self) -> int | None:
        return self.config.get("canvas")

    # --------------------------------------------------------------------------- JSON

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored in a row (the batch by its id; :func:`batch_table` holds the members)."""
        data = {
            "model_id": self.model_id,
            "model_revision": self.model_revision,
            "model_source": self.model_source,
            "preprocessing": _plain(self.preprocessing),
            "objective": self.objective,
            "objective_record": _plain(self.objective_record),
            "seed": self.seed,
            "spectrum": _plain(self.spectrum),
            "config": _plain(self.config),
            "device": self.device,
            "maco_hub_version": self.maco_hub_version,
            "torch_version": self.torch_version,
            "python_version": self.python_version,
            "engine_settings": _plain(self.engine_settings),
            "key": self.key,
            **self.guidance(),
        }
        if self.batch:
            data["batch_id"] = self.batch_id
        return data

    @classmethod
    def from_dict(
        cls, data: Any, *, batches: Mapping[str, Sequence[BatchMember]] | None = None, where: str = "The row"
    ) -> RowRecord:
        """A record from untrusted JSON data: every field's type and shape is checked (a GalleryError
        '{where} has a record whose ...' naming the field). ``batches``: the shard's batch table."""
        if not isinstance(data, Mapping):
            kind = {list: "a list", str: "text", int: "an integer"}.get(type(data), type(data).__name__)
            raise GalleryError(f"{where} has a record that is {kind}, not a JSON object")
        check = _Checker(data, where)
        members = check.batch(batches or {})
        record = cls(
            model_id=check.text("model_id", required=True),
            model_revision=check.text("model_revision"),
            objective_record=check.mapping("objective_record", required=True),
            seed=check.integer("seed"),
            config=check.config(),
            spectrum=check.spectrum(),
            objective=check.text("objective") or "",
            model_source=check.text("model_source"),
            preprocessing=check.mapping("preprocessing"),
            batch=members,
            device=check.text("device"),
            engine_settings=check.mapping("engine_settings") or {},
            maco_hub_version=check.text("maco_hub_version"),
            torch_version=check.text("torch_version"),
            python_version=check.text("python_version"),
            accentuation=check.accentuation(),
            variant=check.variant(),
            diversity=check.diversity(),
            stored_key=check.key(),
            stored_batch_id=data.get("batch_id") if members and "batch" not in data else None,
        )
        if members and BatchMember(record.objective_record, record.seed) not in members:
            raise GalleryError(
                f"{where} has a record that names a batch it is not part of (crafted or damaged)"
            )
        return record

    def with_settings(self, settings: Mapping[str, Any]) -> RowRecord:
        """A copy whose ``engine_settings`` are ``settings`` (not part of the identity)."""
        return replace(self, engine_settings=settings)


def record_images(objective_record: Any) -> set[str]:
    """Pixel sha256 of the images an objective record names (an Inversion, also inside a Sum)."""
    if not isinstance(objective_record, Mapping):
        return set()
    found = set()
    if isinstance(objective_record.get("image_sha256"), str):
        found.add(objective_record["image_sha256"])
    for term in objective_record.get("terms") or ():
        if isinstance(term, (list, tuple)) and len(term) == 2:
            found |= record_images(term[1])
    return found


def identity_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with the execution settings at their defaults (absent; ``crops_per_forward`` None,
    as every record has held it since the field existed)."""
    kept = {k: _plain(v) for k, v in config.items() if k not in EXECUTION_FIELDS}
    if "crops_per_forward" in config:
        kept["crops_per_forward"] = None
    return kept


def batch_id(members: Sequence[BatchMember]) -> str:
    """The id of a batch: a hash of its members in order."""
    text = canonical_json([member.to_dict() for member in members])
    return hashlib.sha256(text.encode()).hexdigest()[:BATCH_ID_LENGTH]


def batch_table(records: Sequence[RowRecord]) -> dict[str, list[dict[str, Any]]]:
    """The batches of ``records`` as stored once per shard: ``{batch_id: [member, ...]}``."""
    return {record.batch_id: [m.to_dict() for m in record.batch] for record in records if record.batch}


def read_batch_table(data: Any, where: str) -> dict[str, tuple[BatchMember, ...]]:
    """A shard's batch table from untrusted JSON data; each id must be the hash of its members."""
    if not isinstance(data, Mapping):
        raise GalleryError(f"The batch table of {where} is not a JSON object (crafted or damaged)")
    table = {}
    for name, members in data.items():
        parsed = _members(members, f"Batch {short_repr(name)} of {where}")
        if name != batch_id(parsed):
            raise GalleryError(
                f"Batch {short_repr(name)} of {where} is not the hash of its members (edited or crafted)"
            )
        table[name] = parsed
    return table


# ------------------------------------------------------------------------------- internals


class _Checker:
    """Reads the fields of one untrusted record; a GalleryError '{where} has a record whose ...'
    for the first field that is not of its type."""

    def __init__(self, data: Mapping[str, Any], where: str) -> None:
        self.data, self.where = data, where

    def fail(self, name: str, value: Any, expected: str) -> GalleryError:
        return GalleryError(
            f"{self.where} has a record whose {name!r} is {short_repr(value)}, not "
            f"{expected} (crafted or damaged)"
        )

    def text(self, name: str, *, required: bool = False) -> str | None:
        value = self.data.get(name)
        if value is None and not required:
            return None
        if not isinstance(value, str):
            raise self.fail(name, value, "text")
        return value

    def integer(self, name: str, value: Any = None) -> int:
        value = self.data.get(name) if value is None else value
        if isinstance(value, bool) or not isinstance(value, int) or not -(2**63) <= value < 2**63:
            raise self.fail(name, value, "an integer")
        return value

    def mapping(self, name: str, *, required: bool = False) -> dict[str, Any] | None:
        value = self.data.get(name)
        if value is None and not required:
            return None
        if not isinstance(value, Mapping):
            raise self.fail(name, value, "an object")
        return dict(value)

    def config(self) -> dict[str, Any]:
        config = self.mapping("config", required=True)
        for name in ("steps", "canvas"):
            value = config.get(name)
            if value is not None:
                self.integer(f"config.{name}", value)
        if not isinstance(config.get("method", ""), str):  # an unknown name: regenerate says so
            raise self.fail("config.method", config["method"], "text")
        return config

    def spectrum(self) -> dict[str, Any]:
        spectrum = self.mapping("spectrum", required=True)
        for name in _SPECTRUM_FIELDS:
            value = spectrum.get(name)
            if value is not None and not isinstance(value, str):
                raise self.fail(f"spectrum.{name}", value, "text")
        return spectrum

    def accentuation(self) -> dict[str, Any] | None:
        value = self.mapping("accentuation")
        if value is not None:
            self.sha256("accentuation.image_sha256", value.get("image_sha256"))
            self.optional_text("accentuation.layer", value.get("layer"))
            self.number("accentuation.weight", value.get("weight"))
        return value

    def variant(self) -> int | None:
        value = self.data.get("variant")
        return None if value is None else self.integer("variant", value)

    def diversity(self) -> dict[str, Any] | None:
        value = self.mapping("diversity")
        if value is not None:
            self.integer("diversity.variants", value.get("variants"))
            self.number("diversity.weight", value.get("weight"))
            self.optional_text("diversity.layer", value.get("layer"))
        return value

    def sha256(self, name: str, value: Any) -> None:
        if not isinstance(value, str) or not _SHA256_RE.match(value):
            raise self.fail(name, value, "a sha256 (64 hex digits)")

    def optional_text(self, name: str, value: Any) -> None:
        if value is not None and not isinstance(value, str):
            raise self.fail(name, value, "text")

    def number(self, name: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(name, value, "a finite number")

    def key(self) -> str | None:
        value = self.data.get("key")
        if value is not None and not is_row_key(value):
            raise self.fail("key", value, f"a row key ({KEY_LENGTH} hex digits)")
        return value

    def batch(self, batches: Mapping[str, Sequence[BatchMember]]) -> tuple[BatchMember, ...]:
        if "batch" in self.data:  # rows written before batches were stored once per shard
            return _members(self.data["batch"], f"{self.where} has a record whose 'batch'")
        name = self.data.get("batch_id")
        if name is None:
            return ()
        if not isinstance(name, str) or name not in batches:
            raise self.fail("batch_id", name, "the id of a batch its shard lists")
        return tuple(batches[name])


def _members(value: Any, what: str) -> tuple[BatchMember, ...]:
    """Batch members from untrusted data; ``what`` starts the error ('... is ..., not ...')."""
    if not isinstance(value, list) or not value:
        raise GalleryError(
            f"{what} is {short_repr(value)}, not a list of objectives and seeds (crafted or damaged)"
        )
    members = []
    for item in value:
        seed = item.get("seed") if isinstance(item, Mapping) else None
        objective = item.get("objective_record") if isinstance(item, Mapping) else None
        if isinstance(seed, bool) or not isinstance(seed, int) or not isinstance(objective, Mapping):
            raise GalleryError(
                f"{what} holds {short_repr(item)}, not {{objective_record, seed}} (crafted or damaged)"
            )
        members.append(BatchMember(dict(objective), seed))
    return tuple(members)


def _plain(value: Any) -> Any:
    """A copy as plain JSON values: mappings as dicts, tuples as lists."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
