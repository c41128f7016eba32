"""The files of a gallery and how they are read when nothing in them is trusted.

Shard names, columns and the manifest's entries are checked against this format; JSON is size-
and depth-limited before it is parsed, so a crafted record cannot exhaust memory or recursion.

Nothing is followed or waited on: a gallery's own folders and files (:func:`gallery_path`) are
real folders and regular files, never symbolic links (a downloaded gallery's files may only link
to blobs of its Hugging Face cache folder), read without blocking (:func:`read_regular`). Sizes
are checked before anything is decoded: a shard's file size (:data:`MAX_SHARD_BYTES`), each of
its columns in the parquet metadata, then every value, column type and record field
(:func:`check_rows`, which every reader goes through). Images must be PNGs whose header gives the
row's canvas; only then are they decoded, by PIL's PNG plugin alone (its bomb limit kept).

An evaluated gallery's shards also hold the evaluation columns (``eval_<judge>_<field>``) that the
manifest's ``evaluation`` entry lists with their dtypes, next to the name and sha256 of
``evaluation.json`` (the summary and settings, :class:`maco_hub.evaluation.Evaluation`).

:func:`row_of` turns a visualization into a shard row (PNG bytes plus metadata columns) and
:func:`visualization_from_row` turns a checked row back.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import stat
import struct
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from ._files import UnsafeFileError, atomic_write, file_kind, read_regular
from ._lock import LOCK_NAME
from .errors import ConfigError, GalleryError
from .evaluation import short_repr
from .gallery import Visualization, png_bytes
from .keys import is_row_key, row_key

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
EVALUATION_NAME = "evaluation.json"
DATA_DIR = "data"
IMAGES_DIR = "images"
MAX_RECORD_BYTES = 1 << 20  # a record is a few kB; anything this big was crafted
MAX_MANIFEST_BYTES = 256 << 20
MAX_EVALUATION_BYTES = 64 << 20  # evaluation.json: ~0.5 kB per row and judge
MAX_JSON_DEPTH = 64  # nesting of a record or the manifest (real ones are under 10 deep)
MAX_TEXT_CHARS = 64 << 10  # a caption, label, layer, id or version (real ones: well under 1 kB)
MAX_CANVAS = 4096  # px a side of a gallery image (50 MB decoded); explain's default is 512
SHARD_TARGET_BYTES = 256 << 20  # an append starts a new shard once a shard's PNGs reach this
MAX_SHARD_BYTES = 2 << 30  # a shard is read whole (sha256, then parquet): 8x what maco_hub writes
COLUMNS = (  # (name, datasets dtype) of a shard, in order
    ("image", "image"), ("alpha", "image"), ("model_id", "string"), ("model_revision", "string"),
    ("objective", "string"), ("kind", "string"), ("layer", "string"), ("unit", "int64"),
    ("class_id", "int64"), ("label", "string"), ("score", "float64"), ("seed", "int64"),
    ("steps", "int64"), ("canvas", "int64"), ("spectrum_id", "string"), ("spectrum_revision", "string"),
    ("spectrum_sha256", "string"), ("maco_hub_version", "string"), ("config", "string"),
    ("record", "string"), ("key", "string"),
)
IMAGE_COLUMNS = ("image", "alpha")
SHARD_RE = re.compile(r"^data/train-([0-9a-f]{5}|[0-9a-f]{16})\.parquet$")  # old counters or hashes
HASH_NAME_LENGTH = 16
EVAL_COLUMN_RE = re.compile(r"^eval_[0-9a-z_]{1,100}$")
EVAL_DTYPES = ("bool", "float64", "int64", "string")
MAX_EVAL_COLUMNS = 32 * 12  # judges x fields per judge
OWN_FOLDERS = (DATA_DIR, IMAGES_DIR)
OWN_FILES = (MANIFEST_NAME, "README.md", "index.html", EVALUATION_NAME, LOCK_NAME)
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_REQUIRED = ("image", "alpha", "objective", "kind", "score", "config", "record", "key")  # never null
_LONG_TEXT = {"config": MAX_RECORD_BYTES, "record": MAX_RECORD_BYTES}  # chars; other text MAX_TEXT_CHARS
_COLUMN_SLACK = 1 << 20  # bytes of parquet page headers and levels on top of a column's values
_RECORD_FIELDS = {  # what readers take from a record: each absent, null or of this type
    "model_id": str, "model_revision": str, "model_source": str, "objective": str, "device": str,
    "maco_hub_version": str, "key": str, "seed": int, "objective_record": dict, "spectrum": dict,
    "config": dict, "preprocessing": dict, "engine_settings": dict, "batch": list}
_NESTED_FIELDS = {"spectrum": {"id": str, "name": str, "revision": str, "sha256": str},
                  "config": {"steps": int, "canvas": int}}  # row_of makes typed columns of them
_TYPE_NAMES = {str: "text", int: "an integer", dict: "an object", list: "a list"}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def features(extra: Sequence[tuple[str, str]] = ()):
    """The ``datasets.Features`` of a gallery shard (with the evaluation columns ``extra``)."""
    from datasets import Features, Value
    from datasets import Image as ImageFeature

    return Features({name: ImageFeature() if dtype == "image" else Value(dtype)
                     for name, dtype in (*COLUMNS, *extra)})


def features_yaml(extra: Sequence[tuple[str, str]] = ()) -> list[dict[str, str]]:
    """The shard's columns as the ``dataset_info.features`` list of a dataset card."""
    return [{"name": name, "dtype": dtype} for name, dtype in (*COLUMNS, *extra)]


