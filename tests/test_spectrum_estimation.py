"""The spectrum estimator and the scripts that make and compare spectrum files."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from PIL import Image

from maco_hub.errors import ConfigError
from maco_hub.spectra.color import recorrelate
from maco_hub.spectra.estimation import (
    ESTIMATOR_VERSION,
    IMAGENET_MEAN,
    IMAGENET_STD,
    augmented_views,
    compare_magnitudes,
    estimate_spectrum,
    periodic_component,
    radial_frequency,
    radial_slope,
)
from maco_hub.spectra.loading import load_spectrum
from maco_hub.spectra.spectrum import Spectrum

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
PREVIOUS_DEFAULT_SHA256 = "be56dd9f587cfe7324ebcd5f6242e08cf78680118797dfb3d357f12315b8a18e"


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_script_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _power_law_images(count: int, height: int, width: int, alpha: float, *, seed: int = 0):
    """Float RGB images whose normalized, decorrelated channels have |rfft2| = c * f**-alpha.

    Random phases come from white noise (so Hermitian symmetry holds exactly); the images are
    built as ``recorrelate(z) * std + mean`` so the estimator's normalization undoes them.
    """
    generator = torch.Generator().manual_seed(seed)
    fy = torch.fft.fftfreq(height, dtype=torch.float64)[:, None]
    fx = torch.fft.rfftfreq(width, dtype=torch.float64)[None, :]
    frequency = torch.sqrt(fy**2 + fx**2)
    frequency[0, 0] = 1.0
    target = torch.stack([c * frequency**-alpha for c in (0.02, 0.01, 0.005)])
    target[:, 0, 0] = 0.0
    std = torch.tensor(IMAGENET_STD, dtype=torch.float64)[:, None, None]
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float64)[:, None, None]
    images = []
    for _ in range(count):
        noise = torch.fft.rfft2(torch.randn(3, height, width, generator=generator, dtype=torch.float64))
        decorrelated = torch.fft.irfft2(target * noise / noise.abs(), s=(height, width))
        images.append((recorrelate(decorrelated) * std + mean).permute(1, 2, 0).numpy())
    return images, target


@pytest.mark.parametrize("alpha", [1.0, 1.3, 2.0])
def test_recovers_power_law_exactly_at_canvas_size(alpha: float) -> None:
    """Exactly with ``boundary="plain"``; the periodic component of these images (whose opposite
    borders do not match) keeps the law up to a few per cent per bin."""
    images, target = _power_law_images(4, 64, 64, alpha)
    nonzero = target > 0
    for boundary, tolerance in (("plain", 1e-4), ("periodic", 0.05)):
        spectrum = estimate_spectrum(
            images, resolution=64, metadata={"dataset": "synthetic"}, progress=False, boundary=boundary
        )
        assert radial_slope(spectrum.magnitude, 2, 32) == pytest.approx(-alpha, abs=0.02)
        relative = (spectrum.magnitude.double()[nonzero] / target[nonzero] - 1).abs()
        assert float(relative.median() if boundary == "periodic" else relative.max()) < tolerance


@pytest.mark.parametrize("alpha", [1.0, 1.3])
def test_recovers_power_law_through_resize_and_crop(alpha: float) -> None:
    """96x128 images are resized to 64 px on the short side and centre cropped."""
    images, _ = _power_law_images(16, 96, 128, alpha)
    magnitude = estimate_spectrum(images, resolution=64, metadata={}, progress=False).magnitude
    assert radial_slope(magnitude, 2, 16) == pytest.approx(-alpha, abs=0.05)
    radius = radial_frequency(64, 64)
    band = (radius >= 2) & (radius <= 16)
    log_ratio = (magnitude.double()[:, band] / radius[band] ** -alpha).log()
    shape_error = (log_ratio - log_ratio.median(dim=1, keepdim=True).values).abs().median()
    assert float(shape_error) < 0.15


def test_metadata_and_pixel_conventions() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    spectrum = estimate_spectrum([rgb], resolution=32, metadata={"dataset": "x", "seed": 3}, progress=False)
    meta = spectrum.metadata
    assert (meta["dataset"], meta["seed"], meta["num_images"]) == ("x", "3", "1")
    assert meta["estimator_version"] == ESTIMATOR_VERSION
    assert meta["resolution"] == "32x32" and "bicubic" in meta["preprocessing"]
    assert meta["color_space"] == "decorrelated-lucid"
    as_float = estimate_spectrum([rgb / 255.0], resolution=32, metadata={}, progress=False)
    as_pil = estimate_spectrum([Image.fromarray(rgb)], resolution=32, metadata={}, progress=False)
    as_rgba = estimate_spectrum(
        [np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])], resolution=32, metadata={}, progress=False
    )
    for other in (as_float, as_pil, as_rgba):
        assert torch.allclose(other.magnitude, spectrum.magnitude, rtol=1e-5)
    gray = rgb[..., 0]
    from_gray = estimate_spectrum([Image.fromarray(gray)], resolution=32, metadata={}, progress=False)
    replicated = estimate_spectrum([np.dstack([gray] * 3)], resolution=32, metadata={}, progress=False)
    assert torch.allclose(from_gray.magnitude, replicated.magnitude, rtol=1e-5)


def test_small_images_are_skipped_and_empty_input_rejected() -> None:
    big = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)  # not flat
    small = np.zeros((20, 64, 3), np.uint8)
    with pytest.warns(UserWarning, match="Skipping image 1: 20x64"):
        spectrum = estimate_spectrum([big, small], resolution=32, metadata={}, progress=False)
    assert (spectrum.metadata["num_images"], spectrum.metadata["num_skipped"]) == ("1", "1")
    with pytest.raises(ConfigError, match="No usable image"):
        estimate_spectrum([], resolution=32, metadata={}, progress=False)
    with pytest.raises(ConfigError, match="resolution=4"):
        estimate_spectrum([big], resolution=4, metadata={}, progress=False)
    with pytest.raises(ConfigError, match="shape"):
        estimate_spectrum([np.zeros((40, 40, 2))], resolution=32, metadata={}, progress=False)


def test_augmented_views_are_deterministic_crops() -> None:
    photo = np.arange(60 * 80 * 3, dtype=np.uint8).reshape(60, 80, 3)
    views = list(augmented_views(photo, scales=(1.0, 0.5), crops_per_scale=3, rng=np.random.default_rng(1)))
    again = list(augmented_views(photo, scales=(1.0, 0.5), crops_per_scale=3, rng=np.random.default_rng(1)))
    assert len(views) == 12  # 2 scales x 3 positions x (crop + mirror)
    assert [v.shape for v in views] == [(60, 60, 3)] * 6 + [(30, 30, 3)] * 6
    assert all(np.array_equal(a, b) for a, b in zip(views, again, strict=True))
    assert np.array_equal(views[1], views[0][:, ::-1])
    square = list(augmented_views(photo[:, :60], scales=(1.0,), rng=np.random.default_rng(0)))
    assert len(square) == 2  # one crop fills the photo, plus its mirror
    with pytest.raises(ConfigError, match=r"1\.5"):
        list(augmented_views(photo, scales=(1.5,), rng=np.random.default_rng(0)))


def test_compare_magnitudes_of_identical_spectra() -> None:
    magnitude = load_spectrum().resized(64, 64).magnitude
    numbers = compare_magnitudes(magnitude, magnitude)
    assert numbers["corr_all"] == pytest.approx(1.0)
    assert numbers["scale_ratio"] == pytest.approx(1.0)
    assert numbers["slope_2_32_ours"] == numbers["slope_2_32_ref"] < -0.5
    with pytest.raises(ConfigError, match="resized"):
        compare_magnitudes(magnitude, magnitude[:, :32])


@pytest.fixture
def photo_folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    for index, size in enumerate([(40, 50), (48, 48), (64, 40)]):
        pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / ("nested" if index else ".") / f"p{index}.png")
    Image.fromarray(rng.integers(0, 256, (44, 44), dtype=np.uint8)).save(folder / "gray.jpg")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_script_folder_is_deterministic(photo_folder: Path, tmp_path: Path, capsys) -> None:
    script = _script("estimate_spectrum")
    args = ["--folder", str(photo_folder), "--resolution", "32", "--count", "3", "--seed", "4", "--quiet"]
    assert script.main([*args, "--out", str(tmp_path / "a.safetensors")]) == 0
    assert script.main([*args, "--out", str(tmp_path / "b.safetensors")]) == 0
    first, second = (Spectrum.load(tmp_path / n) for n in ("a.safetensors", "b.safetensors"))
    assert first.sha256 == second.sha256
    assert first.metadata["num_images"] == "3"
    assert first.metadata["dataset"] == "folder:photos"
    assert "augmentation" not in first.metadata
    augmented = tmp_path / "c.safetensors"
    assert (
        script.main(
            [*args, "--augment", "--scales", "1,0.8", "--crops-per-scale", "2", "--out", str(augmented)]
        )
        == 0
    )
    assert int(Spectrum.load(augmented).metadata["num_images"]) >= 3 * (1 + 2) * 2
    assert "square" in Spectrum.load(augmented).metadata["augmentation"]


def test_script_errors(photo_folder: Path, tmp_path: Path, capsys) -> None:
    script = _script("estimate_spectrum")
    out = str(tmp_path / "x.safetensors")
    assert script.main(["--builtin-photos", "--push", "me/spectrum", "--out", out]) == 2
    assert "HF_HUB_OFFLINE" in capsys.readouterr().err  # refused before estimating
    assert script.main(["--folder", str(tmp_path / "nowhere"), "--out", out]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert script.main(["--folder", str(photo_folder), "--count", "0", "--out", out]) == 2
    assert not Path(out).exists()


def test_script_builtin_photos(tmp_path: Path) -> None:
    pytest.importorskip("skimage")
    script = _script("estimate_spectrum")
    out = tmp_path / "builtin.safetensors"
    assert (
        script.main(
            [
                "--builtin-photos",
                "--count",
                "3",
                "--resolution",
                "32",
                "--scales",
                "1.0",
                "--crops-per-scale",
                "1",
                "--quiet",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    spectrum = Spectrum.load(out)
    assert spectrum.metadata["dataset"] == "builtin-photos"
    assert spectrum.metadata["photos"].count("(") >= 3
    assert spectrum.metadata["num_images"] == "6"  # 3 photos x (crop + mirror)


def test_script_streams_a_local_dataset(photo_folder: Path, tmp_path: Path) -> None:
    pytest.importorskip("datasets")
    script = _script("estimate_spectrum")
    out = tmp_path / "dataset.safetensors"
    assert (
        script.main(
            [
                "--dataset",
                str(photo_folder),
                "--count",
                "2",
                "--resolution",
                "32",
                "--quiet",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    meta = Spectrum.load(out).metadata
    assert (meta["num_images"], meta["dataset_split"]) == ("2", "train")
    assert "seed=0" in meta["shuffle"]


def test_compare_script_prints_table(tmp_path: Path, capsys) -> None:
    path = load_spectrum().resized(64, 64).save(tmp_path / "small.safetensors")
    reference = tmp_path / "reference.npy"
    np.save(reference, load_spectrum().magnitude.numpy())
    assert _script("compare_spectra").main([str(path), str(reference)]) == 0
    table = capsys.readouterr().out
    assert "radial slope, 2-32 cycles/image" in table
    assert "all channels       |   1.000" in table  # the reference is resized to 64x64 first


def _axis_excess_db(images: torch.Tensor, low: float = 128, high: float = 256) -> float:
    """On-axis over off-axis |rfft2| of (..., H, W) images in the low..high cycles band, in dB, each
    bin first divided by the mean of its integer radius ring (so the radial fall-off cancels)."""
    magnitude = (
        torch.fft.rfft2(images.double()).abs().reshape(-1, *images.shape[-2:-1], images.shape[-1] // 2 + 1)
    )
    magnitude = magnitude.mean(0)
    height, width = images.shape[-2:]
    radius = radial_frequency(height, width)
    ring = radius.round().long().flatten()
    ring_mean = torch.zeros(int(ring.max()) + 1, dtype=torch.float64).index_add_(0, ring, magnitude.flatten())
    relative = magnitude / (ring_mean / torch.bincount(ring).clamp(min=1))[ring].reshape(radius.shape)
    ky = (torch.fft.fftfreq(height) * height).abs()[:, None].expand_as(radius)
    kx = torch.arange(width // 2 + 1)[None, :].expand_as(radius)
    band = (radius >= low) & (radius <= high)
    axis, off_axis = band & ((ky == 0) | (kx == 0)), band & (ky >= 4) & (kx >= 4)
    return 20 * float(torch.log10(relative[axis].mean() / relative[off_axis].mean()))


def test_periodic_component_keeps_an_image_without_border_jump_and_removes_a_ramps_jump() -> None:
    image = torch.rand(3, 40, 50, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    image[..., -1, :], image[..., :, -1] = image[..., 0, :], image[..., :, 0]  # opposite borders match
    assert torch.allclose(periodic_component(image), image, atol=1e-12)
    ramp = torch.linspace(0, 1, 64, dtype=torch.float64)[None, :].expand(64, 64)
    periodic = periodic_component(ramp)
    wrap_jump = (periodic[:, -1] - periodic[:, 0]).abs().max()
    assert float(wrap_jump) < 0.05 * float((ramp[:, -1] - ramp[:, 0]).abs().max())
    assert float(periodic.mean()) == pytest.approx(float(ramp.mean()))


def test_random_phase_images_of_the_default_have_no_axis_cross_unlike_the_previous_default() -> None:
    """The previous default (plain rfft2 of each view) carried the views' border jumps as a cross
    along the frequency axes, which random-phase images render as a grid of lines."""
    from maco_hub.engine.param import initial_phase, phase_to_canvas
    from maco_hub.spectra.loading import shipped_spectrum

    previous = shipped_spectrum(PREVIOUS_DEFAULT_SHA256)
    excess = {}
    for name, spectrum in (("default", load_spectrum()), ("previous", previous)):
        magnitude = spectrum.magnitude
        phases = torch.stack([initial_phase(tuple(magnitude.shape), seed) for seed in range(2)])
        excess[name] = _axis_excess_db(phase_to_canvas(magnitude, phases, (512, 512), phase_std=2.5))
    assert excess["default"] < 6 < 12 < excess["previous"], excess
    assert load_spectrum().metadata["estimator_version"] == ESTIMATOR_VERSION == "2"
    assert "periodic component" in load_spectrum().metadata["preprocessing"]
    assert previous.metadata["estimator_version"] == "1"


def test_boundary_plain_is_the_previous_estimator_and_a_bad_boundary_is_refused() -> None:
    images, _ = _power_law_images(2, 48, 40, 1.3)
    plain = estimate_spectrum(images, resolution=32, metadata={}, progress=False, boundary="plain")
    periodic = estimate_spectrum(images, resolution=32, metadata={}, progress=False)
    assert plain.metadata["estimator_version"] == "1" and "periodic" not in plain.metadata["preprocessing"]
    assert periodic.metadata["estimator_version"] == "2" and plain.sha256 != periodic.sha256
    for hostile in ("Periodic", "", None, 1):
        with pytest.raises(ConfigError, match="boundary="):
            estimate_spectrum(images, resolution=32, metadata={}, progress=False, boundary=hostile)


def test_script_boundary_option(photo_folder: Path, tmp_path: Path, capsys) -> None:
    script = _script("estimate_spectrum")
    args = ["--folder", str(photo_folder), "--resolution", "32", "--quiet"]
    assert script.main([*args, "--boundary", "plain", "--out", str(tmp_path / "p.safetensors")]) == 0
    assert Spectrum.load(tmp_path / "p.safetensors").metadata["estimator_version"] == "1"
    with pytest.raises(SystemExit) as exit_info:
        script.main([*args, "--boundary", "smooth", "--out", str(tmp_path / "s.safetensors")])
    assert exit_info.value.code == 2 and "smooth" in capsys.readouterr().err
