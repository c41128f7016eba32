"""Galleries in notebooks and papers: the one-line repr, the HTML grid Jupyter shows (rendered in a
real headless Chromium, hostile labels included), a visualization's image, and the contact sheet."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from browser import console_errors
from PIL import Image

import maco_hub
from maco_hub._text import visible
from maco_hub.errors import ConfigError
from maco_hub.gallery import display
from maco_hub.gallery.display import NOTEBOOK_SIDE, NOTEBOOK_TILES
from maco_hub.gallery.rows import Gallery, Visualization

COMPAT = Path(__file__).parent / "data" / "compat-gallery"
HOSTILE = [
    "</figcaption></figure><script>window.__pwned = 1</script>",
    '<img src=x onerror="window.__pwned = 1">',
    '" onmouseover="window.__pwned = 1" x="',
    "left\u202eright",  # a bidi override would reorder what follows
    "two\nlines\x1b[2J",  # a newline and a terminal escape
    "{{ 7 * 7 }} &amp; <b>bold</b>",
]
CANVAS = 128


def _item(i: int, label: str | None, *, canvas: int = CANVAS, **fields) -> Visualization:
    """A row with a colourful image whose left half has zero attribution."""
    rng = np.random.default_rng(i)
    pixels = rng.integers(40, 216, size=(canvas, canvas, 3), dtype=np.uint8)
    alpha = np.zeros((canvas, canvas), dtype=np.uint8)
    alpha[:, canvas // 2 :] = 255
    values = {"objective": f"objective {i}", "kind": "class", "label": label, **fields}
    return Visualization(
        image=Image.fromarray(pixels, mode="RGB"),
        alpha=Image.fromarray(alpha, mode="L"),
        score=1.5 + i,
        **values,
    )


def _hostile_gallery() -> Gallery:
    rows = [_item(i, label) for i, label in enumerate(HOSTILE)]
    rows.append(_item(len(rows), None, kind="channel", layer="features.3", unit=17))
    return Gallery(tuple(rows))


def test_repr_is_one_line_and_shows_no_raw_control_characters():
    gallery = maco_hub.load_gallery(COMPAT)
    assert repr(gallery) == (
        "<Gallery of 5 visualizations (3 class, 1 channel, 1 sum) of compat-vit, evaluated by 1 judge>"
    )
    assert repr(gallery[0]).startswith("<Visualization 'espresso': \"class 3 'espresso' (logit)\", score")
    hostile = _hostile_gallery()
    for text in [repr(hostile), *map(repr, hostile)]:
        assert "\n" not in text and "\x1b" not in text and "\u202e" not in text
    assert [item.caption for item in hostile][-1] == "features.3:17"  # layer:unit without a label


def test_notebook_html_shows_hostile_labels_as_text_in_chromium(browser, tmp_path):
    gallery = _hostile_gallery()
    fragment = gallery._repr_html_()
    assert "<script" not in fragment and "<img src=x" not in fragment and "<b>" not in fragment
    page = tmp_path / "notebook.html"
    page.write_text(f"<!doctype html><meta charset='utf-8'><body>{fragment}</body>", encoding="utf-8")
    browser.get(page.as_uri())
    found = browser.execute_script(
        """
        const figures = [...document.querySelectorAll("figure")];
        return {
          pwned: window.__pwned === undefined ? null : window.__pwned,
          scripts: document.scripts.length,
          bold: document.querySelectorAll("b").length,
          images: document.querySelectorAll("img").length,
          alts: figures.map((f) => f.querySelector("img").alt),
          captions: figures.map((f) => f.querySelector("figcaption").firstChild.textContent),
          notes: figures.map((f) => f.querySelector("figcaption span").textContent),
          title: document.querySelector(".maco-hub-gallery > p").textContent,
        };
        """
    )
    expected = [visible(item.caption) for item in gallery]
    assert found["pwned"] is None and found["scripts"] == 0 and found["bold"] == 0
    assert found["images"] == len(gallery) and found["alts"] == expected and found["captions"] == expected
    assert found["notes"] == [f"score {item.score:.4g}" for item in gallery]
    assert found["title"] == "Gallery of 7 visualizations (6 class, 1 channel)"
    loaded = browser.execute_script(
        "return [...document.images].map((i) => [i.complete, i.naturalWidth, i.naturalHeight]);"
    )
    assert loaded == [[True, NOTEBOOK_SIDE, NOTEBOOK_SIDE]] * len(gallery)  # thumbnails, not full size
    assert console_errors(browser) == []


def test_notebook_html_is_capped_and_small():
    gallery = Gallery(tuple(_item(i, f"class {i}") for i in range(NOTEBOOK_TILES + 5)))
    fragment = gallery._repr_html_()
    assert fragment.count("<figure") == NOTEBOOK_TILES
    assert "… 5 more</p>" in fragment
    assert len(fragment) / NOTEBOOK_TILES < 12_000  # a saved notebook grows by a few KB a tile
    assert "… " not in Gallery(gallery.items[:3])._repr_html_()


def test_a_visualization_shows_its_image():
    item = _item(0, "espresso")
    shown = Image.open(io.BytesIO(item._repr_png_()))
    assert shown.format == "PNG" and np.array_equal(np.asarray(shown), np.asarray(item.image))


def test_grid_is_one_contact_sheet_with_captions_and_optional_transparency():
    gallery = Gallery(tuple(_item(i, f"class {i}") for i in range(5)))
    sheet = gallery.grid(columns=2, size=64)
    gap = display.GAP
    assert sheet.mode == "RGB" and sheet.width == gap + 2 * (64 + gap)
    cell = (sheet.height - gap) // 3  # 3 rows (of 2, 2 and 1 pictures), each with its caption line
    bare = gallery.grid(columns=2, size=64, captions=False)
    assert bare.height == gap + 3 * (64 + gap) < sheet.height  # captions add a line under each row
    pixels = np.asarray(sheet)
    first = pixels[gap : gap + 64, gap : gap + 64]
    assert first.std() > 20  # the picture, not the white background
    caption = pixels[gap + 64 : gap + cell - gap, gap : gap + 64]
    assert (caption < 128).any() and (caption == 255).any()  # dark text on white
    empty = pixels[gap + 2 * cell :, gap + 64 + gap :]  # the missing 6th cell stays white
    assert (empty == 255).all()
    rgba = gallery.grid(columns=5, size=64, captions=["a", "b", "c", "d", "e"], transparency=True)
    alpha = np.asarray(rgba)[..., 3]
    assert rgba.mode == "RGBA" and rgba.width == gap + 5 * (64 + gap)
    assert (alpha[gap : gap + 64, gap : gap + 26] == 0).all()  # no attribution: transparent
    assert (alpha[gap : gap + 64, gap + 38 : gap + 64] == 255).all()
    assert alpha[0, 0] == 0  # transparent background
    small = Gallery((_item(0, "x", canvas=32),)).grid(size=256, captions=False)
    assert small.size == (gap + 256 + gap,) * 2  # a smaller picture is scaled up to the size asked
    assert np.asarray(small)[gap : gap + 256, gap : gap + 256].std() > 20


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"columns": 0}, "columns=0"),
        ({"columns": 2.5}, "columns=2.5"),
        ({"size": 8}, "size=8"),
        ({"size": True}, "size=True"),
        ({"captions": "abc"}, "captions='abc'"),
        ({"captions": ["only one"]}, "captions has 1 entries"),
        ({"transparency": "yes"}, "transparency='yes'"),
        ({"background": "no such colour"}, "background='no such colour'"),
        ({"size": 4096, "columns": 8}, "draw fewer at a time"),
    ],
)
def test_grid_options_are_checked(options, message):
    gallery = Gallery(tuple(_item(i, f"class {i}") for i in range(12)))
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        gallery.grid(**options)


def test_an_empty_gallery_is_shown_and_refused_for_a_sheet():
    assert repr(Gallery()) == "<Gallery of 0 visualizations>"
    assert "<figure" not in Gallery()._repr_html_()
    with pytest.raises(ConfigError, match="nothing to draw"):
        Gallery().grid()


def test_notebook_display_imports_no_torch():
    code = (
        "import sys, maco_hub; "
        f"g = maco_hub.load_gallery({str(COMPAT)!r}); "
        "assert '<figure' in g._repr_html_() and g.grid().size and repr(g) and g[0]._repr_png_(); "
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
