"""A static ``index.html`` for a gallery folder: a searchable, paged grid of tiles, no server, no network.

Row data is embedded as JSON and drawn by a small inline script, one page of tiles at a time: a
dense grid of thumbnails (details of a tile on demand, in a dialog) or cards, grouped by kind and
layer on request (an atlas: the units of a layer in order), with lazily loaded images. Records are
embedded once per distinct value of their shared part (model, engine config, spectrum, versions, ...)
plus each row's own fields, so the page does not grow by a whole record per row. The page, its style
and its script are package data files (``assets/page.html``, ``viewer.css``, ``viewer.js``); a
Content-Security-Policy with hashes of the inline style and script lets the page load nothing but
its own images. Control,
bidi and zero-width characters of any text are shown as visible escapes (``\u202e``, see
:mod:`maco_hub._text`), so no label can reorder or hide what the page shows.

>>> html = render_index_html([{"image": "images/00000.png", "label": "espresso"}], title="Demo")
>>> "espresso" in html and html.startswith("<!doctype html>")
True
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, urlsplit

from .._files import atomic_write
from .._text import html_text, visible
from ..errors import ConfigError
from .card import KIND_NAMES
from .layout import INDEX_NAME

ROW_FIELDS = (
    "image",
    "transparent",
    "thumb",
    "thumb_transparent",
    "objective",
    "kind",
    "layer",
    "unit",
    "class_id",
    "label",
    "score",
    "seed",
    "steps",
    "canvas",
    "record",
    "evaluation",
    "artifacts",
    "method",
    "note",
    "input",
    "input_role",
)  # others are ignored
_PATH_FIELDS = ("image", "transparent", "thumb", "thumb_transparent", "input")
ASSETS = "assets"  # package data next to this module: page.html, viewer.css, viewer.js
_TEXT_FIELDS = ("objective", "kind", "layer", "label", "method", "note", "input_role")
_VALUE_FIELDS = tuple(f for f in ROW_FIELDS if f not in (*_PATH_FIELDS, "record"))
_PLAIN_PATH = re.compile(r"(?:[A-Za-z0-9_-][A-Za-z0-9_.-]*/)*[A-Za-z0-9_-][A-Za-z0-9_.-]*")
RECORD_ROW_FIELDS = ("objective", "objective_record", "seed", "key", "batch_id", "variant", "accentuation")
"""The fields of a record embedded with its row; the rest is embedded once for all rows sharing it."""


def render_index_html(
    rows: Sequence[Mapping[str, Any]],
    *,
    title: str,
    description: str = "",
    summary: Mapping[str, Any] | None = None,
) -> str:
    """The gallery page for ``rows`` (mappings with the keys in :data:`ROW_FIELDS`, any may be None).

    ``image``, ``transparent`` and their thumbnails ``thumb``, ``thumb_transparent`` (used by the
    dense grid when present) are paths relative to the page's folder; ``record`` is shown as
    JSON per tile; ``evaluation`` is a list of ``{judge, status, top1, prob, crops_top1}`` shown
    as one chip per judge; ``artifacts`` (plain text) the chip of the picture's artifact measures.
    ``title`` and ``description`` are plain text; ``summary`` (plain-text ``header``, ``rows`` of
    cells and ``notes``) becomes the legibility table under the title.
    """
    if not isinstance(title, str) or not isinstance(description, str):
        raise ConfigError(f"title={title!r} and description={description!r} must be strings.")
    data = page_data(rows)
    values = {
        "csp": _content_security_policy(),
        "title": html_text(title),
        "description": (
            f'<p class="description">{html_text(description, keep=chr(10))}</p>' if description else ""
        ),
        "total": str(len(data["rows"])),
        "summary": _summary_html(summary),
        "style": _asset("viewer.css"),
        "script": _asset("viewer.js"),
        "rows": _script_safe_json(data),
    }
    return re.sub(r"@@(\w+)@@", lambda m: values[m.group(1)], _asset("page.html"))


def write_index_html(
    folder: str | os.PathLike[str],
    rows: Sequence[Mapping[str, Any]],
    *,
    title: str,
    description: str = "",
    summary: Mapping[str, Any] | None = None,
) -> Path:
    """Render the page and write it atomically to ``folder/index.html``; return that path."""
    page = render_index_html(rows, title=title, description=description, summary=summary)
    return atomic_write(Path(folder) / INDEX_NAME, page)


def _summary_html(summary: Mapping[str, Any] | None) -> str:
    """The legibility table as escaped HTML (every cell is text)."""
    if not summary:
        return ""
    cell = lambda tag, text: f"<{tag}>{html_text(text)}</{tag}>"  # noqa: E731
    head = "".join(cell("th", text) for text in summary.get("header", ()))
    body = "".join(
        "<tr>" + "".join(cell("td", text) for text in cells) + "</tr>" for cells in summary.get("rows", ())
    )
    notes = "".join(cell("p", note) for note in summary.get("notes", ()))
    return (
        f'<section id="legibility" aria-label="Legibility"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>{notes}</section>"
    )


def page_data(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What the page embeds: ``rows`` (each row's fields as plain JSON, its ``group`` and the own
    part of its record), ``shared`` (the distinct shared parts of the records, by ``row["shared"]``)
    and ``groups`` (kind and layer, in order of first appearance, with their row counts)."""
    if isinstance(rows, (str, bytes, Mapping)) or not isinstance(rows, Sequence):
        raise ConfigError(
            f"rows must be a sequence of mappings, got {type(rows).__name__}; "
            "pass a list with one dict per image."
        )
    data, shared, known, groups, group_of = [], [], {}, [], {}
    for index, row in enumerate(rows):
        clean = _clean_row(index, row)
        record = row.get("record")
        if isinstance(record, Mapping):
            common = {k: v for k, v in record.items() if k not in RECORD_ROW_FIELDS}
            text = repr(common)  # records alike (model, config, spectrum, ...) are made JSON once
            if text not in known:
                known[text] = len(shared)
                shared.append(_jsonable(common))
            clean["shared"] = known[text]
            clean["record"] = _jsonable({k: v for k, v in record.items() if k in RECORD_ROW_FIELDS})
        else:
            clean["record"] = _jsonable(record)
        kind_layer = (clean["kind"], clean["layer"])
        if kind_layer not in group_of:
            group_of[kind_layer] = len(groups)
            groups.append({"name": _group_name(*kind_layer), "count": 0})
        clean["group"] = group_of[kind_layer]
        groups[clean["group"]]["count"] += 1
        data.append(clean)
    return {"rows": data, "shared": shared, "groups": groups}


