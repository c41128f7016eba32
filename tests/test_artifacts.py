"""maco_hub.legibility.artifacts: photos score low, lattices and upscales high, haze, contrast,
borders, and one clear error for anything that is not a picture."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from maco_hub.errors import ConfigError
from maco_hub.gallery.evaluation import ARTIFACT_RANGES
from maco_hub.legibility import artifacts


def _square(pixels: np.ndarray, side: int | None = None) -> Image.Image:
    height, width = pixels.shape[:2]
    s = min(height, width)
    top, left = (height - s) // 2, (width - s) // 2
    image = Image.fromarray(pixels[top : top + s, left : left + s])
    return image if side is None else image.resize((side, side), Image.Resampling.BICUBIC)


def _with_lines(image: Image.Image, period: float, amplitude: float) -> Image.Image:
    """``image`` plus a faint grid of horizontal and vertical lines every ``period`` px."""
    pixels = np.asarray(image, dtype=np.float64) / 255
    lines = (np.arange(pixels.shape[0]) % period < 1).astype(float)
    grid = np.maximum(lines[:, None], lines[None, :])
    pixels = np.clip(pixels + amplitude * (grid - grid.mean())[..., None], 0, 1)
    return Image.fromarray(np.round(pixels * 255).astype(np.uint8))


def _random_phase(side: int, cross: float, seed: int = 0) -> np.ndarray:
    """A random-phase image of an isotropic magnitude f^-1.5, plus ``cross`` · f^-1 on the two
    frequency axes: the "axis cross" that the jump between opposite borders of unwindowed views
    adds to an estimated spectrum (it falls more slowly than the rest, so it rules fine scales)."""
    k = np.fft.fftfreq(side) * side
    ky, kx = np.meshgrid(k, k, indexing="ij")
    frequency = np.maximum(np.hypot(ky, kx), 1)
    magnitude = frequency**-1.5 + cross * ((ky == 0) | (kx == 0)) / frequency
    phase = np.random.default_rng(seed).uniform(-np.pi, np.pi, (side, side))
    image = np.real(np.fft.ifft2(magnitude * np.exp(1j * phase)))
    return np.clip(0.5 + 0.15 * image / image.std(), 0, 1)


@pytest.fixture(scope="module")
def photos(builtin_photos) -> dict[str, Image.Image]:
    """The colour photos the photo packages ship, centre squares at their own size."""
    return {name: _square(pixels) for name, pixels in builtin_photos.items()}


def test_natural_photos_have_no_grid_and_little_haze(photos):
    assert len(photos) >= 6
    for name, photo in photos.items():
        measures = artifacts.artifact_measures(photo)
        assert set(measures) == set(artifacts.MEASURES)
        assert -2 < measures["grid_db"] < 1.5, (name, measures)
        assert measures["haze"] < 0.4 and 0.1 < measures["rms_contrast"] < 0.35, (name, measures)


def test_a_faint_lattice_added_to_a_photo_scores_high(photos):
    gains = []
    for name, photo in photos.items():
        base = photo.resize((512, 512), Image.Resampling.BICUBIC)
        clean = artifacts.peak_score(base)
        for period in (3, 3.5):
            gains.append(artifacts.peak_score(_with_lines(base, period, 0.03)) - clean)
            assert gains[-1] > 0, (name, period, gains[-1])
    assert np.median(gains) > 4, gains  # dense fine texture (china) masks it: +1.4 to +2.2 dB there


def test_a_nearest_neighbour_upscale_and_an_axis_cross_raise_the_grid_score(photos):
    gains = []
    for name, photo in photos.items():
        small = photo.resize((341, 341), Image.Resampling.BICUBIC)
        upscaled = small.resize((512, 512), Image.Resampling.NEAREST)  # 1.5x: every other pixel doubled
        gains.append(artifacts.grid_score(upscaled) - artifacts.grid_score(small))
        assert gains[-1] > 0, (name, gains[-1])
    assert np.median(gains) > 3, gains
    assert artifacts.grid_score(_random_phase(512, 0.0)) < 1.5
    assert artifacts.grid_score(_random_phase(512, 1.0)) > 4


def test_haze_and_contrast_see_a_washed_out_picture(photos):
    photo = np.asarray(photos["astronaut"], dtype=np.float64) / 255
    washed = 0.55 + 0.35 * (photo - 0.5)
    assert artifacts.haze(washed) > artifacts.haze(photo) + 0.2
    assert artifacts.rms_contrast(washed) == pytest.approx(0.35 * artifacts.rms_contrast(photo))


def test_a_bright_frame_is_a_positive_border_excess(photos):
    photo = np.asarray(photos["coffee"].resize((256, 256)), dtype=np.float64) / 255
    framed = photo.copy()
    framed[:8], framed[-8:], framed[:, :8], framed[:, -8:] = 1.0, 1.0, 1.0, 1.0
    assert artifacts.border_excess(framed) > artifacts.border_excess(photo) + 0.3


def test_the_dark_channel_window_is_pils_min_filter():
    pixels = np.random.default_rng(1).integers(0, 256, (300, 211), dtype=np.uint8)
    for size in (3, 9, 17):
        expected = np.asarray(Image.fromarray(pixels).filter(ImageFilter.MinFilter(size)))
        found = artifacts._min_filter(artifacts._min_filter(pixels.astype(float), size, 0), size, 1)
        assert np.array_equal(found, expected)


def test_measures_are_deterministic_and_take_every_image_form(photos):
    image = photos["chelsea"].resize((200, 150))
    array = np.asarray(image)
    first = artifacts.artifact_measures(image)
    assert artifacts.artifact_measures(array) == first
    assert artifacts.artifact_measures(array / 255.0) == pytest.approx(first)
    rgba = np.concatenate([array, np.full((*array.shape[:2], 1), 255, np.uint8)], axis=-1)
    assert artifacts.artifact_measures(rgba) == first
    assert artifacts.grid_score(image) == first["grid_db"] and artifacts.haze(image) == first["haze"]
    gray = artifacts.artifact_measures(array.mean(axis=-1) / 255)
    flat = artifacts.artifact_measures(np.full((64, 64, 3), 0.5, np.float32))
    assert all(np.isfinite(v) for v in (*gray.values(), *flat.values()))
    assert flat["grid_db"] == pytest.approx(0) and flat["peak_db"] == pytest.approx(0)


def test_stored_ranges_cover_every_measure():
    assert tuple(ARTIFACT_RANGES) == artifacts.MEASURES
    extreme = [np.zeros((64, 64)), np.ones((64, 64)), (np.indices((64, 64)).sum(0) % 2).astype(float)]
    extreme.append(np.pad(np.ones((60, 60)), 2))  # dark frame
    for image in extreme:
        for name, value in artifacts.artifact_measures(image).items():
            low, high = ARTIFACT_RANGES[name]
            assert low <= value <= high, (name, value)


@pytest.mark.parametrize(
    ("image", "words"),
    [
        (np.zeros((32, 300, 3), np.uint8), "32x300 px cannot be measured"),
        (np.broadcast_to(np.uint8(0), (5000, 5000)), "5000x5000 px cannot be measured"),
        (Image.new("RGB", (5000, 4000)), "4000x5000 px cannot be measured"),
        (np.zeros((128, 128, 5), np.uint8), r"shape \(128, 128, 5\)"),
        (np.zeros((2, 128, 128, 3), np.uint8), "shape"),
        (np.zeros(128, np.uint8), "shape"),
        (np.zeros((128, 128), np.int64), "array of int64"),
        (np.zeros((128, 128), bool), "array of bool"),
        (np.full((128, 128), np.nan), "NaN"),
        (np.full((128, 128, 3), np.inf), "NaN, infinite"),
        (np.full((128, 128), 2.0), "out-of-range"),
        ("not an image", "not str"),
        (None, "not NoneType"),
        ([[0.5] * 128] * 128, "not list"),
    ],
)
def test_anything_but_a_picture_is_one_clear_error(image, words):
    with pytest.raises(ConfigError, match=words) as error:
        artifacts.artifact_measures(image)
    assert "\n" not in str(error.value)
