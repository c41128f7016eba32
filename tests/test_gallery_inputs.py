"""The images rows were made from, stored once in a gallery (inputs/SHA.png) and trusted nowhere."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers import QUICK
from PIL import Image
from test_gallery_safety import _rewrite_shard
from tiny_models import loaded

import maco_hub
from maco_hub import objectives as obj
from maco_hub._image_files import read_image
from maco_hub.errors import ConfigError, GalleryError
from maco_hub.gallery.inputs import input_name
from maco_hub.gallery.keys import key_of
from maco_hub.gallery.record import RowRecord, read_batch_table


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    y, x = np.mgrid[0:40, 0:56] / 56
    return (np.stack([np.sin(7 * x), np.cos(6 * y), x * y], axis=-1) * 100 + 120).astype(np.uint8)


@pytest.fixture(scope="module")
def made(photo, tmp_path_factory, tiny_zoo) -> Path:
    """A gallery with an accentuated row, an inversion of the same image and two variants."""
    out = tmp_path_factory.mktemp("inputs") / "g"
    model = loaded("resnet")
    maco_hub.explain(model, classes=[1], image=photo, out=out, **QUICK)
    layer = tiny_zoo["resnet"].middle_layer
    maco_hub.explain(model, objectives=[obj.Inversion(photo, layer)], out=out, **QUICK)
    maco_hub.explain(model, classes=[2], variants=2, out=out, **QUICK)
    return out


@pytest.fixture
def gallery(made, tmp_path) -> Path:
    folder = tmp_path / "g"
    shutil.copytree(made, folder)
    return folder


def _input(folder: Path, photo) -> Path:
    return folder / "inputs" / f"{read_image(photo).sha256}.png"


def test_each_image_is_stored_once_and_read_back_checked(gallery, photo):
    assert sorted(p.name for p in (gallery / "inputs").iterdir()) == [_input(gallery, photo).name]
    back = maco_hub.load_gallery(gallery)
    assert [len(item.inputs) for item in back] == [1, 1, 0, 0]
    assert np.array_equal(np.asarray(back[0].inputs[read_image(photo).sha256].image), photo)
    assert [item.record.variant for item in back] == [None, None, 0, 1]
    page = (gallery / "index.html").read_text()
    assert f"inputs/{read_image(photo).sha256}.png" in page and "start image" in page
    assert "inverted image" in page and "variant 2 of 2" in page
    card = (gallery / "README.md").read_text()
    assert "Methods:" in card and "inputs/SHA.png" in card


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (lambda path: path.unlink(), "is missing; run the explain command again with the same image"),
        (lambda path: Image.new("RGB", (40, 40), "red").save(path), "holds other pixels than its name says"),
        (lambda path: Image.new("RGB", (40, 40)).save(path, format="JPEG"), "is not a PNG file"),
        (lambda path: Image.new("L", (5000, 8)).save(path), "is 5000x8 px, not 8 to 4096 px a side"),
        (lambda path: path.write_bytes(path.read_bytes()[:60]), "is not a readable PNG"),
    ],
)
def test_a_missing_or_swapped_input_is_one_error_naming_the_row_and_file(gallery, photo, damage, named):
    path = _input(gallery, photo)
    damage(path)
    with pytest.raises(GalleryError, match=named) as caught:
        maco_hub.load_gallery(gallery)
    message = str(caught.value)
    assert f"inputs/{path.name}" in message and message.startswith("Row ")


def test_a_link_in_inputs_is_refused_before_anything_is_read(gallery, photo, tmp_path):
    path = _input(gallery, photo)
    outside = tmp_path / "outside.png"
    shutil.move(path, outside)
    path.symlink_to(outside)
    with pytest.raises(GalleryError, match="is a symbolic link, not a regular file"):
        maco_hub.load_gallery(gallery)


def test_a_record_cannot_name_a_file_outside_inputs(gallery):
    def crafted(rows):
        record = json.loads(rows[0]["record"])
        record["accentuation"]["image_sha256"] = "../../manifest"
        rows[0]["record"] = json.dumps(record)
        return rows

    _rewrite_shard(gallery, 0, crafted)
    with pytest.raises(
        GalleryError, match=re.escape("'accentuation.image_sha256' is '../../manifest', not a sha256")
    ):
        maco_hub.load_gallery(gallery)
    with pytest.raises(GalleryError, match="not a sha256"):
        input_name("../../manifest")


def test_repair_drops_rows_whose_input_is_gone_and_a_rerun_makes_them_again(gallery, photo):
    _input(gallery, photo).unlink()
    (gallery / "inputs" / f"{'0' * 64}.png").write_bytes(b"left by an interrupted run")
    report = maco_hub.repair_gallery(gallery)
    assert len(report.dropped) == 2 and all("is missing" in line for line in report.dropped)
    assert f"inputs/{'0' * 64}.png" in report.removed
    assert [item.record.variant for item in maco_hub.load_gallery(gallery)] == [0, 1]
    maco_hub.explain(loaded("resnet"), classes=[1], image=photo, out=gallery, **QUICK)
    assert _input(gallery, photo).is_file()
    assert len(maco_hub.load_gallery(gallery)) == 3


def test_a_rerun_restores_a_swapped_input_without_recomputing(gallery, photo):
    path = _input(gallery, photo)
    Image.new("RGB", (40, 40), "red").save(path)
    before = json.loads((gallery / "manifest.json").read_text())
    maco_hub.explain(loaded("resnet"), classes=[1], image=photo, out=gallery, **QUICK)
    assert json.loads((gallery / "manifest.json").read_text()) == before  # no row recomputed
    assert len(maco_hub.load_gallery(gallery)) == 4


def test_inputs_travel_with_a_pushed_gallery(gallery, photo, online_hub):
    repo_id = online_hub.new_repo_id("accentuated")
    maco_hub.push_gallery(maco_hub.load_gallery(gallery), repo_id)
    assert f"inputs/{_input(gallery, photo).name}" in online_hub.list_files(repo_id, repo_type="dataset")
    back = maco_hub.load_gallery(repo_id)
    assert [len(item.inputs) for item in back] == [1, 1, 0, 0]
    again = maco_hub.regenerate(back[0], model=loaded("resnet"), device="cpu")
    assert np.abs(np.asarray(again.image, float) - np.asarray(back[0].image, float)).max() <= 1


def test_the_page_shows_the_method_variant_and_image_of_each_row(gallery, photo, browser):
    from browser import console_errors
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    browser.get((gallery / "index.html").as_uri())
    loaded_all = (
        "return [...document.querySelectorAll('.tile img')].every((i) => i.complete && i.naturalWidth > 0);"
    )
    WebDriverWait(browser, 10).until(lambda d: d.execute_script(loaded_all))
    assert console_errors(browser) == []
    tiles = browser.find_elements(By.CSS_SELECTOR, ".tile")
    inputs = [[a.text for a in tile.find_elements(By.CSS_SELECTOR, "a.input")] for tile in tiles]
    assert inputs == [["start image"], ["inverted image"], [], []]
    notes = [[c.text for c in tile.find_elements(By.CSS_SELECTOR, ".chip.note")] for tile in tiles]
    assert notes[2:] == [["variant 1 of 2"], ["variant 2 of 2"]] and notes[0][0].startswith("from image ")
    thumb = tiles[0].find_element(By.CSS_SELECTOR, "a.input img")
    assert thumb.get_attribute("src").endswith(".png") and "/inputs/" in thumb.get_attribute("src")
    # the dense grid (large galleries) shows the same note under each cell and in its details
    Select(browser.find_element(By.ID, "view")).select_by_value("grid")
    cells = browser.find_elements(By.CSS_SELECTOR, ".cell")
    assert [[n.text for n in c.find_elements(By.CSS_SELECTOR, ".cell-note")] for c in cells] == notes
    cells[3].click()
    dialog = browser.find_element(By.ID, "details")
    assert dialog.find_element(By.CSS_SELECTOR, ".chip.note").text == "variant 2 of 2"
    record = json.loads(dialog.find_element(By.CSS_SELECTOR, "pre").get_attribute("textContent"))
    assert record["variant"] == 1 and record["diversity"]["variants"] == 2
    dialog.find_element(By.ID, "details-close").click()
    cells[0].click()
    assert [a.text for a in dialog.find_elements(By.CSS_SELECTOR, "a.input")] == ["start image"]
    record = json.loads(dialog.find_element(By.CSS_SELECTOR, "pre").get_attribute("textContent"))
    assert record["accentuation"]["image_sha256"] == read_image(photo).sha256
    assert console_errors(browser) == []


def test_a_row_of_an_unknown_method_is_shown_but_not_regenerated(gallery):
    def crafted(method):
        def change(rows):
            record = json.loads(rows[0]["record"])
            record["config"]["method"] = method
            record.pop("key", None)
            rows[0]["record"] = json.dumps(record)
            if isinstance(method, str):  # a record that checks out, keyed by its hash
                rows[0]["key"] = key_of(RowRecord.from_dict(record, batches=batches).identity())
            return rows

        return change

    table = pq.read_table(gallery / json.loads((gallery / "manifest.json").read_text())["shards"][2]["file"])
    batches = read_batch_table(json.loads(table.schema.metadata[b"maco_hub_batches"]), "shard")
    _rewrite_shard(gallery, 2, crafted("cbr"))
    row = maco_hub.load_gallery(gallery)[2]  # a newer maco_hub's method: the picture is still data
    assert row.record.method == "cbr"
    with pytest.raises(
        ConfigError, match=re.escape("method='cbr' is invalid: use one of ('maco', 'fourier')")
    ):
        maco_hub.regenerate(row, model=loaded("resnet"))
    _rewrite_shard(gallery, 2, crafted(7))
    with pytest.raises(GalleryError, match=re.escape("'config.method' is 7, not text")):
        maco_hub.load_gallery(gallery)
