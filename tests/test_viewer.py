"""The gallery page: escaping and files from Python, then behaviour in a real headless Chromium."""

from __future__ import annotations

import doctest
import io
import json
import re
import stat
from pathlib import Path

import numpy as np
import pytest
from browser import console_errors
from PIL import Image

from maco_hub._text import visible
from maco_hub.errors import ConfigError
from maco_hub.gallery import viewer
from maco_hub.gallery.viewer import render_index_html, write_index_html

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"  # kept out of git (.gitignore)
EVIL_LABEL = "</script><b>x"
SIDE = 128  # fixture image side in pixels


def _record(seed: int, **extra) -> dict:
    return {
        "model_id": "org/tiny-model",
        "model_revision": "0" * 40,
        "seed": seed,
        "spectrum": {"repo_id": "org/spectrum", "sha256": "ab" * 32},
        "config": {"steps": 8},
        **extra,
    }


ROWS = [
    {
        "objective": "class 967 (espresso)",
        "kind": "class",
        "layer": None,
        "unit": None,
        "class_id": 967,
        "label": "espresso",
        "score": 12.3456,
        "seed": 0,
        "record": _record(0),
    },
    {
        "objective": "class 967 (espresso)",
        "kind": "class",
        "layer": None,
        "unit": None,
        "class_id": 967,
        "label": "Espresso",
        "score": 9.5,
        "seed": 1,
        "record": _record(1),
    },
    {
        "objective": "class 281 (tabby cat)",
        "kind": "class",
        "layer": None,
        "unit": None,
        "class_id": 281,
        "label": "tabby cat",
        "score": 7.25,
        "seed": 2,
        "steps": 64,
        "canvas": 256,
        "record": _record(2),
    },
    {
        "objective": "channel 17 of convnext.encoder.stages.2.layers.1",
        "kind": "channel",
        "layer": "convnext.encoder.stages.2.layers.1",
        "unit": 17,
        "class_id": None,
        "label": None,
        "score": 0.0421,
        "seed": 3,
        "record": _record(3),
    },
    {
        "objective": "class 1 (goldfish)",
        "kind": "class",
        "layer": None,
        "unit": None,
        "class_id": 1,
        "label": EVIL_LABEL,
        "score": -1.5,
        "seed": 4,
        "record": _record(4, note="</script><!--"),
    },
    {
        "objective": "neuron 3 of head",
        "kind": "neuron",
        "layer": "classifier",
        "unit": 3,
        "class_id": None,
        "label": None,
        "score": None,
        "seed": None,
        "record": None,
    },
]


def _pattern(i: int) -> tuple[Image.Image, Image.Image]:
    """A colourful RGB image, bright at the corners, and its RGBA version with a central alpha blob."""
    y, x = np.mgrid[0:SIDE, 0:SIDE] / SIDE
    hue = 2 * np.pi * (i / len(ROWS))
    rgb = np.stack([np.sin(9 * x + 5 * y * np.cos(hue) + c * 2.1 + hue) for c in range(3)], axis=-1)
    rgb = (0.55 + 0.45 * rgb) * 255
    r2 = (x - 0.5) ** 2 + (y - 0.5) ** 2
    alpha = np.exp(-r2 / 0.03) * 255
    image = Image.fromarray(rgb.round().astype(np.uint8), mode="RGB")
    rgba = np.dstack([rgb, alpha]).round().astype(np.uint8)
    return image, Image.fromarray(rgba, mode="RGBA")


@pytest.fixture
def gallery(tmp_path: Path) -> tuple[Path, list[dict]]:
    """A gallery folder with real PNGs: every row has both images except the last (no transparent)."""
    (tmp_path / "images").mkdir()
    rows = []
    for i, row in enumerate(ROWS):
        image, rgba = _pattern(i)
        image.save(tmp_path / "images" / f"{i:05d}.png")
        rgba.save(tmp_path / "images" / f"{i:05d}-alpha.png")
        transparent = None if i == len(ROWS) - 1 else f"images/{i:05d}-alpha.png"
        rows.append({"image": f"images/{i:05d}.png", "transparent": transparent, **row})
    return tmp_path, rows