def _group_name(kind: str | None, layer: str | None) -> str:
    """'class logits', 'features.3 · channels', ... (kind and layer are already visible text)."""
    plural = KIND_NAMES.get(kind, (kind, kind))[1] if kind is not None else "other rows"
    return f"{layer} · {plural}" if layer is not None else plural


def _clean_row(index: int, row: Any) -> dict[str, Any]:
    if not isinstance(row, Mapping):
        raise ConfigError(
            f"rows[{index}] is a {type(row).__name__}; each row must be a mapping "
            f"with keys among {', '.join(ROW_FIELDS)}."
        )
    clean = {key: _jsonable(row.get(key)) for key in _VALUE_FIELDS}
    for key in _TEXT_FIELDS:
        if clean[key] is not None:
            clean[key] = str(clean[key])
    for key in _PATH_FIELDS:
        clean[key] = _relative_url(index, key, row.get(key))
    return clean


def _relative_url(index: int, key: str, path: Any) -> str | None:
    """A file path inside the gallery folder, percent-encoded for use as a relative URL."""
    if path is None:
        return None
    if isinstance(path, str) and _PLAIN_PATH.fullmatch(path):
        return path  # the names maco_hub writes: nothing to check or encode
    text = os.fspath(path) if isinstance(path, (str, os.PathLike)) else None
    if not text:
        raise ConfigError(
            f"rows[{index}][{key!r}]={path!r} must be a non-empty relative file path "
            "such as 'images/00000.png'."
        )
    text = text.replace("\\", "/")
    pure = PurePosixPath(text)
    if urlsplit(text).scheme or pure.is_absolute() or ".." in pure.parts:
        raise ConfigError(
            f"rows[{index}][{key!r}]={path!r} must be a relative path inside the gallery "
            "folder (no URL, no leading '/', no '..'), such as 'images/00000.png'."
        )
    return quote(pure.as_posix(), safe="/")


def _jsonable(value: Any) -> Any:
    """Plain JSON values; non-finite floats become strings (JSON has no NaN), unknown objects str(),
    every string shown with visible escapes (:func:`maco_hub._text.visible`)."""
    if isinstance(value, str):
        return visible(value)
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {visible(str(k)): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_jsonable(v) for v in value), key=str)
    tolist = getattr(value, "tolist", None)  # numpy and torch scalars and arrays
    if callable(tolist):
        return _jsonable(tolist())
    return visible(str(value))


def _script_safe_json(data: Any) -> str:
    """JSON that cannot end its <script> element: '<', '>' and '&' are written as \\u escapes."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    for char in "<>&\u2028\u2029":
        text = text.replace(char, f"\\u{ord(char):04x}")
    return text


def _content_security_policy() -> str:
    def digest(text: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"

    return (
        f"default-src 'none'; img-src 'self'; style-src {digest(_asset('viewer.css'))}; "
        f"script-src {digest(_asset('viewer.js'))}; base-uri 'none'; form-action 'none'"
    )


@functools.cache
def _asset(name: str) -> str:
    """The text of one of the page's files (package data in ``assets/``), read once."""
    return resources.files(__package__).joinpath(ASSETS, name).read_text(encoding="utf-8")
