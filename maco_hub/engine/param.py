"""MACO's image parametrization: a learnable Fourier phase under a fixed natural-image magnitude.

The pure maps (:func:`phase_to_canvas`, :func:`canvas_to_rgb`) are separate from the module so they
can be tested on their own.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .._numbers import STANDARDIZE_EPS
from ..errors import ConfigError
from ..spectra.color import recorrelate


def _standardize(x: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit standard deviation per leading index (per image)."""
    dims = tuple(range(1, x.dim()))
    return (x - x.mean(dim=dims, keepdim=True)) / (x.std(dim=dims, keepdim=True) + STANDARDIZE_EPS)


def phase_to_canvas(
    magnitude: torch.Tensor, phase: torch.Tensor, size: tuple[int, int], phase_std: float = 1.0
) -> torch.Tensor:
    """Spectrum ``magnitude · e^{i·phase}`` → standardized decorrelated canvas.

    ``magnitude`` is (3, H, W//2+1) in rfft2 layout, ``phase`` (B, 3, H, W//2+1); returns (B, 3, H, W)
    with zero mean and unit std per image. The phase is standardized per image first, then scaled to
    ``phase_std``: at std 1, E[cos φ] = e^-1/2 ≈ 0.61 of every frequency adds up coherently at the
    origin (a bright corner and, with any axis excess in the magnitude, bright borders); at 2.5 it is
    e^-3.125 ≈ 0.04. Apart from the DC and Nyquist columns (whose imaginary parts irfft2 must drop),
    |rfft2| of the result equals the magnitude times one scale per image.
    """
    phase = _standardize(phase) if phase_std == 1 else _standardize(phase) * phase_std
    spectrum = torch.polar(magnitude.expand_as(phase), phase)
    canvas = torch.fft.irfft2(spectrum, s=size, norm="ortho")
    return _standardize(canvas)


def canvas_to_rgb(canvas: torch.Tensor) -> torch.Tensor:
    """Decorrelated canvas (B, 3, H, W) → RGB image in (0, 1) via colour recorrelation + sigmoid."""
    return torch.sigmoid(recorrelate(canvas))


def initial_phase(shape: tuple[int, int, int], seed: int) -> torch.Tensor:
    """Phase N(0, 1) for one image, drawn on the CPU so every device starts from the same values."""
    generator = torch.Generator().manual_seed(int(seed))
    return torch.randn(shape, generator=generator)


class FourierPhaseImage(nn.Module):
    """A batch of images whose only parameters are their Fourier phases.

    ``magnitude`` (3, H, W//2+1) is a buffer; ``phase`` (B, 3, H, W//2+1) the parameter, one seed per
    image. ``forward()`` returns RGB images (B, 3, H, W) in (0, 1). ``phase_std``: see
    :func:`phase_to_canvas`; ``gain`` scales the standardized canvas before the sigmoid (contrast).
    """

    def __init__(
        self,
        magnitude: torch.Tensor,
        size: tuple[int, int],
        seeds: Sequence[int],
        *,
        gain: float = 1.0,
        phase_std: float = 1.0,
    ):
        super().__init__()
        self.gain, self.phase_std = float(gain), float(phase_std)
        height, width = size
        if tuple(magnitude.shape) != (3, height, width // 2 + 1):
            raise ConfigError(
                f"magnitude shape {tuple(magnitude.shape)} does not fit a {height}x{width} canvas; "
                f"expected (3, {height}, {width // 2 + 1}) — resize the spectrum first"
            )
        self.size = (height, width)
        self.register_buffer("magnitude", magnitude.detach().float().clone())
        phases = [initial_phase(tuple(magnitude.shape), seed) for seed in seeds]
        self.phase = nn.Parameter(torch.stack(phases))

    def canvas(self) -> torch.Tensor:
        """The standardized decorrelated canvas before colour and sigmoid."""
        return phase_to_canvas(self.magnitude, self.phase, self.size, self.phase_std)

    def forward(self) -> torch.Tensor:
        canvas = self.canvas()
        return canvas_to_rgb(canvas * self.gain if self.gain != 1 else canvas)