def _embedded_data(page: str) -> dict:
    match = re.search(r'<script id="rows" type="application/json">(.*?)</script>', page, re.S)
    assert match, "no JSON data script in the page"
    return json.loads(match.group(1))


def _embedded_rows(page: str) -> list[dict]:
    """The rows as the page's script sees them: each record its shared part plus its own fields."""
    data = _embedded_data(page)
    rows = []
    for row in data["rows"]:
        shared = row.pop("shared", None)
        if shared is not None:
            row["record"] = {**data["shared"][shared], **row["record"]}
        rows.append(row)
    return rows


# --- Python side ------------------------------------------------------------------------------------


def test_data_round_trips_and_cannot_break_out_of_its_script(gallery):
    _, rows = gallery
    page = render_index_html(rows, title="Tiny <model>", description="a & b")
    assert EVIL_LABEL not in page and "<!--" not in page
    assert page.count("</script>") == 2  # the data script and the code script, nothing more
    data = _embedded_rows(page)
    assert [d["label"] for d in data] == [r["label"] for r in rows]
    assert [d["record"] for d in data] == [r["record"] for r in rows]
    assert data[-1]["transparent"] is None and data[-1]["score"] is None
    assert "<title>Tiny &lt;model&gt;</title>" in page and "a &amp; b" in page
    assert not re.search(r"https?:|//[\w.-]+/|@import|url\(", page)  # no CDN, font or other network use


def test_values_become_plain_json(tmp_path):
    row = {
        "image": Path("images") / "a b#1.png",
        "label": 5,
        "score": float("nan"),
        "seed": np.int64(7),
        "record": {"scale": np.float32(0.5), "sizes": (1, 2), "path": tmp_path},
    }
    [data] = _embedded_rows(render_index_html([row], title="t"))
    assert data["image"] == "images/a%20b%231.png"  # '#' would otherwise start a URL fragment
    assert data["label"] == "5" and data["score"] == "nan" and data["seed"] == 7
    assert data["record"] == {"scale": 0.5, "sizes": [1, 2], "path": str(tmp_path)}
    assert data["objective"] is None and data["transparent"] is None


@pytest.mark.parametrize("path", ["/etc/x.png", "../x.png", "https://example.com/x.png", "", 3])
def test_paths_must_stay_inside_the_folder(path):
    with pytest.raises(ConfigError, match="image"):
        render_index_html([{"image": path}], title="t")


@pytest.mark.parametrize(
    ("rows", "title"), [([["images/0.png"]], "t"), ({"image": "a.png"}, "t"), ([], None)]
)
def test_bad_arguments_are_config_errors(rows, title):
    with pytest.raises(ConfigError):
        render_index_html(rows, title=title)


def test_write_is_atomic_and_readable(gallery):
    folder, rows = gallery
    (folder / "index.html").write_text("old", encoding="utf-8")
    path = write_index_html(folder, rows, title="Tiny")
    assert path == folder / "index.html"
    assert path.read_text(encoding="utf-8") == render_index_html(rows, title="Tiny")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(p.name for p in folder.iterdir()) == ["images", "index.html"]  # no temp file left


def test_failed_write_leaves_no_temp_file(tmp_path):
    (tmp_path / "index.html").mkdir()  # os.replace cannot put a file over a folder
    with pytest.raises(OSError):
        write_index_html(tmp_path, [], title="t")
    assert [p.name for p in tmp_path.iterdir()] == ["index.html"]


def test_docstring_examples_run():
    assert doctest.testmod(viewer).failed == 0


# --- In a real browser ------------------------------------------------------------------------------

