"""The Fourier baseline (method="fourier") and images started from a picture, on tiny models."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from helpers import QUICK
from tiny_models import loaded

import maco_hub
from maco_hub.engine import EngineConfig, optimize
from maco_hub.engine.fourier import (
    FourierSpectrumImage,
    SeededPhaseImage,
    build_image,
    frequency_scale,
)
from maco_hub.errors import ConfigError
from maco_hub.models.preprocessing import Preprocessing
from maco_hub.spectra.loading import load_spectrum

PRE = Preprocessing(mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3), size=(32, 32))


def _score_fn():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 6, 5, padding=2),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
    ).eval()
    net.requires_grad_(False)
    return lambda pixels, index: net(pixels)[torch.arange(len(pixels)), index % 6]


def test_frequency_scale_is_lucids_one_over_f_to_the_decay():
    scale = frequency_scale(64, 64, 1.5)
    assert scale.shape == (64, 33)
    assert scale[0, 0] == pytest.approx(64**1.5)  # the DC term is clamped at 1 / max(H, W)
    assert scale[0, 1] == pytest.approx(64**1.5)  # f = 1/64: the lowest frequency
    assert scale[0, 32] == pytest.approx(2**1.5)  # Nyquist: f = 0.5
    assert scale[32, 32] == pytest.approx((0.5 * 2**0.5) ** -1.5)
    assert torch.equal(frequency_scale(16, 16, 0.0), torch.ones(16, 9))


def test_fourier_images_are_standardized_rgb_and_depend_on_the_seed():
    image = FourierSpectrumImage((48, 48), [0, 1, 0], decay=1.0, init_std=0.3)
    rgb = image()
    assert rgb.shape == (3, 3, 48, 48) and 0 < rgb.min() and rgb.max() < 1
    canvas = image.canvas()
    assert torch.allclose(canvas.mean(dim=(1, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(canvas.std(dim=(1, 2, 3)), torch.ones(3), atol=1e-3)
    assert torch.equal(rgb[0], rgb[2]) and not torch.equal(rgb[0], rgb[1])
    assert sum(p.numel() for p in image.parameters()) == 3 * 3 * 48 * 25 * 2  # real and imaginary parts


def test_with_standardization_only_the_ratio_of_learning_rate_to_init_std_matters():
    """Why the README's screening varies the init std alone: (std s, lr l) ≈ (std c·s, lr c·l), up
    to NAdam's eps, while changing the learning rate alone changes the pictures."""
    score = _score_fn()
    base = EngineConfig(
        steps=8, canvas=48, crops=2, method="fourier", fourier_init_std=0.2, learning_rate=0.05
    )
    scaled = dataclasses.replace(base, fourier_init_std=0.4, learning_rate=0.1)
    other = dataclasses.replace(base, learning_rate=0.1)
    runs = [optimize(score, PRE, seeds=[3], config=c, device="cpu").images for c in (base, scaled, other)]
    same, changed = (runs[0] - runs[1]).abs().mean(), (runs[0] - runs[2]).abs().mean()
    assert changed > 0.02 and same < 0.02 * changed, (same, changed)


@pytest.mark.parametrize("method", ["maco", "fourier"])
def test_a_seeded_image_starts_as_its_picture(method):
    pictures = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    pictures = (pictures * 255).round() / 255  # 8-bit values, as images from files are
    config = EngineConfig(canvas=40, method=method)
    image = build_image(config, load_spectrum(), [0, 1], pictures)
    assert isinstance(image, SeededPhaseImage if method == "maco" else FourierSpectrumImage)
    assert (image().detach() - pictures).abs().max() < 2e-3
    with pytest.raises(ConfigError, match=r"start images of shape \(2, 3, 40, 40\) do not fit 3 images"):
        build_image(config, load_spectrum(), [0, 1, 2], pictures)


def test_config_records_the_method_only_when_it_is_not_maco():
    assert "method" not in EngineConfig().to_record()
    assert not any(k.startswith("fourier") for k in EngineConfig().to_record())
    fourier = EngineConfig(method="fourier", fourier_decay=1.5)
    record = fourier.to_record()
    assert record["method"] == "fourier" and record["fourier_decay"] == 1.5 and "fourier_init_std" in record
    assert EngineConfig.from_record(record) == fourier


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"method": "lucid"}, "method='lucid' is invalid: use one of ('maco', 'fourier')"),
        ({"method": 3}, "method=3 is invalid"),
        ({"fourier_decay": 1.5}, "fourier_decay=1.5 applies to method='fourier', not method='maco'"),
        ({"method": "fourier", "fourier_decay": float("nan")}, "fourier_decay=nan is invalid"),
        ({"method": "fourier", "fourier_init_std": 0}, "fourier_init_std=0 is invalid"),
    ],
)
def test_bad_methods_are_one_clear_error(changes, named):
    with pytest.raises(ConfigError, match=named.replace("(", r"\(").replace(")", r"\)")):
        EngineConfig(**changes)


def test_explain_fourier_rows_have_their_own_keys_and_regenerate(tiny_zoo):
    model = loaded("resnet")
    maco = maco_hub.explain(model, classes=[1], **QUICK)[0]
    fourier = maco_hub.explain(model, classes=[1], method="fourier", **QUICK)[0]
    assert fourier.record.config["method"] == "fourier" and fourier.key != maco.key
    assert fourier.seed == maco.seed  # the same objective and seed, another parameterization
    assert (
        np.asarray(fourier.image).std() > 0
        and np.asarray(fourier.image).tolist() != np.asarray(maco.image).tolist()
    )
    again = maco_hub.regenerate(fourier, model=model, device="cpu")
    assert np.abs(np.asarray(again.image, float) - np.asarray(fourier.image, float)).max() <= 1


def test_cli_unknown_method_is_one_line_naming_it(tiny_zoo, tmp_path, maco_cli):
    path = str(tiny_zoo["resnet"].path)
    result = maco_cli("explain", path, "--classes", "0", "--method", "lucid", "--out", str(tmp_path / "g"))
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 2 and len(errors) == 1 and "method='lucid'" in errors[0], result.stderr
    assert not (tmp_path / "g").exists()
    ok = maco_cli(
        "explain",
        path,
        "--classes",
        "0",
        "--method",
        "fourier",
        "--steps",
        "2",
        "--canvas",
        "32",
        "--out",
        str(tmp_path / "f"),
    )
    assert ok.returncode == 0 and "[fourier]" in ok.stdout, ok.stderr
