"""A gallery's files and how they are read when nothing in them is trusted: shards, the manifest.

Shard names, columns and the manifest's entries are checked against this format; JSON is size-
and depth-limited before it is parsed, so a crafted record cannot exhaust memory or recursion.
Sizes are checked before anything is decoded: a shard's file size
(:data:`~maco_hub.gallery.layout.MAX_SHARD_BYTES`), each of its columns in the parquet metadata, then
every value, column type and record field (:func:`maco_hub.gallery.row_checks.check_rows`, which every
reader goes through).

A shard's parquet schema metadata holds its batch table (:data:`BATCHES_METADATA`): the members of
every batch its rows were optimized in, stored once (see :mod:`maco_hub.gallery.record`). An
evaluated gallery's shards also hold the evaluation columns (``eval_<judge>_<field>``) that the
manifest's ``evaluation`` entry lists with their dtypes, next to the name and sha256 of
``evaluation.json`` (:mod:`maco_hub.gallery.evaluation_store`).

:func:`row_of` turns a visualization into a shard row (PNG bytes plus metadata columns);
:func:`maco_hub.gallery.row_checks.visualization_from_row` turns a checked row back.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .._files import read_regular
from .._text import short_repr
from ..errors import ConfigError, GalleryError
from .layout import (
    DATA_DIR,
    MANIFEST_NAME,
    MAX_SHARD_BYTES,
)
from .record import BatchMember, RowRecord, batch_table, read_batch_table
from .rows import Visualization, png_bytes

MAX_RECORD_BYTES = 1 << 20  # a record is a few kB; anything this big was crafted
MAX_MANIFEST_BYTES = 256 << 20
MAX_EVALUATION_BYTES = 64 << 20  # evaluation.json: ~0.5 kB per row and judge
MAX_BATCHES_BYTES = 16 << 20  # a shard's batch table: ~0.3 kB per objective of its batches
MAX_JSON_DEPTH = 64  # nesting of a record or the manifest (real ones are under 10 deep)
MAX_TEXT_CHARS = 64 << 10  # a caption, label, layer, id or version (real ones: well under 1 kB)
MAX_CANVAS = 4096  # px a side of a gallery image (50 MB decoded); explain's default is 512
SHARD_TARGET_BYTES = 256 << 20  # an append starts a new shard once a shard's PNGs reach this
BATCHES_METADATA = b"maco_hub_batches"  # parquet schema metadata: the shard's batch table (JSON)
COLUMNS = (  # (name, datasets dtype) of a shard, in order
    ("image", "image"),
    ("alpha", "image"),
    ("model_id", "string"),
    ("model_revision", "string"),
    ("objective", "string"),
    ("kind", "string"),
    ("layer", "string"),
    ("unit", "int64"),
    ("class_id", "int64"),
    ("label", "string"),
    ("score", "float64"),
    ("seed", "int64"),
    ("steps", "int64"),
    ("canvas", "int64"),
    ("spectrum_id", "string"),
    ("spectrum_revision", "string"),
    ("spectrum_sha256", "string"),
    ("maco_hub_version", "string"),
    ("config", "string"),
    ("record", "string"),
    ("key", "string"),
)

IMAGE_COLUMNS = ("image", "alpha")

SHARD_RE = re.compile(r"^data/train-([0-9a-f]{5}|[0-9a-f]{16})\.parquet$")  # old counters or hashes

HASH_NAME_LENGTH = 16

EVAL_COLUMN_RE = re.compile(r"^eval_[0-9a-z_]{1,100}$")

EVAL_DTYPES = ("bool", "float64", "int64", "string")

MAX_EVAL_COLUMNS = 32 * 12 + 16  # judges x fields per judge, plus the artifact measures


_STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)

TEXT_LIMITS = {"config": MAX_RECORD_BYTES, "record": MAX_RECORD_BYTES}  # chars; other text MAX_TEXT_CHARS

_COLUMN_SLACK = 1 << 20  # bytes of parquet page headers and levels on top of a column's values


def features(extra: Sequence[tuple[str, str]] = ()):
    """The ``datasets.Features`` of a gallery shard (with the evaluation columns ``extra``)."""
    from datasets import Features, Value
    from datasets import Image as ImageFeature

    return Features(
        {name: ImageFeature() if dtype == "image" else Value(dtype) for name, dtype in (*COLUMNS, *extra)}
    )


def features_yaml(extra: Sequence[tuple[str, str]] = ()) -> list[dict[str, str]]:
    """The shard's columns as the ``dataset_info.features`` list of a dataset card."""
    return [{"name": name, "dtype": dtype} for name, dtype in (*COLUMNS, *extra)]