def eval_columns(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    """The evaluation columns ``(name, dtype)`` every shard of a checked manifest holds."""
    return [(name, dtype) for name, dtype in (manifest.get("evaluation") or {}).get("columns", [])]


def shard_names(digest: str) -> list[str]:
    """Names a shard with this sha256 may take: a 16-digit part of it (the next one if a file
    maco_hub did not write already has the first)."""
    return [f"{DATA_DIR}/train-{digest[i:i + HASH_NAME_LENGTH]}.parquet"
            for i in range(0, len(digest), HASH_NAME_LENGTH)]


def gallery_path(folder: Path, name: str, *, links_within: Path | None = None) -> Path:
    """The path of the gallery's own file ``name`` (e.g. ``data/train-HASH.parquet``), to read or
    write: GalleryError when a folder on the way is not a real folder (a link, a file) or when
    the file exists as anything but a regular file. With ``links_within`` (the Hugging Face cache
    folder of a downloaded gallery) a link to a regular file inside it is allowed: its target is
    returned."""
    *folders, last = name.split("/")
    current = folder
    for part in folders:
        current = current / part
        _check_folder(folder, current)
    path = current / last
    mode = entry_mode(path)
    if mode is None or stat.S_ISREG(mode):
        return path
    if stat.S_ISLNK(mode) and links_within is not None:
        target = path.resolve()
        if target.is_relative_to(links_within.resolve()) and stat.S_ISREG(entry_mode(target) or 0):
            return target
    raise _not_ours(folder, path, mode, "a regular file")


def check_layout(folder: Path, *, links_within: Path | None = None) -> None:
    """GalleryError unless the gallery's own folders and files (those present) are real folders
    and regular files (see :func:`gallery_path`); nothing is opened."""
    for name in OWN_FOLDERS:
        _check_folder(folder, folder / name)
    for name in OWN_FILES:
        gallery_path(folder, name, links_within=links_within)


def entry_mode(path: Path) -> int | None:
    """``lstat`` mode of ``path`` (None if it does not exist): a link is not followed."""
    try:
        return os.lstat(path).st_mode
    except FileNotFoundError:
        return None


def _check_folder(folder: Path, path: Path) -> None:
    mode = entry_mode(path)
    if mode is not None and not stat.S_ISDIR(mode):
        raise _not_ours(folder, path, mode, "a folder")


def _not_ours(folder: Path, path: Path, mode: int, expected: str) -> GalleryError:
    """The error for a gallery entry that is not the real folder or regular file maco_hub writes."""
    name = path.relative_to(folder).as_posix()
    if stat.S_ISLNK(mode):
        fix = ("maco_hub never reads, writes or deletes through a link inside a gallery (galleries "
               "sharing a linked folder would delete each other's files): replace the link by a copy "
               "of what it points to, or remove it")
    else:
        fix = "maco_hub did not make it: move it out of the gallery folder"
    return GalleryError(f"{name!r} in the gallery {str(folder)!r} is {file_kind(mode)}, not {expected}; "
                        f"{fix}, then run the command again.")


def read_file(path: Path, limit: int, what: str, fix: str | None = None) -> bytes:
    """The bytes of a gallery file (a path from :func:`gallery_path`), read without following a
    link or blocking: GalleryError '{what} is missing / is a FIFO, not a regular file / is N bytes
    (limit L)' (with '; {fix}.')."""
    end = f"; {fix}." if fix else ""
    try:
        return read_regular(path, limit)
    except FileNotFoundError:
        raise GalleryError(f"{what} is missing{end}") from None
    except UnsafeFileError as error:
        raise GalleryError(f"{what} {error}{end}") from None
    except OSError as error:
        raise GalleryError(f"{what} is unreadable ({error.strerror or type(error).__name__}){end}") from None


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


def read_table(data: bytes, name: str, folder: Path, remedy: str, extra: Sequence[tuple[str, str]] = (),
               *, rows: int | None = None, images: bool = True):
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
        raise GalleryError(f"{where} is not a readable parquet file ({type(error).__name__}); "
                           f"{remedy}.") from None
    expected = dict((*COLUMNS, *extra))
    if sorted(schema.names) != sorted(expected):
        more = sorted(set(schema.names) - set(expected))
        missing = sorted(set(expected) - set(schema.names))
        raise GalleryError(f"{where} has other columns than its gallery's {MANIFEST_NAME} lists (extra "
                           f"{short_repr(more)}, missing {missing}); {remedy}.")
    arrow = _arrow_types()
    for column, dtype in expected.items():
        if schema.field(column).type != arrow[dtype]:
            raise GalleryError(f"Column {column!r} of {where[0].lower()}{where[1:]} is "
                               f"{schema.field(column).type}, not {dtype}; {remedy}.")
    if rows is not None and file.metadata.num_rows != rows:
        raise GalleryError(f"{where} holds {file.metadata.num_rows} rows, not the {rows} its "
                           f"{MANIFEST_NAME} lists; {remedy}.")
    _check_column_sizes(file.metadata, where, remedy, expected)
    columns = [c for c in expected if images or c not in IMAGE_COLUMNS]
    try:
        return file.read(columns=columns, use_threads=False)
    except (pa.ArrowException, OSError, ValueError) as error:
        raise GalleryError(f"{where} is not a readable parquet file ({type(error).__name__}); "
                           f"{remedy}.") from None


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
            limit = group.num_rows * 4 * _LONG_TEXT.get(column, MAX_TEXT_CHARS) + _COLUMN_SLACK
            if text and size > limit:
                raise GalleryError(f"Column {chunk.path_in_schema!r} of {where[0].lower()}{where[1:]} holds "
                                   f"{size} bytes for {group.num_rows} rows, over its limit of "
                                   f"{_LONG_TEXT.get(column, MAX_TEXT_CHARS)} characters a row; it was "
                                   f"not written by maco_hub; {remedy}.")
    if total > MAX_SHARD_BYTES:
        raise GalleryError(f"{where} unpacks to {total} bytes, over the limit of {MAX_SHARD_BYTES}; it "
                           f"was not written by maco_hub; {remedy}.")


def _arrow_types() -> dict[str, Any]:
    import pyarrow as pa

    return {"bool": pa.bool_(), "float64": pa.float64(), "int64": pa.int64(), "string": pa.string(),
            "image": pa.struct([("bytes", pa.binary()), ("path", pa.string())])}


def parse_json(text: Any, what: str, limit: int) -> Any:
    """``json.loads`` of untrusted text, refused (GalleryError) when too big or nested too deep."""
    if not isinstance(text, str):
        raise GalleryError(f"{what[0].upper()}{what[1:]} is a {type(text).__name__}, not JSON text.")
    if len(text) > limit:
        raise GalleryError(f"{what[0].upper()}{what[1:]} is {len(text)} characters long (limit {limit}); "
                           "it was not written by maco_hub.")
    depth = deepest = 0
    for char in _STRING_RE.sub('""', text):
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                raise GalleryError(f"{what[0].upper()}{what[1:]} is nested more than {MAX_JSON_DEPTH} "
                                   "levels deep; it was not written by maco_hub.")
        elif char in "]}":
            depth -= 1
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as error:
        raise GalleryError(f"{what[0].upper()}{what[1:]} is not valid JSON ({error}).") from None


def read_manifest(folder: Path, *, links_within: Path | None = None) -> dict[str, Any]:
    """The manifest, with every entry checked: a shard name of ours, well-formed keys and sha256."""
    path = gallery_path(folder, MANIFEST_NAME, links_within=links_within)
    fix = "it was written by another tool or version, or is damaged; run `maco-hub gallery repair`"
    try:
        data = read_file(path, MAX_MANIFEST_BYTES, "it")
        manifest = parse_json(data.decode("utf-8"), "the manifest", MAX_MANIFEST_BYTES)
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION \
                or not isinstance(manifest.get("shards"), list):
            version = manifest.get("format") if isinstance(manifest, dict) else None
            raise GalleryError(f"unsupported format {short_repr(version)}")
        files: set[str] = set()
        keys: set[str] = set()
        for index, entry in enumerate(manifest["shards"]):
            if not isinstance(entry, dict) or not isinstance(entry.get("file"), str) \
                    or not SHARD_RE.match(entry["file"]):
                file = entry.get("file") if isinstance(entry, dict) else entry
                raise GalleryError(f"shard entry {index} names {file!r}, not a file data/train-*.parquet "
                                   "inside the gallery")
            if not isinstance(entry.get("sha256"), str) or not _SHA256_RE.match(entry["sha256"]):
                raise GalleryError(f"shard {entry['file']!r} has no valid sha256")
            if not isinstance(entry.get("keys"), list) or not all(is_row_key(k) for k in entry["keys"]):
                bad = next((k for k in entry.get("keys") or [None] if not is_row_key(k)), entry.get("keys"))
                raise GalleryError(f"shard {entry['file']!r} lists the row key {short_repr(bad)}, not a "
                                   "maco_hub row key (20 hex digits)")
            if entry["file"] in files or keys & set(entry["keys"]):
                raise GalleryError(f"shard {entry['file']!r} or its rows are listed twice")
            files.add(entry["file"])
            keys.update(entry["keys"])
        check_evaluation_entry(manifest)
    except (UnicodeDecodeError, GalleryError) as error:
        raise GalleryError(f"Gallery manifest {str(folder / MANIFEST_NAME)!r} is unreadable or invalid "
                           f"({error}); {fix}.") from None
    return manifest


def check_evaluation_entry(manifest: dict[str, Any]) -> None:
    """The manifest's ``evaluation``: absent, or its columns with dtypes and evaluation.json's sha256."""
    entry = manifest.get("evaluation")
    if entry is None:
        return
    columns = entry.get("columns") if isinstance(entry, dict) else None
    if not isinstance(columns, list) or len(columns) > MAX_EVAL_COLUMNS:
        raise GalleryError(f"its evaluation entry lists no columns or more than {MAX_EVAL_COLUMNS}")
    names = {name for name, _ in COLUMNS}
    for column in columns:
        if not (isinstance(column, list) and len(column) == 2 and isinstance(column[0], str)
                and EVAL_COLUMN_RE.match(column[0]) and column[1] in EVAL_DTYPES and column[0] not in names):
            raise GalleryError(f"its evaluation column {str(column)[:80]!r} is not [eval_NAME, dtype] with "
                               f"a dtype among {EVAL_DTYPES}, or is listed twice")
        names.add(column[0])
    if "file" in entry and (entry["file"] != EVALUATION_NAME or not isinstance(entry.get("sha256"), str)
                            or not _SHA256_RE.match(entry["sha256"])):
        raise GalleryError(f"its evaluation entry names {str(entry['file'])[:80]!r} or a sha256 that is not "
                           f"{EVALUATION_NAME} with a valid sha256")


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
    return [(f.name, next((d for d, t in names.items() if t == f.type), str(f.type)))
            for f in schema if f.name not in known]


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    atomic_write(gallery_path(folder, MANIFEST_NAME), json.dumps(manifest, indent=1))


def parquet_bytes(rows: Sequence[dict[str, Any]], extra: Sequence[tuple[str, str]] = ()) -> bytes:
    """One parquet file of ``rows`` whose schema carries the ``datasets`` features (Image columns),
    with the evaluation columns ``extra`` (rows without them get None)."""
    import pyarrow.parquet as pq
    from datasets import Dataset

    names = [name for name, _ in extra]
    rows = [{**dict.fromkeys(names), **row} for row in rows]
    table = Dataset.from_list(rows, features=features(extra)).data.table
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


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


def row_of(item: Visualization) -> dict[str, Any]:
    """The dataset row of one visualization (``image``/``alpha`` as PNG bytes); ConfigError for
    images a gallery does not hold (sides over :data:`MAX_CANVAS`, other than the recorded canvas)."""
    key = item.key
    record = {**item.record, "key": key}
    problem = _record_problem(record)
    if problem is not None:
        raise ConfigError(f"The row {item.objective!r} {problem}; a gallery could not read it back.")
    spectrum = record.get("spectrum") or {}
    config = record.get("config") or {}
    side = config.get("canvas")
    if item.image.size != item.alpha.size or max(item.image.size) > MAX_CANVAS \
            or (side is not None and item.image.size != (side, side)):
        raise ConfigError(f"The row {item.objective!r} has an image of {item.image.size} px and an alpha of "
                          f"{item.alpha.size} px, recorded canvas {side}: a gallery holds images of the "
                          f"row's canvas and alphas of the same size, at most {MAX_CANVAS} px a side.")
    return {
        "image": {"bytes": png_bytes(item.image), "path": None},
        "alpha": {"bytes": png_bytes(item.alpha), "path": None},
        "model_id": record.get("model_id"),
        "model_revision": record.get("model_revision"),
        "objective": item.objective,
        "kind": item.kind,
        "layer": item.layer,
        "unit": item.unit,
        "class_id": item.class_id,
        "label": item.label,
        "score": float(item.score),
        "seed": record.get("seed"),
        "steps": config.get("steps"),
        "canvas": config.get("canvas"),
        "spectrum_id": spectrum.get("id"),
        "spectrum_revision": spectrum.get("revision"),
        "spectrum_sha256": spectrum.get("sha256"),
        "maco_hub_version": record.get("maco_hub_version"),
        "config": json.dumps(config, sort_keys=True),
        "record": json.dumps(record, sort_keys=True),
        "key": key,
    }


def check_rows(rows: Sequence[dict[str, Any]], where: str, remedy: str) -> None:
    """Check every row of a shard (from :func:`read_table`) in place, the one check every reader
    relies on: each column's value (non-null where required, text within its limit, the canvas
    within 1-:data:`MAX_CANVAS`), the record (parsed: fields of their types, the row's key its
    hash) and, when read, the images (decoded to checked PIL images). GalleryError naming the row."""
    for index, row in enumerate(rows):
        problem = _value_problem(row)
        if problem is None:
            row["record"] = parse_json(row["record"], f"the record of row {index} of the {where}",
                                       MAX_RECORD_BYTES)
            problem = _record_problem(row["record"])
        if problem is None and row_key(row["record"]) != row["key"]:
            raise GalleryError(f"Row {index} of the {where} has key {row['key']!r}, which is not the hash of "
                               f"its record (edited or crafted); {remedy}.")
        if problem is None and "image" in row:
            problem = _decode_images(row)
        if problem is not None:
            raise GalleryError(f"Row {index} of the {where} {problem}; {remedy}.")


def _value_problem(row: dict[str, Any]) -> str | None:
    for column, dtype in COLUMNS:
        value = row.get(column)
        if value is None and column in _REQUIRED and column in row:
            return f"has no {column}"
        limit = _LONG_TEXT.get(column, MAX_TEXT_CHARS)
        if dtype == "string" and value is not None and len(value) > limit:
            return f"has a {column} {len(value)} characters long (limit {limit}); maco_hub did not write it"
    canvas = row.get("canvas")
    if canvas is not None and not 1 <= canvas <= MAX_CANVAS:
        return f"has canvas {canvas}, not 1 to {MAX_CANVAS} px"
    return None


def _record_problem(record: Any) -> str | None:
    """Why a parsed record does not have the shape readers rely on (None if it does)."""
    if not isinstance(record, dict):
        return f"has a record that is {_type_name(record)}, not a JSON object"
    fields = [(name, kind, record.get(name)) for name, kind in _RECORD_FIELDS.items()]
    for parent, nested in _NESTED_FIELDS.items():
        if isinstance(record.get(parent), dict):
            fields += [(f"{parent}.{name}", kind, record[parent].get(name)) for name, kind in nested.items()]
    for name, kind, value in fields:
        if value is not None and not _is(value, kind):
            return (f"has a record whose {name!r} is {short_repr(value)}, not {_TYPE_NAMES[kind]} or "
                    "null (crafted or damaged)")
    if not all(isinstance(entry, dict) for entry in record.get("batch") or ()):
        return "has a record whose 'batch' is not a list of objects (crafted or damaged)"
    return None


def _is(value: Any, kind: type) -> bool:
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool) and -2**63 <= value < 2**63
    return isinstance(value, kind)


