"""The engine's tensors as the pictures a gallery row holds: the RGB image and the attribution map."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

ALPHA_QUANTILE = 0.99  # attribution at this quantile maps to full opacity


def to_pil_image(image: torch.Tensor) -> Image.Image:
    """(3, H, W) float in [0, 1] → 8-bit RGB image."""
    array = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(np.ascontiguousarray(array), mode="RGB")


def attribution_to_alpha(attribution: torch.Tensor) -> Image.Image:
    """(H, W) non-negative attribution → "L" image: value / its 99th percentile, clipped to [0, 1]."""
    scale = torch.quantile(attribution.flatten().float(), ALPHA_QUANTILE).clamp_min(1e-12)
    alpha = (attribution / scale).clamp(0, 1)
    return Image.fromarray((alpha * 255).round().to(torch.uint8).numpy(), mode="L")
