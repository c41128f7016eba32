"""The one check every reader of a shard's rows goes through, and checked rows as visualizations.

Each column's value (non-null where required, text within its limit, the canvas within
1-:data:`~maco_hub.gallery.format.MAX_CANVAS`), the record (typed: :class:`RowRecord`, its fields of
their types, the row's key its hash) and, when read, the images: PNGs whose header gives the row's
canvas, only then decoded, by PIL's PNG plugin alone (its bomb limit kept).
"""

from __future__ import annotations

import io
import struct
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from PIL import Image

from ..errors import GalleryError
from .format import COLUMNS, MAX_CANVAS, MAX_RECORD_BYTES, MAX_TEXT_CHARS, TEXT_LIMITS, parse_json
from .record import BatchMember, RowRecord
from .rows import Visualization

_REQUIRED = ("image", "alpha", "objective", "kind", "score", "config", "record", "key")  # never null
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


def check_rows(
    rows: Sequence[dict[str, Any]],
    where: str,
    remedy: str,
    batches: Mapping[str, Sequence[BatchMember]] | None = None,
) -> None:
    """Check every row of a shard (from :func:`~maco_hub.gallery.format.read_table`) in place: the
    record becomes a :class:`RowRecord` (``batches``: the shard's batch table) and, when read, the
    images checked PIL images. GalleryError naming the row."""
    for index, row in enumerate(rows):
        problem = _value_problem(row)
        if problem is not None:
            raise GalleryError(f"Row {index} of the {where} {problem}; {remedy}.")
        what = f"Row {index} of the {where}"
        try:
            data = parse_json(row["record"], f"the record of row {index} of the {where}", MAX_RECORD_BYTES)
            record = RowRecord.from_dict(data, batches=batches, where=what)
        except GalleryError as error:
            raise GalleryError(f"{error}; {remedy}.") from None
        if record.stored_key not in (None, row["key"]) or not record.accepts_key(row["key"]):
            raise GalleryError(
                f"{what} has key {row['key']!r}, which is not the hash of its record "
                f"(edited or crafted); {remedy}."
            )
        row["record"] = replace(record, stored_key=row["key"])
        if "image" in row:
            problem = _decode_images(row)
            if problem is not None:
                raise GalleryError(f"{what} {problem}; {remedy}.")


def _value_problem(row: dict[str, Any]) -> str | None:
    for column, dtype in COLUMNS:
        value = row.get(column)
        if value is None and column in _REQUIRED and column in row:
            return f"has no {column}"
        limit = TEXT_LIMITS.get(column, MAX_TEXT_CHARS)
        if dtype == "string" and value is not None and len(value) > limit:
            return f"has a {column} {len(value)} characters long (limit {limit}); maco_hub did not write it"
    canvas = row.get("canvas")
    if canvas is not None and not 1 <= canvas <= MAX_CANVAS:
        return f"has canvas {canvas}, not 1 to {MAX_CANVAS} px"
    return None


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
    """Inverse of :func:`~maco_hub.gallery.format.row_of` for a row :func:`check_rows` checked."""
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
        record=row["record"],
    )


def _image(value: Any, mode: str, size: tuple[int, int] | None, what: str) -> Image.Image:
    """A PIL image of ``mode`` from PNG bytes whose header (read before decoding) says ``size``
    (any size up to :data:`MAX_CANVAS` if None); PIL's PNG plugin only, its bomb limit kept."""
    if isinstance(value, Image.Image):
        return value if value.mode == mode else value.convert(mode)
    data = value.get("bytes") if isinstance(value, dict) else None
    found = png_header_size(data)
    if found is None:
        raise GalleryError(f"has an {what} that is not a PNG file")
    if (size is not None and found != size) or max(found) > MAX_CANVAS:
        expected = f"{size[0]}x{size[1]} px (the row's canvas)" if size else f"at most {MAX_CANVAS} px a side"
        raise GalleryError(f"has an {what} of {found[0]}x{found[1]} px, not {expected}")
    try:
        return decoded_png(data, found, mode)
    except PNG_DECODE_ERRORS as error:
        raise GalleryError(f"has an {what} that is not a readable PNG ({type(error).__name__})") from None


def png_header_size(data: object) -> tuple[int, int] | None:
    """(width, height) from a PNG's header, read before anything is decoded; None when ``data`` is
    not the bytes of a PNG."""
    if not isinstance(data, bytes) or len(data) < 24 or data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", data[16:24])


def decoded_png(data: bytes, size: tuple[int, int], mode: str) -> Image.Image:
    """PNG ``data`` whose header gave ``size``, decoded by PIL's PNG plugin only (its bomb limit
    kept) as ``mode``; one of :data:`PNG_DECODE_ERRORS` when it is unreadable or decodes to
    another size."""
    with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
        if image.size != size:
            raise ValueError("its size is not the one of its header")
        return image.convert(mode)  # decodes (the file is still open)
