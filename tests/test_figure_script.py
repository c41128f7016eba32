"""scripts/figure_before_after.py and scripts/artifact_photos.py, end to end at toy size."""

from __future__ import annotations

import subprocess
import sys

import helpers
import numpy as np
import pytest
from conftest import PROJECT_ROOT
from PIL import Image
from tiny_models import loaded

import maco_hub

SCRIPTS = PROJECT_ROOT / "scripts"


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPTS / script), *args], capture_output=True, text=True, timeout=600
    )


@pytest.fixture
def sources(tiny_zoo, tmp_path):
    """Two tiny galleries of classes 0 and 3 (other seeds) and a folder of images."""
    galleries = []
    for seed in (0, 1):
        out = tmp_path / f"gallery{seed}"
        maco_hub.explain(loaded("vit"), classes=[0, 3], seed=seed, out=out, **{**helpers.QUICK, "canvas": 96})
        galleries.append(out)
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for name in ("espresso-seed0.png", "tabby-seed0.png", "notes.txt"):
        pixels = rng.integers(0, 256, (80, 80, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(images / name, format="PNG")
    return galleries, images


def test_the_figure_has_one_band_per_class_and_source_with_the_crop_at_full_size(sources, tmp_path):
    (before, after), images = sources
    out = tmp_path / "docs" / "figure.png"
    runs = [f"before={before}", f"after={after}", f"random={images}"]
    result = _run("figure_before_after.py", *runs, "--name", "espresso", "--name", "Tabby", "--out", str(out),
                  "--thumb", "64", "--crop", "48", "--at", "0,1")  # fmt: skip
    assert result.returncode == 0, result.stderr
    figure = np.asarray(Image.open(out))
    band = 18 + 64  # caption, then max(whole, crop)
    assert figure.shape == (6 * band + 5 * 8, 64 + 8 + 48, 3)
    pictures = [
        *(maco_hub.load_gallery(g)[i].image for i in (1, 0) for g in (before, after)),  # espresso, then tabby
    ]
    pictures.insert(2, Image.open(images / "espresso-seed0.png"))
    pictures.append(Image.open(images / "tabby-seed0.png"))
    for k, picture in enumerate(pictures):  # crop at the top right corner, pixel for pixel
        top = k * (band + 8) + 18
        pixels = np.asarray(picture.convert("RGB"))
        side = min(48, pixels.shape[0])
        shown = figure[top : top + side, 72 : 72 + side]
        assert np.array_equal(shown, pixels[:side, -side:]), k
        assert (figure[top - 18 : top, :] < 128).any()  # a caption


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--name", "volcano"), "has no picture named 'volcano'"),
        (("--name", "espresso", "--at", "2,0"), "must be TOP,LEFT with fractions"),
        (("--name", "espresso", "--zoom", "0"), "invalid choice"),
    ],
)
def test_bad_arguments_are_one_line_and_write_nothing(sources, tmp_path, args, message):
    (before, after), _ = sources
    out = tmp_path / "figure.png"
    result = _run("figure_before_after.py", f"a={before}", f"b={after}", "--out", str(out), *args)
    assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()
    single = _run("figure_before_after.py", f"a={before}", "--name", "espresso", "--out", str(out))
    assert single.returncode == 2 and "two or more" in single.stderr


def test_the_validation_table_separates_photos_from_lattices_and_upscales(sources, tmp_path):
    pytest.importorskip("skimage")
    (gallery, _), images = sources
    pictures = ["--pictures", f"ours={gallery}", "--pictures", f"ours={images}"]
    result = _run(
        "artifact_photos.py", "--canvases", "128", "512", *pictures, "--json", str(tmp_path / "rows.json")
    )
    assert result.returncode == 0, result.stderr
    cells = {
        line.split(" | ")[0][2:]: line.split(" | ")
        for line in result.stdout.splitlines()
        if line.startswith("| ") and "---" not in line
    }
    median = lambda group, column: float(cells[group][column].split(" [")[0])  # noqa: E731
    assert median("photo-native", 2) < 1.5 < median("upscaled 341->512 nearest", 2)  # grid_db
    assert median("lattice P3 A0.03", 3) > median("photo-512", 3) + 3  # peak_db
    assert median("random-phase shipped 128", 2) > median("photo-native", 2)
    assert set(cells) >= {"photo-128", "lattice P4 A0.01", "upscaled 292->512 bicubic"}
    assert cells["pictures: ours"][1] == "4"  # two gallery rows and two images, one set
