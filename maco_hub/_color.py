"""The colour decorrelation used by MACO (and Lucid before it).

``COLOR_CORRELATION`` is the square root of ImageNet's colour covariance published with Lucid,
divided by its largest column norm. Pixels are row vectors: ``rgb = decorrelated @ M``.
"""

from __future__ import annotations

import torch

COLOR_CORRELATION = torch.tensor(
    [
        [0.56282854, 0.58447580, 0.58447580],
        [0.19482528, 0.00000000, -0.19482528],
        [0.04329450, -0.10823626, 0.06494176],
    ],
    dtype=torch.float64,
)


def recorrelate(decorrelated: torch.Tensor) -> torch.Tensor:
    """Map decorrelated channels (..., 3, H, W) to RGB channels (..., 3, H, W)."""
    matrix = COLOR_CORRELATION.to(device=decorrelated.device, dtype=decorrelated.dtype)
    return torch.einsum("...chw,cd->...dhw", decorrelated, matrix)


def decorrelate(rgb: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`recorrelate`: RGB channels (..., 3, H, W) to decorrelated ones."""
    inverse = torch.linalg.inv(COLOR_CORRELATION).to(device=rgb.device, dtype=rgb.dtype)
    return torch.einsum("...chw,cd->...dhw", rgb, inverse)
