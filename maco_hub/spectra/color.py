"""The colour decorrelation used by MACO (and Lucid before it).

``COLOR_CORRELATION`` is the square root of ImageNet's colour covariance published with Lucid,
divided by its largest column norm. Pixels are row vectors: ``rgb = decorrelated @ M``.
"""

from __future__ import annotations

import functools

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
    matrix = _matrix(False, decorrelated.device, decorrelated.dtype)
    return torch.einsum("...chw,cd->...dhw", decorrelated, matrix)


def decorrelate(rgb: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`recorrelate`: RGB channels (..., 3, H, W) to decorrelated ones."""
    return torch.einsum("...chw,cd->...dhw", rgb, _matrix(True, rgb.device, rgb.dtype))


@functools.lru_cache(maxsize=16)
def _matrix(inverse: bool, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The (inverse) colour matrix on ``device``, made once (no copy to the device per step)."""
    matrix = torch.linalg.inv(COLOR_CORRELATION) if inverse else COLOR_CORRELATION
    return matrix.to(device=device, dtype=dtype)