def eval_columns(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    """The evaluation columns ``(name, dtype)`` every shard of a checked manifest holds."""
    return [(name, dtype) for name, dtype in (manifest.get("evaluation") or {}).get("columns", [])]


def shard_names(digest: str) -> list[str]:
    """Names a shard with this sha256 may take: a 16-digit part of it (the next one if a file
    maco_hub did not write already has the first)."""
    return [
        f"{DATA_DIR}/train-{digest[i : i + HASH_NAME_LENGTH]}.parquet"
        for i in range(0, len(digest), HASH_NAME_LENGTH)
    ]


def is_own_shard(file: Path) -> bool:
    """A regular file named by the hash of its own content, as :meth:`GalleryFolder.append`
    writes shards (a link, FIFO or file over :data:`MAX_SHARD_BYTES` is not; none is read)."""
    name = f"{DATA_DIR}/{file.name}"
    if not SHARD_RE.match(name):
        return False
    try:
        data = read_regular(file, MAX_SHARD_BYTES)
    except OSError:
        return False
    return name in shard_names(hashlib.sha256(data).hexdigest())


def read_table(
    data: bytes,
    name: str,
    folder: Path,
    remedy: str,
    extra: Sequence[tuple[str, str]] = (),
    *,
    rows: int | None = None,
    images: bool = True,
):
    """The parquet table of a shard's bytes, with exactly the gallery's columns of their types
    (and ``extra``, the evaluation columns), ``rows`` rows if given, and column sizes within
    their limits (read from the metadata, before any value is decompressed). ``images=False``
    leaves the image columns out (they are not decompressed)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    where = f"Gallery shard {name!r} in {folder}"
    try:
        # the very bytes whose sha256 was checked; reading a buffer with threads (torch loaded)
        # made the interpreter abort at exit ("terminate called without an active exception")
        file = pq.ParquetFile(pa.BufferReader(data))
        schema = file.schema_arrow
    except (pa.ArrowException, OSError, ValueError) as error:
        raise GalleryError(
            f"{where} is not a readable parquet file ({type(error).__name__}); {remedy}."
        ) from None
    expected = dict((*COLUMNS, *extra))
    if sorted(schema.names) != sorted(expected):
        more = sorted(set(schema.names) - set(expected))
        missing = sorted(set(expected) - set(schema.names))
        raise GalleryError(
            f"{where} has other columns than its gallery's {MANIFEST_NAME} lists (extra "
            f"{short_repr(more)}, missing {missing}); {remedy}."
        )
    arrow = _arrow_types()
    for column, dtype in expected.items():
        if schema.field(column).type != arrow[dtype]:
            raise GalleryError(
                f"Column {column!r} of {where[0].lower()}{where[1:]} is "
                f"{schema.field(column).type}, not {dtype}; {remedy}."
            )
    if rows is not None and file.metadata.num_rows != rows:
        raise GalleryError(
            f"{where} holds {file.metadata.num_rows} rows, not the {rows} its "
            f"{MANIFEST_NAME} lists; {remedy}."
        )
    _check_column_sizes(file.metadata, where, remedy, expected)
    columns = [c for c in expected if images or c not in IMAGE_COLUMNS]
    try:
        return file.read(columns=columns, use_threads=False)
    except (pa.ArrowException, OSError, ValueError) as error:
        raise GalleryError(
            f"{where} is not a readable parquet file ({type(error).__name__}); {remedy}."
        ) from None


def _check_column_sizes(metadata, where: str, remedy: str, dtypes: dict[str, str]) -> None:
    """Each text column's uncompressed size (from the metadata) fits its values' limits, and the
    whole shard fits :data:`MAX_SHARD_BYTES`: a tiny compressed shard cannot hold huge strings."""
    total = 0
    for group in (metadata.row_group(i) for i in range(metadata.num_row_groups)):
        for chunk in (group.column(j) for j in range(group.num_columns)):
            column, _, part = chunk.path_in_schema.partition(".")
            size = chunk.total_uncompressed_size
            total += size
            text = dtypes.get(column) == "string" or part == "path"
            limit = group.num_rows * 4 * TEXT_LIMITS.get(column, MAX_TEXT_CHARS) + _COLUMN_SLACK
            if text and size > limit:
                raise GalleryError(
                    f"Column {chunk.path_in_schema!r} of {where[0].lower()}{where[1:]} holds "
                    f"{size} bytes for {group.num_rows} rows, over its limit of "
                    f"{TEXT_LIMITS.get(column, MAX_TEXT_CHARS)} characters a row; it was "
                    f"not written by maco_hub; {remedy}."
                )
    if total > MAX_SHARD_BYTES:
        raise GalleryError(
            f"{where} unpacks to {total} bytes, over the limit of {MAX_SHARD_BYTES}; it "
            f"was not written by maco_hub; {remedy}."
        )


def _arrow_types() -> dict[str, Any]:
    import pyarrow as pa

    return {
        "bool": pa.bool_(),
        "float64": pa.float64(),
        "int64": pa.int64(),
        "string": pa.string(),
        "image": pa.struct([("bytes", pa.binary()), ("path", pa.string())]),
    }


def parse_json(text: Any, what: str, limit: int) -> Any:
    """``json.loads`` of untrusted text, refused (GalleryError) when too big or nested too deep."""
    if not isinstance(text, str):
        raise GalleryError(f"{what[0].upper()}{what[1:]} is a {type(text).__name__}, not JSON text.")
    if len(text) > limit:
        raise GalleryError(
            f"{what[0].upper()}{what[1:]} is {len(text)} characters long (limit {limit}); "
            "it was not written by maco_hub."
        )
    depth = deepest = 0
    for char in _STRING_RE.sub('""', text):
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                raise GalleryError(
                    f"{what[0].upper()}{what[1:]} is nested more than {MAX_JSON_DEPTH} "
                    "levels deep; it was not written by maco_hub."
                )
        elif char in "]}":
            depth -= 1
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as error:
        raise GalleryError(f"{what[0].upper()}{what[1:]} is not valid JSON ({error}).") from None


def shard_eval_columns(data: bytes) -> list[tuple[str, str]]:
    """The evaluation columns ``(name, dtype)`` a shard's parquet schema holds (unchecked names)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = _arrow_types()
    try:
        schema = pq.read_schema(pa.BufferReader(data))
    except (pa.ArrowException, OSError, ValueError):
        return []
    known = {name for name, _ in COLUMNS}
    return [
        (f.name, next((d for d, t in names.items() if t == f.type), str(f.type)))
        for f in schema
        if f.name not in known
    ]


def parquet_bytes(
    rows: Sequence[dict[str, Any]],
    extra: Sequence[tuple[str, str]] = (),
    batches: dict[str, list[dict[str, Any]]] | None = None,
) -> bytes:
    """One parquet file of ``rows`` whose schema carries the ``datasets`` features (Image columns),
    with the evaluation columns ``extra`` (rows without them get None) and, in its schema metadata,
    the batch table of its rows (:func:`maco_hub.gallery.record.batch_table`)."""
    import pyarrow.parquet as pq
    from datasets import Dataset

    names = [name for name, _ in extra]
    rows = [{**dict.fromkeys(names), **row} for row in rows]
    table = Dataset.from_list(rows, features=features(extra)).data.table
    if batches:
        text = json.dumps(batches, sort_keys=True, separators=(",", ":")).encode()
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), BATCHES_METADATA: text})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def shard_batches(table: Any, where: str) -> dict[str, tuple[BatchMember, ...]]:
    """The checked batch table a shard's parquet schema metadata holds (empty for older shards)."""
    raw = (table.schema.metadata or {}).get(BATCHES_METADATA)
    if raw is None:
        return {}
    text = raw.decode("utf-8", errors="replace")
    return read_batch_table(parse_json(text, f"the batch table of {where}", MAX_BATCHES_BYTES), where)


