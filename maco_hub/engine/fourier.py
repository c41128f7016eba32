"""The classic Fourier baseline the MACO paper compares against, and images that start from a photo.

:class:`FourierSpectrumImage` is Lucid's ``fft_image``: the *full* complex spectrum (real and
imaginary parts) is the parameter, scaled by ``1 / max(f, 1 / max(H, W)) ** decay`` (``f`` in cycles
per pixel). Everything after the inverse FFT is MACO's (:mod:`maco_hub.engine.param`): per-image
standardization, the colour matrix, the sigmoid. With the standardization the image does not depend
on the spectrum's overall scale, so for Adam-type optimizers only ``learning_rate / init_std``
matters (tested): the README's screening varies ``init_std`` at MACO's learning rate.

Seeded images (feature accentuation) start from a given picture exactly: the decorrelated logit of
the picture is the starting canvas and nothing is standardized, so the first image is the photo
itself. The parameter is the change from the photo, scaled so that one step of the default learning
rate 1.0 changes the phase (MACO) or the spectrum relative to its size (Fourier) by about
:data:`SEEDED_STEP`.

:func:`build_image` picks the parameterization of a config.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..errors import ConfigError
from ..spectra.color import decorrelate
from .param import FourierPhaseImage, _standardize, canvas_to_rgb

if TYPE_CHECKING:
    from ..spectra.spectrum import Spectrum
    from .config import EngineConfig

SEEDED_STEP = 0.02  # radians of phase (or relative spectrum change) per unit of parameter
_PIXEL_EPS = 1 / 512  # seed pixels are clamped to [eps, 1 - eps] before the logit (8-bit values stay exact)


def frequency_scale(height: int, width: int, decay: float) -> torch.Tensor:
    """Lucid's spectrum scale (H, W//2+1): ``1 / max(f, 1/max(H, W)) ** decay``, f = √(fx² + fy²)."""
    fy = torch.fft.fftfreq(height, dtype=torch.float64)[:, None]
    fx = torch.fft.rfftfreq(width, dtype=torch.float64)[None, :]
    frequency = torch.sqrt(fx**2 + fy**2).clamp_min(1.0 / max(height, width))
    return (1.0 / frequency**decay).float()


def start_canvas(images: torch.Tensor) -> torch.Tensor:
    """RGB images (B, 3, H, W) in [0, 1] → the decorrelated canvas that renders them exactly."""
    pixels = images.double().clamp(_PIXEL_EPS, 1 - _PIXEL_EPS)
    return decorrelate(torch.logit(pixels)).float()


def initial_spectrum(shape: tuple[int, ...], seed: int, std: float) -> torch.Tensor:
    """Real and imaginary parts N(0, std²) for one image, drawn on the CPU (same on every device)."""
    generator = torch.Generator().manual_seed(int(seed))
    return torch.randn((*shape, 2), generator=generator) * std


class FourierSpectrumImage(nn.Module):
    """A batch of images whose parameters are their full Fourier spectra (Lucid's parameterization).

    ``forward()`` returns RGB images (B, 3, H, W) in (0, 1). With ``start`` (B, 3, H, W) the images
    begin as those pictures and are not standardized (see the module docstring).
    """

    def __init__(
        self,
        size: tuple[int, int],
        seeds: Sequence[int],
        *,
        decay: float,
        init_std: float,
        start: torch.Tensor | None = None,
    ):
        super().__init__()
        height, width = size
        self.size = (height, width)
        self.register_buffer("scale", frequency_scale(height, width, decay))
        self.seeded = start is not None
        if start is None:
            shape = (3, height, width // 2 + 1)
            self.register_buffer("origin", None)
            self.spectrum = nn.Parameter(torch.stack([initial_spectrum(shape, s, init_std) for s in seeds]))
            return
        _check_start(start, len(seeds), size)
        whitened = torch.fft.rfft2(start_canvas(start), norm="ortho") / self.scale
        origin = torch.view_as_real(whitened)
        self.register_buffer("origin", origin)
        self.step_scale = SEEDED_STEP * float(origin.std())
        self.spectrum = nn.Parameter(torch.zeros_like(origin))

    def canvas(self) -> torch.Tensor:
        """The decorrelated canvas before colour and sigmoid (standardized unless seeded)."""
        parts = self.origin + self.step_scale * self.spectrum if self.seeded else self.spectrum
        canvas = torch.fft.irfft2(torch.view_as_complex(parts) * self.scale, s=self.size, norm="ortho")
        return canvas if self.seeded else _standardize(canvas)

    def forward(self) -> torch.Tensor:
        return canvas_to_rgb(self.canvas())


class SeededPhaseImage(nn.Module):
    """MACO started from pictures: each image keeps its own picture's Fourier magnitude and only the
    phase moves, from the picture's phase (nothing standardized, so step 0 is the picture)."""

    def __init__(self, start: torch.Tensor):
        super().__init__()
        self.size = tuple(start.shape[-2:])
        spectrum = torch.fft.rfft2(start_canvas(start), norm="ortho")
        self.register_buffer("magnitude", spectrum.abs())
        self.register_buffer("origin", spectrum.angle())
        self.phase = nn.Parameter(torch.zeros_like(self.origin))

    def canvas(self) -> torch.Tensor:
        spectrum = torch.polar(self.magnitude, self.origin + SEEDED_STEP * self.phase)
        return torch.fft.irfft2(spectrum, s=self.size, norm="ortho")

    def forward(self) -> torch.Tensor:
        return canvas_to_rgb(self.canvas())


def build_image(
    config: EngineConfig, spectrum: Spectrum, seeds: Sequence[int], start: torch.Tensor | None = None
) -> nn.Module:
    """The parameterized batch of ``config.method``: MACO's phase under ``spectrum``'s magnitude or
    the full Fourier spectrum, from random seeds or (``start``) from pictures."""
    side = config.canvas
    if config.method == "fourier":
        return FourierSpectrumImage(
            (side, side), seeds, decay=config.fourier_decay, init_std=config.fourier_init_std, start=start
        )
    if start is not None:
        _check_start(start, len(seeds), (side, side))
        return SeededPhaseImage(start)
    magnitude = spectrum.resized(side, side).magnitude
    return FourierPhaseImage(magnitude, (side, side), seeds, gain=config.contrast, phase_std=config.phase_std)


def _check_start(start: torch.Tensor, count: int, size: tuple[int, int]) -> None:
    if tuple(start.shape) != (count, 3, *size):
        raise ConfigError(
            f"start images of shape {tuple(start.shape)} do not fit {count} images of a "
            f"{size[0]}x{size[1]} canvas; expected ({count}, 3, {size[0]}, {size[1]})"
        )