_ALL_IMAGES_LOADED = """
const imgs = [...document.querySelectorAll('.tile img')];
return imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0);
"""

_TRY_REMOTE_IMAGE = """
const done = arguments[arguments.length - 1];
document.addEventListener("securitypolicyviolation", (e) => done(e.effectiveDirective), {once: true});
setTimeout(() => done("not blocked"), 3000);
new Image().src = "http://127.0.0.1:9/remote.png";
"""


def _wait(driver, script: str, timeout: float = 10.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: d.execute_script(script))


def _shown(driver) -> list[str]:
    """The row indices of the tiles or cells the page shows, in order."""
    return driver.execute_script(
        "return [...document.querySelectorAll('#grid [data-index]')].map((t) => t.dataset.index);"
    )


def _corner_is_checkerboard(element) -> bool:
    """The top-left corner of a rendered image shows the dark grey checkerboard, not the image."""
    shot = np.asarray(Image.open(io.BytesIO(element.screenshot_as_png)).convert("RGB"), dtype=int)
    corner = shot[2:10, 2:10].reshape(-1, 3)
    return bool((corner.max(axis=1) - corner.min(axis=1) <= 3).all() and (corner.max() < 80))


def test_page_in_headless_chromium(browser, gallery):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    folder, rows = gallery
    page = write_index_html(
        folder, rows, title="Tiny model <gallery>", description="MACO visualizations of a tiny test model."
    )
    browser.get(page.as_uri())
    _wait(browser, _ALL_IMAGES_LOADED)
    assert console_errors(browser) == []
    assert browser.title == "Tiny model <gallery>"

    tiles = browser.find_elements(By.CSS_SELECTOR, ".tile")
    assert [t.get_attribute("data-index") for t in tiles] == [str(i) for i in range(len(rows))]
    count = browser.find_element(By.ID, "count")
    assert count.text == f"{len(rows)} of {len(rows)} shown"
    imgs = browser.find_elements(By.CSS_SELECTOR, ".tile img")
    assert [i.get_attribute("src").split("/")[-1] for i in imgs] == [f"{i:05d}.png" for i in range(len(rows))]

    # The label that tries to close the data script is shown as text, and no markup came out of it.
    captions = [t.find_element(By.CSS_SELECTOR, ".caption").text for t in tiles]
    assert captions == [r["label"] or r["objective"] for r in rows]
    assert browser.find_elements(By.CSS_SELECTOR, "#grid b") == []
    # Steps and canvas tell apart rows of one objective and seed made with other settings.
    chips = [[c.text for c in t.find_elements(By.CSS_SELECTOR, ".chip.steps, .chip.canvas")] for t in tiles]
    assert chips == [["64 steps", "canvas 256 px"] if r.get("steps") else [] for r in rows]

    # One reproducibility record per tile, the row's record as JSON.
    records = [
        json.loads(t.find_element(By.CSS_SELECTOR, "details pre").get_attribute("textContent")) for t in tiles
    ]
    assert records == [r["record"] or {} for r in rows]
    tiles[0].find_element(By.TAG_NAME, "summary").click()
    assert tiles[0].find_element(By.CSS_SELECTOR, "details pre").is_displayed()

    # Toggle: every tile shows its transparent PNG (plain one when it has none), then back.
    assert not _corner_is_checkerboard(imgs[0])
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "viewer.png"))
    browser.find_element(By.ID, "alpha-toggle").click()
    _wait(browser, _ALL_IMAGES_LOADED)
    expected = [r["transparent"] or r["image"] for r in rows]
    assert all(i.get_attribute("src").endswith(e) for i, e in zip(imgs, expected, strict=True))
    assert _corner_is_checkerboard(imgs[0])
    browser.save_screenshot(str(ARTIFACTS / "viewer-transparent.png"))
    browser.find_element(By.ID, "alpha-toggle").click()
    assert all(i.get_attribute("src").endswith(r["image"]) for i, r in zip(imgs, rows, strict=True))

    # Live, case-insensitive search over label, objective and layer.
    search = browser.find_element(By.ID, "search")
    search.send_keys("ESP")
    assert _shown(browser) == ["0", "1"] and count.text == f"2 of {len(rows)} shown"
    search.send_keys(Keys.BACKSPACE * 3)
    assert _shown(browser) == [str(i) for i in range(len(rows))]
    assert count.text == f"{len(rows)} of {len(rows)} shown"
    search.send_keys("stages.2")
    assert _shown(browser) == ["3"]
    search.send_keys("zzz")
    assert count.text == f"0 of {len(rows)} shown"
    assert browser.find_element(By.ID, "empty").is_displayed()
    search.send_keys(Keys.ESCAPE)
    assert count.text == f"{len(rows)} of {len(rows)} shown"
    assert console_errors(browser) == []

    # The page's Content-Security-Policy refuses anything outside its folder, e.g. a remote image.
    blocked = browser.execute_async_script(_TRY_REMOTE_IMAGE)
    assert blocked == "img-src"
    assert any("Content Security Policy" in message for message in console_errors(browser))


