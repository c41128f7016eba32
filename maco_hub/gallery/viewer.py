"""A static ``index.html`` for a gallery folder: a searchable grid of tiles, no server, no network.

Row data is embedded as JSON and drawn by a small inline script. A Content-Security-Policy with
hashes of the inline style and script lets the page load nothing but its own images. Control,
bidi and zero-width characters of any text are shown as visible escapes (``\u202e``, see
:mod:`maco_hub._text`), so no label can reorder or hide what the page shows.

>>> html = render_index_html([{"image": "images/00000.png", "label": "espresso"}], title="Demo")
>>> "espresso" in html and html.startswith("<!doctype html>")
True
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, urlsplit

from .._files import atomic_write
from .._text import visible
from ..errors import ConfigError
from .layout import INDEX_NAME

ROW_FIELDS = ("image", "transparent", "objective", "kind", "layer", "unit", "class_id", "label",
              "score", "seed", "steps", "canvas", "record", "evaluation")  # others are ignored
_PATH_FIELDS = ("image", "transparent")
_TEXT_FIELDS = ("objective", "kind", "layer", "label")

_STYLE = """
:root { color-scheme: dark; --bg: #18191c; --panel: #232529; --line: #34373d; --text: #e8e8ea;
  --muted: #9a9ea6; --accent: #8ab4f8; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header { position: sticky; top: 0; z-index: 1; padding: 16px 24px 12px; background: rgba(24, 25, 28, .94);
  border-bottom: 1px solid var(--line); backdrop-filter: blur(6px); }
h1 { margin: 0; font-size: 20px; font-weight: 600; }
.description { margin: 4px 0 0; color: var(--muted); white-space: pre-line; max-width: 80ch; }
.controls { display: flex; flex-wrap: wrap; align-items: center; gap: 12px 20px; margin-top: 12px; }
#search { width: min(340px, 100%); padding: 7px 10px; border: 1px solid var(--line); border-radius: 6px;
  background: var(--panel); color: var(--text); font: inherit; }
.toggle { display: inline-flex; align-items: center; gap: 6px; cursor: pointer; user-select: none; }
#alpha-toggle { width: 16px; height: 16px; accent-color: var(--accent); }
#count { color: var(--muted); font-variant-numeric: tabular-nums; }
:focus-visible { outline: 2px solid var(--accent); outline-offset: 2px; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip-path: inset(50%);
  white-space: nowrap; }
main { padding: 20px 24px 40px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(220px, 1fr)); gap: 16px;
  align-items: start; }
.tile { display: flex; flex-direction: column; margin: 0; background: var(--panel);
  border: 1px solid var(--line); border-radius: 8px; overflow: hidden; }