def shard_chunks(items: Iterable[Visualization]) -> Iterator[list[tuple[Visualization, dict[str, Any]]]]:
    """``(item, row_of(item))`` pairs grouped into shards whose PNGs stay near
    :data:`SHARD_TARGET_BYTES` (a new shard starts once a shard's PNGs reach it)."""
    chunk: list[tuple[Visualization, dict[str, Any]]] = []
    size = 0
    for item in items:
        row = row_of(item)
        chunk.append((item, row))
        size += sum(len(row[column]["bytes"]) for column in IMAGE_COLUMNS)
        if size >= SHARD_TARGET_BYTES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def shard_bytes(
    chunk: Sequence[tuple[Visualization, dict[str, Any]]], extra: Sequence[tuple[str, str]] = ()
) -> bytes:
    """The parquet file of one chunk of :func:`shard_chunks`, with the batch table of its rows."""
    return parquet_bytes([row for _, row in chunk], extra, batch_table([item.record for item, _ in chunk]))


def require_record(item: Visualization) -> RowRecord:
    """The row's record; ConfigError for a row without one (a gallery keys and checks rows by it)."""
    if item.record is None:
        raise ConfigError(
            f"The row {item.objective!r} has no reproducibility record; only rows made by "
            "maco_hub can be stored in a gallery."
        )
    return item.record