EVIL_LAYER = '</script><img src=x onerror="window.__pwned = 1">'


def test_grid_view_groups_and_details_keep_hostile_text_as_text(browser, gallery):
    """The dense grid's captions, the group menu, the atlas headings and the details dialog show
    labels, layers and objectives as text (visible escapes for bidi and control characters)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    folder, rows = gallery
    evil = {**rows[3], "layer": EVIL_LAYER, "label": None, "objective": "\u202eevil\x1b[2J"}
    rows = [*rows, evil, {**rows[4], "label": '<img src=x onerror="window.__pwned = 1">'}]
    page = write_index_html(folder, rows, title="t")
    data = viewer.page_data(rows)
    browser.get(page.as_uri())
    Select(browser.find_element(By.ID, "view")).select_by_value("grid")
    captions = [c.text for c in browser.find_elements(By.CSS_SELECTOR, ".cell-caption")]
    short = [
        r["label"] or (f"{r['layer']}:{r['unit']}" if r["layer"] and r["unit"] is not None else None)
        for r in rows
    ]
    assert captions == [visible(s or r["objective"]) for s, r in zip(short, rows, strict=True)]
    options = [o.text for o in browser.find_elements(By.CSS_SELECTOR, "#group option")][1:]
    assert options == [f"{g['name']} ({g['count']})" for g in data["groups"]]
    assert visible(EVIL_LAYER) + " · channels (1)" in options
    Select(browser.find_element(By.ID, "order")).select_by_value("atlas")
    headings = [h.text for h in browser.find_elements(By.CSS_SELECTOR, ".group-heading")]
    assert headings == [f"{g['name']} ({g['count']})" for g in data["groups"]]  # every group in order
    cell = browser.find_element(By.CSS_SELECTOR, f'.cell[data-index="{len(rows) - 2}"]')
    cell.click()
    dialog = browser.find_element(By.ID, "details")
    assert dialog.is_displayed()
    assert dialog.find_element(By.CSS_SELECTOR, ".caption").text == visible(evil["objective"])
    assert dialog.find_element(By.CSS_SELECTOR, ".chip.layer").text == visible(EVIL_LAYER)
    shown = json.loads(dialog.find_element(By.CSS_SELECTOR, "pre").get_attribute("textContent"))
    assert shown == evil["record"]
    assert dialog.find_element(By.CSS_SELECTOR, "img").get_attribute("src").endswith(evil["image"])
    assert browser.execute_script("return window.__pwned === undefined") is True
    assert browser.execute_script("return document.querySelectorAll('img:not(.frame img)').length") == 0
    dialog.find_element(By.ID, "details-close").click()
    assert not dialog.is_displayed()
    assert console_errors(browser) == []