.tile[hidden], #empty[hidden] { display: none; }
.frame { display: block; aspect-ratio: 1; background-color: #2a2a2a;
  background-image: conic-gradient(#3a3a3a 25%, transparent 0 50%, #3a3a3a 0 75%, transparent 0);
  background-size: 16px 16px; }
.frame img { display: block; width: 100%; height: 100%; object-fit: contain; }
.frame.missing { display: grid; place-items: center; color: var(--muted); }
.body { display: flex; flex-direction: column; gap: 4px; padding: 10px 12px 12px; min-width: 0; }
.caption { margin: 0; font-size: 15px; font-weight: 600; overflow-wrap: anywhere; }
.objective { color: var(--muted); font-size: 12px; overflow-wrap: anywhere; }
.meta { display: flex; flex-wrap: wrap; gap: 4px; }
.chip { padding: 1px 7px; border-radius: 10px; background: #2e3136; color: var(--muted); font-size: 12px;
  overflow-wrap: anywhere; }
.chip.layer { font-family: ui-monospace, Menlo, Consolas, monospace; }
.score { font-variant-numeric: tabular-nums; }
details { margin-top: 4px; font-size: 12px; }
summary { cursor: pointer; color: var(--accent); }
pre { max-height: 260px; overflow: auto; margin: 6px 0 0; padding: 8px; border-radius: 6px;
  white-space: pre-wrap; overflow-wrap: anywhere;
  background: #141517; color: #cfd3da; font: 11px/1.4 ui-monospace, Menlo, Consolas, monospace; }
#empty { color: var(--muted); }
.chip.eval.hit { color: #9fe0a8; }
.chip.eval.miss { color: #f2a7a0; }
#legibility { margin-top: 12px; font-size: 12px; color: var(--muted); }
#legibility table { border-collapse: collapse; margin: 4px 0; font-variant-numeric: tabular-nums; }
#legibility th, #legibility td { padding: 2px 8px; border-bottom: 1px solid var(--line); text-align: right; }
#legibility th:first-child, #legibility td:first-child { text-align: left; color: var(--text); }
#legibility p { margin: 4px 0 0; max-width: 100ch; }
"""

_SCRIPT = """
"use strict";
(() => {
  const rows = JSON.parse(document.getElementById("rows").textContent);
  const grid = document.getElementById("grid");
  const search = document.getElementById("search");
  const toggle = document.getElementById("alpha-toggle");
  const count = document.getElementById("count");
  const empty = document.getElementById("empty");

  const el = (tag, cls, text) => {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  };
  const fmt = (x) => typeof x !== "number" ? String(x)
    : (x !== 0 && (Math.abs(x) >= 1e4 || Math.abs(x) < 1e-3)) ? x.toExponential(3) : x.toFixed(3);

  const tiles = rows.map((row, i) => {
    const caption = row.label ?? row.objective ?? `#${i}`;
    const tile = el("figure", "tile");
    tile.dataset.index = String(i);
    let img = null, link = null;
    if (row.image) {
      link = el("a", "frame");
      link.href = row.image;
      link.setAttribute("aria-label", `Open the full-size image of ${caption}`);
      img = el("img");
      img.loading = "lazy";
      img.decoding = "async";
      img.alt = caption;
      img.src = row.image;
      link.append(img);
    } else {
      link = el("div", "frame missing", "no image");
    }
    const body = el("figcaption", "body");
    body.append(el("p", "caption", caption));
    if (row.label !== null && row.objective !== null && row.objective !== row.label) {
      body.append(el("div", "objective", row.objective));
    }
    const meta = el("div", "meta");
    if (row.kind !== null) meta.append(el("span", "chip kind", row.kind));
    if (row.layer !== null) meta.append(el("span", "chip layer", row.layer));
    if (row.unit !== null) meta.append(el("span", "chip unit", `unit ${row.unit}`));
    if (row.class_id !== null) meta.append(el("span", "chip class", `class ${row.class_id}`));
    if (row.score !== null) meta.append(el("span", "chip score", `score ${fmt(row.score)}`));
    if (row.seed !== null) meta.append(el("span", "chip seed", `seed ${row.seed}`));
    if (row.steps !== null) meta.append(el("span", "chip steps", `${row.steps} steps`));
    if (row.canvas !== null) meta.append(el("span", "chip canvas", `canvas ${row.canvas} px`));
    for (const v of Array.isArray(row.evaluation) ? row.evaluation : []) {
      if (v.status === "not a class row") continue;
      const judged = v.status === "ok" && typeof v.prob === "number";
      const crops = typeof v.crops_top1 === "number" ? ` · crops ${Math.round(100 * v.crops_top1)} %` : "";
      const chip = el("span", `chip eval ${judged ? (v.top1 ? "hit" : "miss") : ""}`,
                      judged ? `${v.judge} ${v.top1 ? "✓" : "✗"} p ${v.prob.toFixed(2)}${crops}`
                             : `${v.judge}: ${v.status}`);
      chip.title = "judge, top-1 on the whole canvas, probability of the class, top-1 rate on crops";
      meta.append(chip);
    }
    body.append(meta);
    const details = el("details", "record");
    details.append(el("summary", null, "Reproducibility record"),
                   el("pre", null, JSON.stringify(row.record ?? {}, null, 2)));
    body.append(details);
    tile.append(link, body);
    const text = [row.label, row.objective, row.layer].filter((t) => t !== null).join(" ").toLowerCase();
    return { row, tile, img, link, text };
  });
  const fragment = document.createDocumentFragment();
  for (const t of tiles) fragment.append(t.tile);
  grid.append(fragment);

  const filter = () => {
    const words = search.value.toLowerCase().split(/\\s+/).filter(Boolean);
    let shown = 0;
    for (const t of tiles) {
      t.tile.hidden = !words.every((w) => t.text.includes(w));
      if (!t.tile.hidden) shown += 1;
    }
    count.textContent = `${shown} of ${tiles.length} shown`;
    empty.hidden = shown > 0;
  };
  const showAlpha = () => {
    document.body.classList.toggle("alpha", toggle.checked);
    for (const t of tiles) {
      if (!t.img) continue;
      const src = toggle.checked && t.row.transparent ? t.row.transparent : t.row.image;
      if (t.img.getAttribute("src") !== src) t.img.src = src;
      t.link.href = src;
    }
  };
  search.addEventListener("input", filter);
  search.addEventListener("keydown", (e) => {
    if (e.key === "Escape") { search.value = ""; filter(); }
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "/" && document.activeElement !== search) { e.preventDefault(); search.focus(); }
  });
  toggle.addEventListener("change", showAlpha);
  filter();
  showAlpha();
})();
"""

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="@@csp@@">
<meta name="generator" content="maco_hub">
<title>@@title@@</title>
<style>@@style@@</style>
</head>
<body>
<header>
<h1>@@title@@</h1>
@@description@@
<div class="controls" role="search">
<label class="visually-hidden" for="search">Filter by label, objective or layer</label>
<input id="search" type="search" placeholder="Filter by label, objective or layer (press /)"
  autocomplete="off" spellcheck="false">
<label class="toggle"><input id="alpha-toggle" type="checkbox"> Show attribution as transparency</label>
<span id="count" role="status" aria-live="polite">@@total@@ of @@total@@ shown</span>
</div>
@@summary@@
</header>
<main>
<noscript><p>This gallery is drawn by JavaScript; the images are in the gallery folder.</p></noscript>
<p id="empty" hidden>No tile matches the filter.</p>
<div id="grid" class="grid" aria-label="Visualizations"></div>
</main>
<script id="rows" type="application/json">@@rows@@</script>
<script>@@script@@</script>
</body>
</html>
"""


def render_index_html(rows: Sequence[Mapping[str, Any]], *, title: str, description: str = "",
                      summary: Mapping[str, Any] | None = None) -> str:
    """The gallery page for ``rows`` (mappings with the keys in :data:`ROW_FIELDS`, any may be None).

    ``image`` and ``transparent`` are paths relative to the page's folder; ``record`` is shown as
    JSON per tile; ``evaluation`` is a list of ``{judge, status, top1, prob, crops_top1}`` shown
    as one chip per judge. ``title`` and ``description`` are plain text; ``summary`` (plain-text
    ``header``, ``rows`` of cells and ``notes``) becomes the legibility table under the title.
    """
    if not isinstance(title, str) or not isinstance(description, str):
        raise ConfigError(f"title={title!r} and description={description!r} must be strings.")
    if isinstance(rows, (str, bytes, Mapping)) or not isinstance(rows, Sequence):
        raise ConfigError(f"rows must be a sequence of mappings, got {type(rows).__name__}; "
                          "pass a list with one dict per image.")
    data = [_clean_row(i, row) for i, row in enumerate(rows)]
    values = {
        "csp": _content_security_policy(),
        "title": html.escape(visible(title)),
        "description": (f'<p class="description">{html.escape(visible(description, keep=chr(10)))}</p>'
                        if description else ""),
        "total": str(len(data)),
        "summary": _summary_html(summary),
        "style": _STYLE,
        "script": _SCRIPT,
        "rows": _script_safe_json(data),
    }
    return re.sub(r"@@(\w+)@@", lambda m: values[m.group(1)], _PAGE)


def write_index_html(folder: str | os.PathLike[str], rows: Sequence[Mapping[str, Any]], *, title: str,
                     description: str = "", summary: Mapping[str, Any] | None = None) -> Path:
    """Render the page and write it atomically to ``folder/index.html``; return that path."""
    page = render_index_html(rows, title=title, description=description, summary=summary)
    return atomic_write(Path(folder) / INDEX_NAME, page)


def _summary_html(summary: Mapping[str, Any] | None) -> str:
    """The legibility table as escaped HTML (every cell is text)."""
    if not summary:
        return ""
    cell = lambda tag, text: f"<{tag}>{html.escape(visible(str(text)))}</{tag}>"  # noqa: E731
    head = "".join(cell("th", text) for text in summary.get("header", ()))
    body = "".join("<tr>" + "".join(cell("td", text) for text in cells) + "</tr>"
                   for cells in summary.get("rows", ()))
    notes = "".join(cell("p", note) for note in summary.get("notes", ()))
    return (f'<section id="legibility" aria-label="Legibility"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>{notes}</section>")


def _clean_row(index: int, row: Any) -> dict[str, Any]:
    if not isinstance(row, Mapping):
        raise ConfigError(f"rows[{index}] is a {type(row).__name__}; each row must be a mapping "
                          f"with keys among {', '.join(ROW_FIELDS)}.")
    clean = {key: _jsonable(row.get(key)) for key in ROW_FIELDS}
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
    text = os.fspath(path) if isinstance(path, (str, os.PathLike)) else None
    if not text:
        raise ConfigError(f"rows[{index}][{key!r}]={path!r} must be a non-empty relative file path "
                          "such as 'images/00000.png'.")
    text = text.replace("\\", "/")
    pure = PurePosixPath(text)
    if urlsplit(text).scheme or pure.is_absolute() or ".." in pure.parts:
        raise ConfigError(f"rows[{index}][{key!r}]={path!r} must be a relative path inside the gallery "
                          "folder (no URL, no leading '/', no '..'), such as 'images/00000.png'.")
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

    return (f"default-src 'none'; img-src 'self'; style-src {digest(_STYLE)}; "
            f"script-src {digest(_SCRIPT)}; base-uri 'none'; form-action 'none'")
