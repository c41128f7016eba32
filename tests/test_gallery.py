"""Gallery folders: datasets-readable, resumable, appendable, reproducible."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pytest
from helpers import QUICK
from tiny_models import loaded

import maco_hub
from maco_hub.errors import GalleryError
from maco_hub.gallery.folder import MANIFEST_NAME, GalleryFolder


def pixels(image) -> np.ndarray:
    return np.asarray(image)


def assert_same_rows(a, b) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(pixels(x.image), pixels(y.image))
        assert np.array_equal(pixels(x.alpha), pixels(y.alpha))
        assert (x.objective, x.kind, x.layer, x.unit, x.class_id, x.label) == (
            y.objective,
            y.kind,
            y.layer,
            y.unit,
            y.class_id,
            y.label,
        )
        assert x.score == pytest.approx(y.score) and x.record == y.record


def test_saved_gallery_reads_back_with_datasets_and_load_gallery(tiny_zoo, tmp_path):
    tiny = tiny_zoo["resnet"]
    gallery = maco_hub.explain(
        loaded("resnet"), classes=["espresso", 1], layer=tiny.middle_layer, channels=[2], **QUICK
    )
    folder = maco_hub.save_gallery(gallery, tmp_path / "g")
    rows = datasets.load_dataset(str(folder), split="train")
    assert isinstance(rows.features["image"], datasets.Image)
    assert isinstance(rows.features["alpha"], datasets.Image)
    expected = {
        "model_id",
        "model_revision",
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
        "spectrum_id",
        "spectrum_revision",
        "spectrum_sha256",
        "maco_hub_version",
        "config",
    }
    assert expected <= set(rows.column_names)
    assert len(rows) == 3
    for row, item in zip(rows, gallery, strict=True):
        assert np.array_equal(pixels(row["image"].convert("RGB")), pixels(item.image))
        assert np.array_equal(pixels(row["alpha"]), pixels(item.alpha))
        assert row["class_id"] == item.class_id and row["unit"] == item.unit
        assert row["seed"] == item.seed and row["steps"] == 3 and row["canvas"] == 48
        assert row["spectrum_sha256"] == maco_hub.load_spectrum().sha256
        assert json.loads(row["config"])["steps"] == 3
    assert_same_rows(maco_hub.load_gallery(folder), gallery)
    card = (folder / "README.md").read_text()
    shard = json.loads((folder / MANIFEST_NAME).read_text())["shards"][0]["file"]
    assert "feature-visualization" in card and "maco" in card and shard in card
    assert "Rows: 3 (2 class logits, 1 channel)" in card
    assert (folder / "index.html").read_text().count("-transparent.png") == 3
    # the plain PNGs of save_images carry the same names as the gallery's images/ files
    names = sorted(p.name for p in gallery.save_images(tmp_path / "pngs"))
    assert names == sorted(p.name for p in (folder / "images").iterdir())


def test_appending_adds_rows_without_losing_or_duplicating(tiny_zoo, tmp_path):
    model = loaded("vit")
    out = tmp_path / "g"
    first = maco_hub.explain(model, classes=[0, 1], out=out, batch_size=2, **QUICK)
    again = maco_hub.explain(model, classes=[1, 2, 3], out=out, batch_size=2, **QUICK)
    assert [item.class_id for item in again] == [0, 1, 2, 3]
    assert_same_rows(again[:2], first)
    keys = [item.record.key for item in again]
    assert len(set(keys)) == 4
    # the same objective gets the same seed whatever list it is in (and so nearly the same image:
    # batched model calls round differently from single ones, see the README's "Batches")
    alone = maco_hub.explain(model, classes=[3], **QUICK)
    assert alone[0].seed == again[3].seed
    assert np.abs(pixels(alone[0].image).astype(int) - pixels(again[3].image).astype(int)).max() <= 3
    assert len(datasets.load_dataset(str(out), split="train")) == 4


def test_regenerate_reproduces_a_row(tiny_zoo, tmp_path):
    gallery = maco_hub.explain(
        str(tiny_zoo["convnext"].path), classes=[0, 4, 2], batch_size=2, out=tmp_path / "g", **QUICK
    )
    reloaded = maco_hub.load_gallery(tmp_path / "g")
    for index in (1, 2):  # a row of a full batch, and the row that ran alone
        # a local folder is recorded by its name only (portable), so the folder is passed again
        again = maco_hub.regenerate(reloaded[index], model=str(tiny_zoo["convnext"].path))
        difference = np.abs(pixels(again.image).astype(int) - pixels(gallery[index].image).astype(int))
        assert difference.max() <= 1
        assert again.record.key == gallery[index].record.key


def test_folders_that_are_not_galleries_are_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(GalleryError, match="not a maco_hub gallery"):
        GalleryFolder.open(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(GalleryError, match="unreadable"):
        maco_hub.load_gallery(tmp_path / "broken")
    with pytest.raises(GalleryError, match="is a file"):
        GalleryFolder.open(tmp_path / "notes.txt")
