"""Pictures shown outside the viewer: a captioned grid of thumbnails as HTML for notebooks (no
JavaScript; Jupyter shows it for a :class:`~maco_hub.gallery.rows.Gallery`), and one PIL contact
sheet for papers and front ends without HTML. Both take plain pictures and captions, so any
sequence of rows can be drawn; captions are text from data: escaped in HTML, with control, bidi and
zero-width characters as visible escapes (:mod:`maco_hub._text`) in both.

>>> from PIL import Image
>>> sheet = contact_sheet([Image.new("RGB", (64, 64), "red")] * 3, ["a", "b", "c"], columns=2, size=32)
>>> sheet.width, sheet.mode  # 2 columns of 32 px and 3 gaps of 4
(76, 'RGB')
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont, ImageOps

from .._numbers import check_int
from .._text import html_text, visible
from ..errors import ConfigError
from .thumbnails import encoded, mime_type, thumbnail

NOTEBOOK_TILES = 48  # a notebook shows at most this many thumbnails, then "… N more"
NOTEBOOK_SIDE = 96  # px: a JPEG thumbnail is 2-5 KB, so a shown gallery adds at most ~250 KB
GAP = 4  # px between the cells of a contact sheet
MAX_SHEET_PIXELS = 1 << 28  # a contact sheet over 256 megapixels is refused (slice the gallery)
_FIGURE = "margin:0;width:{side}px;font:11px/1.3 sans-serif"
_IMAGE = "display:block;width:{side}px;height:{side}px;object-fit:contain;background:#8884"


def tiles_html(
    pictures: Sequence[Image.Image],
    captions: Sequence[str],
    notes: Sequence[str | None],
    *,
    title: str,
    more: int = 0,
    side: int = NOTEBOOK_SIDE,
) -> str:
    """HTML of a titled, wrapping grid of thumbnails (``side`` px, embedded as data URLs), each
    with its caption and a note under it (e.g. the score), then "… ``more`` more" when some were
    left out. Every text is escaped; there is no script."""
    figures = []
    for picture, caption, note in zip(pictures, captions, notes, strict=True):
        small = thumbnail(picture, side)
        url = f"data:{mime_type(small)};base64,{base64.b64encode(encoded(small)).decode()}"
        below = f'<br><span style="opacity:.7">{html_text(note)}</span>' if note else ""
        figures.append(
            f'<figure style="{_FIGURE.format(side=side)}"><img src="{url}" alt="{html_text(caption)}" '
            f'width="{side}" height="{side}" style="{_IMAGE.format(side=side)}">'
            f'<figcaption style="overflow-wrap:anywhere">{html_text(caption)}{below}</figcaption></figure>'
        )
    rest = f'<p style="margin:6px 0 0">… {more} more</p>' if more else ""
    return (
        f'<div class="maco-hub-gallery"><p style="margin:0 0 6px">{html_text(title)}</p>'
        f'<div style="display:flex;flex-wrap:wrap;gap:8px">{"".join(figures)}</div>{rest}</div>'
    )


def contact_sheet(
    pictures: Sequence[Image.Image],
    captions: Sequence[str] | None = None,
    *,
    columns: int = 8,
    size: int = 128,
    background: str | tuple[int, ...] | None = None,
) -> Image.Image:
    """One image holding ``pictures`` (each scaled to fit ``size`` px) in rows of ``columns``, each
    with its caption under it (shortened with "…" to fit) unless ``captions`` is None. RGBA when a
    picture is RGBA (background transparent unless given), else RGB (background white)."""
    count = len(pictures)
    if count == 0:
        raise ConfigError("There is nothing to draw: the gallery is empty.")
    columns = min(check_int("columns", columns, 1, 1024, "pictures per row"), count)
    size = check_int("size", size, 16, 4096, "px a picture may take")
    if captions is not None and len(captions) != count:
        raise ConfigError(f"captions has {len(captions)} entries for {count} pictures; give one per picture.")
    mode = "RGBA" if any(p.mode == "RGBA" for p in pictures) else "RGB"
    font = _font(max(10, size // 10))
    line = font.getbbox("Ág")[3] + GAP if captions is not None else 0
    rows = math.ceil(count / columns)
    width, height = GAP + columns * (size + GAP), GAP + rows * (size + line + GAP)
    if width * height > MAX_SHEET_PIXELS:
        raise ConfigError(
            f"A contact sheet of {count} pictures at size={size} would be {width}x{height} px; draw "
            "fewer at a time (gallery[:100].grid()) or pass a smaller size."
        )
    fill = background if background is not None else ((0, 0, 0, 0) if mode == "RGBA" else "white")
    try:
        sheet = Image.new(mode, (width, height), fill)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"background={background!r} is not a colour PIL knows ({error}).") from None
    draw = ImageDraw.Draw(sheet)
    corner = sheet.getpixel((0, 0))
    dark = sum(corner[:3]) < 383 and (mode == "RGB" or corner[3] > 127)  # a transparent sheet: black
    ink = "white" if dark else "black"
    for k, picture in enumerate(pictures):
        x, y = GAP + (k % columns) * (size + GAP), GAP + (k // columns) * (size + line + GAP)
        small = ImageOps.contain(picture.convert(mode), (size, size), Image.Resampling.LANCZOS)
        sheet.paste(small, (x + (size - small.width) // 2, y + (size - small.height) // 2))
        if captions is not None:
            draw.text(
                (x, y + size + GAP // 2), _fitted(draw, visible(str(captions[k])), font, size), ink, font
            )
    return sheet


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's own font at ``size`` px (its fixed bitmap font where FreeType is missing)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # Pillow < 10.1, or no FreeType
        return ImageFont.load_default()


def _fitted(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    """``text``, cut and ended with "…" where it is wider than ``width`` px."""
    if draw.textlength(text, font=font) <= width:
        return text
    low, high = 0, len(text)
    while low < high:  # the longest prefix that fits with the ellipsis
        middle = (low + high + 1) // 2
        if draw.textlength(text[:middle] + "…", font=font) <= width:
            low = middle
        else:
            high = middle - 1
    return text[:low] + "…"