def _type_name(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _decode_images(row: dict[str, Any]) -> str | None:
    """Replace the row's PNG bytes by checked images: RGB and L of the row's canvas (or, without
    one, of equal sizes within :data:`MAX_CANVAS`); why not, if they are not."""
    canvas = row.get("canvas")
    try:
        image = _image(row["image"], "RGB", (canvas, canvas) if canvas is not None else None, "image")
        row["alpha"] = _image(row["alpha"], "L", image.size, "alpha")
    except GalleryError as error:
        return str(error)
    row["image"] = image
    return None


def visualization_from_row(row: dict[str, Any]) -> Visualization:
    """Inverse of :func:`row_of` (image columns as checked PIL images from :func:`check_rows`, or
    ``{"bytes": ...}``; ``record`` as JSON text or already parsed)."""
    record = row["record"]
    image = _image(row["image"], "RGB", None, "image")
    return Visualization(
        image=image,
        alpha=_image(row["alpha"], "L", image.size, "alpha"),
        score=float(row["score"]),
        objective=row["objective"],
        kind=row["kind"],
        layer=row.get("layer"),
        unit=row.get("unit"),
        class_id=row.get("class_id"),
        label=row.get("label"),
        record=parse_json(record, "the record", MAX_RECORD_BYTES) if isinstance(record, str) else record,
    )


def _image(value: Any, mode: str, size: tuple[int, int] | None, what: str) -> Image.Image:
    """A PIL image of ``mode`` from PNG bytes whose header (read before decoding) says ``size``
    (any size up to :data:`MAX_CANVAS` if None); PIL's PNG plugin only, its bomb limit kept."""
    if isinstance(value, Image.Image):
        return value if value.mode == mode else value.convert(mode)
    data = value.get("bytes") if isinstance(value, dict) else None
    if not isinstance(data, bytes) or len(data) < 24 or data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR":
        raise GalleryError(f"has an {what} that is not a PNG file")
    found = struct.unpack(">II", data[16:24])
    if (size is not None and found != size) or max(found) > MAX_CANVAS:
        expected = f"{size[0]}x{size[1]} px (the row's canvas)" if size else f"at most {MAX_CANVAS} px a side"
        raise GalleryError(f"has an {what} of {found[0]}x{found[1]} px, not {expected}")
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            if image.size != found:
                raise ValueError("its size is not the one of its header")
            return image.convert(mode)  # decodes (the file is still open)
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as error:
        raise GalleryError(f"has an {what} that is not a readable PNG ({type(error).__name__})") from None
