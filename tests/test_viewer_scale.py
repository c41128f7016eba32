"""The viewer of a large gallery, in a real headless Chromium: a synthetic gallery built through the
real folder code (scripts/benchmark_viewer.py's rows, written batch by batch with the pages paced as
explain paces them) opens as a dense grid of thumbnails, one page at a time, with details on demand,
grouping by kind and layer, and a filter that finds what a reference filter finds. The 10,000-row
case (the budgets' size) is slow; the script prints the times, this asserts behaviour."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
from browser import console_errors
from conftest import PROJECT_ROOT
from PIL import Image

from maco_hub.gallery.folder import GalleryFolder
from maco_hub.gallery.layout import THUMBS_DIR
from maco_hub.gallery.rows import thumbnail_names
from maco_hub.gallery.thumbnails import PAGE_SIDE

PAGE = 240  # tiles of the dense grid drawn at a time (viewer.js)
QUERIES = ("features.4", "features.6:1", "TABBY", "channel features.2", "zzz")


def _script():
    spec = importlib.util.spec_from_file_location(
        "benchmark_viewer", PROJECT_ROOT / "scripts" / "benchmark_viewer.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(
    scope="module",
    params=[pytest.param(720, id="720-rows"), pytest.param(10_000, id="10000-rows", marks=pytest.mark.slow)],
)
def large(request, tmp_path_factory) -> tuple[Path, list[dict]]:
    """A synthetic gallery of 1/10 class rows then channels of several layers, and its rows."""
    rows = request.param
    folder = tmp_path_factory.mktemp("large") / "g"
    built = _script().build(
        folder, rows, batch_size=max(rows // 8, 50), canvas=24, pages="paced", classes=rows // 10
    )
    assert built["rows"] == rows
    metadata = GalleryFolder.open(folder, create=False).metadata_rows()
    return folder, metadata


def _text(row: dict) -> str:
    """What the filter searches, as the page builds it (label, objective, layer, layer:unit, kind)."""
    unit = f"{row['layer']}:{row['unit']}" if row["layer"] is not None and row["unit"] is not None else None
    return " ".join(
        t for t in (row["label"], row["objective"], row["layer"], unit, row["kind"]) if t is not None
    ).lower()


def _shown(driver) -> list[int]:
    return driver.execute_script(
        "return [...document.querySelectorAll('#grid [data-index]')].map((t) => Number(t.dataset.index));"
    )


def _state(driver) -> dict:
    return driver.execute_script(
        "return {count: document.getElementById('count').textContent,"
        " status: document.getElementById('page-status').textContent,"
        " pager: !document.getElementById('pager').hidden};"
    )


def test_the_page_embeds_rows_not_their_whole_records(large):
    folder, rows = large
    page = (folder / "index.html").read_text(encoding="utf-8")
    assert page.count('"preprocessing"') == 1  # the records' shared part, once
    assert page.count('"objective_record"') == len(rows)  # each row's own part
    assert len(page.encode()) < 1000 * len(rows)
    for row in rows[:: max(1, len(rows) // 50)]:
        for name in thumbnail_names(row["key"]):
            with Image.open(folder / THUMBS_DIR / name) as thumb:
                assert max(thumb.size) <= PAGE_SIDE


def test_a_large_gallery_opens_as_a_paged_grid_of_lazy_thumbnails(browser, large):
    from selenium.webdriver.common.by import By

    folder, rows = large
    browser.get((folder / "index.html").as_uri())
    pages = math.ceil(len(rows) / PAGE)
    assert _shown(browser) == list(range(PAGE))  # one page in the document, not every row
    assert _state(browser) == {
        "count": f"{len(rows)} of {len(rows)} shown",
        "status": f"page 1 of {pages} · 1–{PAGE}",
        "pager": True,
    }
    images = browser.execute_script(
        "return [...document.querySelectorAll('.cell img')].map((i) => [i.getAttribute('src'), i.loading]);"
    )
    assert images == [[f"thumbs/{thumbnail_names(row['key'])[0]}", "lazy"] for row in rows[:PAGE]]
    browser.find_element(By.ID, "next").click()
    assert _shown(browser) == list(range(PAGE, 2 * PAGE))
    browser.find_element(By.ID, "alpha-toggle").click()
    sources = browser.execute_script(
        "return [...document.querySelectorAll('.cell img')].map((i) => i.getAttribute('src'));"
    )
    assert sources == [f"thumbs/{thumbnail_names(row['key'])[1]}" for row in rows[PAGE : 2 * PAGE]]
    browser.find_element(By.ID, "alpha-toggle").click()
    assert console_errors(browser) == []


@pytest.mark.parametrize("query", QUERIES)
def test_the_filter_finds_what_a_reference_filter_finds(browser, large, query):
    folder, rows = large
    browser.get((folder / "index.html").as_uri())
    browser.execute_script(
        "const s = document.getElementById('search'); s.value = arguments[0];"
        " s.dispatchEvent(new Event('input'));",
        query,
    )
    words = query.lower().split()
    expected = [i for i, row in enumerate(rows) if all(w in _text(row) for w in words)]
    assert _shown(browser) == expected[:PAGE]
    assert _state(browser)["count"] == f"{len(expected)} of {len(rows)} shown"
    assert browser.find_element("id", "empty").is_displayed() == (not expected)


def test_a_layer_shows_its_units_in_order_and_the_atlas_groups_every_layer(browser, large):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    folder, rows = large
    browser.get((folder / "index.html").as_uri())
    layer = "features.4"
    Select(browser.find_element(By.ID, "group")).select_by_visible_text(f"{layer} · channels (240)")
    units = [i for i, row in enumerate(rows) if row["layer"] == layer]
    assert _shown(browser) == sorted(units, key=lambda i: rows[i]["unit"])[:PAGE]
    assert browser.find_elements(By.CSS_SELECTOR, ".group-heading") == []
    captions = [c.text for c in browser.find_elements(By.CSS_SELECTOR, ".cell-caption")[:3]]
    assert captions == [f"{layer}:0", f"{layer}:1", f"{layer}:2"]

    Select(browser.find_element(By.ID, "group")).select_by_index(0)
    Select(browser.find_element(By.ID, "order")).select_by_value("atlas")
    classes = sum(row["kind"] == "class" for row in rows)
    headings = [h.text for h in browser.find_elements(By.CSS_SELECTOR, ".group-heading")]
    assert headings[0] == f"class logits ({classes})"
    browser.find_element(By.ID, "next").click()
    first = browser.find_element(By.CSS_SELECTOR, ".group-heading").text
    continued = rows[_shown(browser)[0]]["layer"] == rows[_shown(browser)[0] - 1]["layer"]
    assert first.endswith("— continued") == continued


def test_details_come_on_demand_with_the_stored_record(browser, large):
    from selenium.webdriver.common.by import By

    folder, rows = large
    browser.get((folder / "index.html").as_uri())
    assert browser.find_elements(By.CSS_SELECTOR, "#details pre") == []  # nothing until asked
    index = 7
    browser.find_element(By.CSS_SELECTOR, f'.cell[data-index="{index}"]').click()
    dialog = browser.find_element(By.ID, "details")
    assert dialog.is_displayed()
    record = json.loads(dialog.find_element(By.CSS_SELECTOR, "pre").get_attribute("textContent"))
    assert record == rows[index]["record"].to_dict()
    image = dialog.find_element(By.CSS_SELECTOR, "img").get_attribute("src")
    assert image.endswith(f"images/{rows[index]['key']}.png")
    assert dialog.find_element(By.ID, "details-position").text == f"{index + 1} of {len(rows)}"
    dialog.find_element(By.ID, "details-next").click()
    record = json.loads(dialog.find_element(By.CSS_SELECTOR, "pre").get_attribute("textContent"))
    assert record["key"] == rows[index + 1]["key"]
    dialog.find_element(By.ID, "details-close").click()
    assert not dialog.is_displayed()
    assert console_errors(browser) == []
