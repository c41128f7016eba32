"""The one checked reader of images users give (a start image, an image to invert): hostile inputs."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from maco_hub._image_files import MAX_IMAGE_SIDE, read_image
from maco_hub.errors import ImageError, MacoHubError


@pytest.fixture
def photo() -> np.ndarray:
    generator = np.random.default_rng(0)
    return generator.integers(0, 256, (60, 90, 3), dtype=np.uint8)


def test_one_picture_has_one_sha256_however_it_is_given(photo, tmp_path):
    Image.fromarray(photo).save(tmp_path / "p.png")
    Image.fromarray(photo).save(tmp_path / "p.bmp")
    (tmp_path / "named.jpg").write_bytes((tmp_path / "p.png").read_bytes())  # decoded by content
    given = [
        photo,
        Image.fromarray(photo),
        tmp_path / "p.png",
        str(tmp_path / "p.bmp"),
        tmp_path / "named.jpg",
        photo.astype(np.float32) / 255,
        torch.from_numpy(photo).permute(2, 0, 1).float() / 255,
    ]
    hashes = {read_image(source).sha256 for source in given}
    assert len(hashes) == 1
    image = read_image(photo)
    assert image.image.mode == "RGB" and image.image.size == (90, 60)
    assert read_image(photo[:, ::-1].copy()).sha256 != image.sha256


def test_grayscale_palette_and_rgba_images_become_rgb(photo, tmp_path):
    gray = Image.fromarray(photo).convert("L")
    gray.save(tmp_path / "g.png")
    rgba = Image.fromarray(photo).convert("RGBA")
    rgba.putalpha(0)  # fully transparent: shown (and read) as white
    rgba.save(tmp_path / "a.png")
    Image.fromarray(photo).convert("P").save(tmp_path / "p.gif")
    read = read_image(tmp_path / "g.png")
    assert read.image.mode == "RGB"
    assert np.array_equal(np.asarray(read.image)[..., 0], np.asarray(gray))
    assert np.asarray(read_image(tmp_path / "a.png").image).min() == 255
    assert read_image(tmp_path / "p.gif").image.mode == "RGB"
    assert read_image(np.asarray(gray)).sha256 == read.sha256  # a 2-D array is grayscale


@pytest.mark.parametrize(
    ("make", "named"),
    [
        (lambda d: d / "missing.png", "does not exist; check the path"),
        (lambda d: d, "is a folder, not a regular file"),
        (lambda d: _write(d / "text.png", b"not an image at all"), "is not a readable image"),
        (lambda d: _write(d / "empty.png", b""), "is not a readable image"),
        (lambda d: _fifo(d / "fifo.png"), "is a FIFO, not a regular file"),
        (lambda d: _png(d / "wide.png", (MAX_IMAGE_SIDE + 1, 10)), "is 4097x10 px; use 8 to 4096 px a side"),
        (lambda d: _png(d / "tiny.png", (4, 4)), "is 4x4 px; use 8 to 4096 px a side"),
        (lambda d: _png(d / "bomb.png", (30000, 30000)), "more pixels than PIL decodes safely"),
        (lambda d: _sparse(d / "huge.png"), "bytes, over the limit of 67108864"),
    ],
)
def test_unusable_files_are_one_image_error_naming_them(tmp_path, make, named):
    path = make(tmp_path)
    with pytest.raises(ImageError, match=named) as caught:
        read_image(path)
    assert isinstance(caught.value, MacoHubError) and str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("value", "named"),
    [
        (np.zeros((5000, 20, 3), np.uint8), "is 20x5000 px"),
        (np.zeros((20, 20, 2), np.uint8), "shape (20, 20, 2), not an image"),
        (np.zeros((2, 20, 20, 3), np.uint8), "shape (2, 20, 20, 3), not an image"),
        (np.full((20, 20, 3), 1.5), "values outside [0, 1]"),
        (np.full((20, 20, 3), np.nan), "values outside [0, 1] (or non-finite)"),
        (np.full((20, 20, 3), 300, np.int64), "values outside [0, 1]"),
        (np.zeros((20, 20, 3), complex), "array of complex128, not pixels"),
        (torch.zeros(20, 20, 3), "shape (20, 20, 3), not an image (C, H, W)"),
        (42, "int '42' is not an image"),
        (b"\x89PNG", "bytes"),
    ],
)
def test_unusable_arrays_and_objects_are_one_image_error(value, named):
    with pytest.raises(ImageError, match=named.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        read_image(value)


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def _fifo(path):
    os.mkfifo(path)
    return path


def _png(path, size):
    Image.new("L", size).save(path)
    return path


def _sparse(path):
    with path.open("wb") as handle:  # a PNG signature, then 65 MB of nothing (a sparse file)
        handle.write(b"\x89PNG\r\n\x1a\n")
        handle.truncate(65 << 20)
    return path
