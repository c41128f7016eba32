"""Galleries users already have: one written by maco_hub before the package was split into layers
(tests/data/compat-gallery, see tests/data/README.md) loads, resumes, renders and pushes unchanged."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import maco_hub
from maco_hub import objectives as obj
from maco_hub.spectra.loading import shipped_spectrum

DATA = Path(__file__).parent / "data"
MODEL = DATA / "compat-vit"
KEYS = [
    "c484e74740845d7295f9",
    "fb95c23c5e74418e8569",
    "33dade6b49faaf70f301",
    "ad1ca8de7e9835afca00",
    "2c9f70134f6ac7d45b75",
]
RUN = {"steps": 2, "canvas": 32, "device": "cpu", "progress": False, "batch_size": 2}
# the look these rows were made with, before the periodic spectrum and phase_std / contrast (issue 16)
EARLIER = {"phase_std": 1.0, "contrast": 1.0}
EARLIER_SPECTRUM = "be56dd9f587cfe7324ebcd5f6242e08cf78680118797dfb3d357f12315b8a18e"
MIX = obj.ClassLogit(3) - 0.5 * obj.Channel("vit.layers.0", 1, tokens="patch")


@pytest.fixture
def folder(tmp_path) -> Path:
    copy = tmp_path / "compat-gallery"
    shutil.copytree(DATA / "compat-gallery", copy)
    return copy


def test_the_old_gallery_loads_with_its_keys_records_and_evaluation(folder):
    gallery = maco_hub.load_gallery(folder)
    assert [item.key for item in gallery] == KEYS
    assert [item.kind for item in gallery] == ["class", "class", "channel", "sum", "class"]
    assert gallery[0].label == "espresso" and gallery[2].unit == 2
    assert all(item.record.model_id == "compat-vit" for item in gallery)
    assert gallery.evaluation is not None and [s["judge"] for s in gallery.evaluation.summary] == ["self"]
    assert set(gallery.evaluation.rows) == set(KEYS)


def test_explain_over_the_same_objectives_adds_no_row(folder):
    before = sorted(p.name for p in (folder / "data").iterdir())
    earlier = {"config": maco_hub.EngineConfig(**EARLIER), "spectrum": shipped_spectrum(EARLIER_SPECTRUM)}
    maco_hub.explain(str(MODEL), classes=["espresso", 0], out=folder, threads=1, **RUN, **earlier)
    maco_hub.explain(
        str(MODEL), objectives=[obj.Channel("vit.layers.0", 2), MIX], out=folder, threads=1, **RUN, **earlier
    )
    gallery = maco_hub.explain(str(MODEL), classes=[1], out=folder, **RUN, **earlier)
    assert [item.key for item in gallery] == KEYS
    assert sorted(p.name for p in (folder / "data").iterdir()) == before


def test_a_rerun_with_other_execution_settings_adds_no_row(folder):
    """The first four rows were made with threads=1, which their keys still include; threads are an
    execution setting now, so automatic threads (or other resampling, crops per call) find them."""
    before = sorted(p.name for p in (folder / "data").iterdir())
    config = maco_hub.EngineConfig(steps=2, canvas=32, resample="batched", crops_per_forward=3, **EARLIER)
    gallery = maco_hub.explain(
        str(MODEL),
        classes=["espresso", 0, 1],
        out=folder,
        config=config,
        spectrum=shipped_spectrum(EARLIER_SPECTRUM),
        **{k: v for k, v in RUN.items() if k not in ("steps", "canvas")},
    )
    assert [item.key for item in gallery] == KEYS
    assert sorted(p.name for p in (folder / "data").iterdir()) == before


def test_an_old_row_regenerates_to_its_pixels(folder):
    row = maco_hub.load_gallery(folder)[3]  # the sum objective, second of its batch of two
    again = maco_hub.regenerate(row, model=str(MODEL))
    difference = np.abs(np.asarray(again.image, dtype=float) - np.asarray(row.image, dtype=float))
    assert again.record.identity_key == row.record.identity_key and difference.mean() < 1.0


def test_show_html_and_push_work_on_the_old_gallery(folder, maco_cli, online_hub):
    shown = maco_cli("gallery", "show", str(folder))
    assert shown.returncode == 0 and "tiger cat" in shown.stdout and "self" in shown.stdout
    assert maco_cli("gallery", "html", str(folder)).returncode == 0
    assert (folder / "index.html").read_text().count("-transparent.png") == len(KEYS)
    repo_id = online_hub.new_repo_id("compat")
    assert maco_cli("gallery", "push", str(folder), repo_id).returncode == 0
    pushed = maco_hub.load_gallery(repo_id)
    assert [item.key for item in pushed] == KEYS and pushed.evaluation is not None


def test_a_rerun_at_todays_defaults_keeps_the_old_rows_and_adds_new_ones(folder, caplog):
    """The defaults of issue 16 (periodic spectrum, phase_std 2.5, contrast 2) make other pictures:
    their rows get other keys, sit beside the old ones, and the old ones are kept untouched."""
    before = {p.name for p in (folder / "data").iterdir()}
    maco_hub.explain(str(MODEL), classes=[1], out=folder, threads=1, **RUN)
    assert "other settings" in caplog.text
    kept = maco_hub.load_gallery(folder)
    new = [item for item in kept if item.key not in KEYS]
    assert [item.key for item in kept if item.key in KEYS] == KEYS and len(new) == 1
    assert new[0].record.config["phase_std"] == 2.5 and new[0].record.spectrum["sha256"] != EARLIER_SPECTRUM
    assert before < {p.name for p in (folder / "data").iterdir()}  # old shards untouched, one added
