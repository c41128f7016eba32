"""Per-step augmentations: random square crops resized to the model input, then noise.

Every random draw of image ``b`` comes from that image's own generators, so an image gets the same
crops and noise whether it is optimized alone or inside a batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def crop_boxes(
    generator: torch.Generator,
    count: int,
    canvas: tuple[int, int],
    side_range: tuple[float, float],
    centre_std: float,
) -> list[tuple[int, int, int]]:
    """``count`` square crops ``(top, left, side)`` inside ``canvas``.

    Side: U[low, high] × the shorter canvas side. Centre: 0.5 + N(0, centre_std) of each axis; the
    box is then shifted (not shrunk) so it stays inside the canvas.
    """
    height, width = canvas
    low, high = side_range
    draws = torch.rand(count, 3, generator=generator, dtype=torch.float64)
    normals = torch.randn(count, 2, generator=generator, dtype=torch.float64)
    boxes = []
    for k in range(count):
        fraction = low + (high - low) * float(draws[k, 0])
        side = max(1, min(round(fraction * min(height, width)), height, width))
        centre_y = (0.5 + centre_std * float(normals[k, 0])) * height
        centre_x = (0.5 + centre_std * float(normals[k, 1])) * width
        top = min(max(round(centre_y - side / 2), 0), height - side)
        left = min(max(round(centre_x - side / 2), 0), width - side)
        boxes.append((top, left, side))
    return boxes


def crop_and_resize(
    images: torch.Tensor, boxes: Sequence[Sequence[tuple[int, int, int]]], size: tuple[int, int]
) -> torch.Tensor:
    """Cut ``boxes[b]`` out of ``images[b]`` and resize each crop to ``size`` (antialiased bilinear).

    Returns (sum of crop counts, 3, h, w), image-major: all crops of image 0 first.
    """
    crops = []
    for image, image_boxes in zip(images, boxes, strict=True):
        for top, left, side in image_boxes:
            crop = image[None, :, top : top + side, left : left + side]
            crops.append(F.interpolate(crop, size=size, mode="bilinear", antialias=True,
                                       align_corners=False))
    return torch.cat(crops)


def add_noise(crops: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    """Gaussian noise of ``std`` plus uniform noise of the same width, U(-std, std)."""
    if std <= 0:
        return crops
    shape, device = crops.shape, crops.device
    gaussian = torch.randn(shape, generator=generator, device=device, dtype=crops.dtype)
    uniform = torch.rand(shape, generator=generator, device=device, dtype=crops.dtype)
    return crops + std * gaussian + std * (2 * uniform - 1)