def row_of(item: Visualization) -> dict[str, Any]:
    """The dataset row of one visualization (``image``/``alpha`` as PNG bytes; the record as JSON
    that names its batch, whose members :func:`shard_bytes` stores once per shard). ConfigError for
    a row a gallery could not read back: no record, or images a gallery does not hold (sides over
    :data:`MAX_CANVAS`, other than the recorded canvas)."""
    record = require_record(item).to_dict()
    try:
        RowRecord.from_dict(
            record,
            batches={item.record.batch_id: item.record.batch} if item.record.batch else None,
            where=f"The row {item.objective!r}",
        )
    except GalleryError as error:
        raise ConfigError(f"{error}; a gallery could not read it back.") from None
    spectrum, config = record["spectrum"], record["config"]
    side = config.get("canvas")
    if (
        item.image.size != item.alpha.size
        or max(item.image.size) > MAX_CANVAS
        or (side is not None and item.image.size != (side, side))
    ):
        raise ConfigError(
            f"The row {item.objective!r} has an image of {item.image.size} px and an alpha of "
            f"{item.alpha.size} px, recorded canvas {side}: a gallery holds images of the "
            f"row's canvas and alphas of the same size, at most {MAX_CANVAS} px a side."
        )
    return {
        "image": {"bytes": png_bytes(item.image), "path": None},
        "alpha": {"bytes": png_bytes(item.alpha), "path": None},
        "model_id": record["model_id"],
        "model_revision": record["model_revision"],
        "objective": item.objective,
        "kind": item.kind,
        "layer": item.layer,
        "unit": item.unit,
        "class_id": item.class_id,
        "label": item.label,
        "score": float(item.score),
        "seed": record["seed"],
        "steps": config.get("steps"),
        "canvas": config.get("canvas"),
        "spectrum_id": spectrum.get("id"),
        "spectrum_revision": spectrum.get("revision"),
        "spectrum_sha256": spectrum.get("sha256"),
        "maco_hub_version": record["maco_hub_version"],
        "config": json.dumps(config, sort_keys=True),
        "record": json.dumps(record, sort_keys=True),
        "key": record["key"],
    }
