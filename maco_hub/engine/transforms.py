"""Per-step augmentations: random square crops resized to the model input, then noise.

Every random draw of image ``b`` comes from that image's own generators, so an image gets the same
crops and noise whether it is optimized alone or inside a batch. Crop boxes are integer
``(top, left, side)`` rows; :func:`resample_crops` resizes all crops of all images in a few batched
ops, :func:`crop_and_resize` is the per-crop reference it is tested against.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F


def _boxes(
    uniforms: torch.Tensor,
    normals: torch.Tensor,
    canvas: tuple[int, int],
    low: torch.Tensor,
    high: torch.Tensor,
    centre_std: float,
) -> torch.Tensor:
    """Boxes ``(..., 3)`` = (top, left, side) from uniforms ``(..., 3)`` (column 0 is used) and
    standard normals ``(..., 2)``, all float64. Same arithmetic as one box at a time in Python."""
    height, width = canvas
    shorter = min(height, width)
    side = torch.round((low + (high - low) * uniforms[..., 0]) * shorter).clamp(1, shorter)
    centre_y = (0.5 + centre_std * normals[..., 0]) * height
    centre_x = (0.5 + centre_std * normals[..., 1]) * width
    top = torch.minimum(torch.round(centre_y - side / 2).clamp_min(0), height - side)
    left = torch.minimum(torch.round(centre_x - side / 2).clamp_min(0), width - side)
    return torch.stack([top, left, side], dim=-1).long()


def _draw(generator: torch.Generator, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One step's random numbers for ``count`` boxes (the order every maco_hub version used)."""
    return (
        torch.rand(count, 3, generator=generator, dtype=torch.float64),
        torch.randn(count, 2, generator=generator, dtype=torch.float64),
    )


def crop_boxes(
    generator: torch.Generator,
    count: int,
    canvas: tuple[int, int],
    side_range: tuple[float, float],
    centre_std: float,
) -> torch.Tensor:
    """``count`` square crops as a (count, 3) integer tensor of ``(top, left, side)`` rows.

    Side: U[low, high] × the shorter canvas side. Centre: 0.5 + N(0, centre_std) of each axis; the
    box is then shifted (not shrunk) so it stays inside the canvas.
    """
    low, high = (torch.tensor(float(v), dtype=torch.float64) for v in side_range)
    return _boxes(*_draw(generator, count), canvas, low, high, centre_std)


def crop_plan(
    generators: Sequence[torch.Generator],
    crops: int,
    canvas: tuple[int, int],
    side_ranges: Sequence[tuple[float, float]],
    centre_std: float,
) -> torch.Tensor:
    """All boxes of a run at once: (steps, images, crops, 3), image ``b`` drawn from ``generators[b]``.

    ``side_ranges[step]`` is that step's (low, high) crop side fraction. Step ``t`` of image ``b``
    gets exactly what ``crop_boxes(generators[b], crops, ...)`` would return at that step, so an
    image's boxes do not depend on the other images of its batch.
    """
    draws = [[_draw(g, crops) for g in generators] for _ in side_ranges]
    uniforms = torch.stack([torch.stack([u for u, _ in step]) for step in draws])
    normals = torch.stack([torch.stack([n for _, n in step]) for step in draws])
    ranges = torch.tensor([[float(v) for v in r] for r in side_ranges], dtype=torch.float64)
    ranges = ranges[:, None, None, :]
    return _boxes(uniforms, normals, canvas, ranges[..., 0], ranges[..., 1], centre_std)


# Blur levels for downscaling: level L is the canvas convolved with a discrete tent of half-width
# 2**L (variance (4**L - 1) / 6). Sampled bilinearly, level L gives exactly the antialiased
# bilinear weights of F.interpolate for a downscale of 2**L; in between, two levels are blended
# with weights that match the variance of the wanted filter.


def _level_variance(level: int) -> float:
    return (4**level - 1) / 6


def levels_needed(boxes: torch.Tensor, size: tuple[int, int]) -> int:
    """How many blur levels (including the sharp one) the crops of ``boxes`` need."""
    largest = float(boxes[..., 2].max()) / min(size)
    return 1 + max(0, math.ceil(math.log2(largest))) if largest > 1 else 1


def level_weights(boxes: torch.Tensor, size: tuple[int, int], levels: int) -> torch.Tensor:
    """Blend weights (..., levels) of each crop over the blur levels; each row sums to 1.

    A crop of side ``s · min(size)`` (downscale ``s > 1``) wants a tent filter of variance
    ``s² / 6``; bilinear sampling contributes 1/6 on average, so the level blend supplies
    ``(s² - 1) / 6``, linearly between the two levels around it.
    """
    scale = boxes[..., 2].to(torch.float64) / min(size)
    target = ((scale**2 - 1) / 6).clamp_min(0)
    variances = torch.tensor([_level_variance(level) for level in range(levels)], dtype=torch.float64)
    target = target.clamp_max(variances[-1])
    if levels == 1:
        return torch.ones(*target.shape, 1, dtype=torch.float64)
    upper = torch.searchsorted(variances, target.contiguous()).clamp(1, levels - 1)
    weights = torch.zeros(*target.shape, levels, dtype=torch.float64)
    low_var, high_var = variances[upper - 1], variances[upper]
    fraction = (target - low_var) / (high_var - low_var)
    weights.scatter_(-1, (upper - 1)[..., None], (1 - fraction)[..., None])
    weights.scatter_(-1, upper[..., None], fraction[..., None])
    return weights


def _smooth(images: torch.Tensor, dilation: int) -> torch.Tensor:
    """[1, 2, 1] / 4 along both axes with taps ``dilation`` pixels apart (edges replicated)."""
    d = dilation
    x = F.pad(images, (d, d, 0, 0), mode="replicate")
    x = (x[..., : -2 * d] + 2 * x[..., d:-d] + x[..., 2 * d :]) * 0.25
    x = F.pad(x, (0, 0, d, d), mode="replicate")
    return (x[..., : -2 * d, :] + 2 * x[..., d:-d, :] + x[..., 2 * d :, :]) * 0.25


def blur_levels(images: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """``images`` (B, C, H, W) blurred with the tents of levels 0 .. levels - 1 (edges replicated).

    A tent of half-width 2**L is the tent of half-width 2**(L-1) convolved with [1, 2, 1] / 4
    dilated by 2**(L-1), so each level costs three taps per axis.
    """
    out = [images]
    for level in range(1, levels):
        out.append(_smooth(out[-1], 2 ** (level - 1)))
    return out


def sampling_grid(boxes: torch.Tensor, canvas: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """``grid_sample`` grid (B, crops·h, w, 2) for boxes (B, crops, 3), crops stacked along height.

    Output pixel ``i`` of a crop reads canvas row ``top + (i + 0.5) · side / h - 0.5`` (the
    half-pixel convention of ``F.interpolate(align_corners=False)``), clamped to the crop.
    """
    height, width = canvas
    h, w = size
    batch, crops = boxes.shape[:2]
    boxes = boxes.to(torch.float32)
    top, left, side = boxes[..., 0:1], boxes[..., 1:2], boxes[..., 2:3]
    rows = torch.arange(h, device=boxes.device, dtype=torch.float32)
    cols = torch.arange(w, device=boxes.device, dtype=torch.float32)
    ys = torch.minimum((top + (rows + 0.5) * side / h - 0.5).clamp_min(top), top + side - 1)
    xs = torch.minimum((left + (cols + 0.5) * side / w - 0.5).clamp_min(left), left + side - 1)
    ys = (2 * ys + 1) / height - 1  # (B, crops, h), normalized as align_corners=False reads it
    xs = (2 * xs + 1) / width - 1  # (B, crops, w)
    grid = torch.stack(
        [xs[:, :, None, :].expand(batch, crops, h, w), ys[:, :, :, None].expand(batch, crops, h, w)], dim=-1
    )
    return grid.reshape(batch, crops * h, w, 2)


def resample_crops(
    images: torch.Tensor,
    boxes: torch.Tensor,
    size: tuple[int, int],
    weights: torch.Tensor,
) -> torch.Tensor:
    """All crops of all images resized to ``size`` at once: (B·crops, C, h, w), image-major.

    ``boxes`` (B, crops, 3) on the images' device; ``weights`` (B, crops, levels) from
    :func:`level_weights` (the number of levels is its last dimension). Upscaled crops equal
    :func:`crop_and_resize` exactly; downscaled ones approximate its antialiasing filter.
    """
    batch, channels = images.shape[:2]
    crops = boxes.shape[1]
    h, w = size
    grid = sampling_grid(boxes, tuple(images.shape[-2:]), size)
    out = None
    for level, blurred in enumerate(blur_levels(images, weights.shape[-1])):
        sampled = F.grid_sample(
            blurred, grid, mode="bilinear", padding_mode="border", align_corners=False
        ).view(batch, channels, crops, h, w)
        part = sampled * weights[:, None, :, level, None, None].to(sampled.dtype)
        out = part if out is None else out + part
    return out.transpose(1, 2).reshape(batch * crops, channels, h, w)


def crop_and_resize(
    images: torch.Tensor, boxes: Sequence[Sequence[Sequence[int]]] | torch.Tensor, size: tuple[int, int]
) -> torch.Tensor:
    """Cut ``boxes[b]`` out of ``images[b]`` and resize each crop to ``size`` (antialiased bilinear).

    One ``F.interpolate`` per crop: the reference implementations' structure, kept as the exact
    reference for :func:`resample_crops`. Returns (sum of crop counts, 3, h, w), image-major.
    """
    crops = []
    for image, image_boxes in zip(images, boxes, strict=True):
        for top, left, side in image_boxes:
            top, left, side = int(top), int(left), int(side)
            crop = image[None, :, top : top + side, left : left + side]
            crops.append(F.interpolate(crop, size=size, mode="bilinear", antialias=True, align_corners=False))
    return torch.cat(crops)


def add_noise(crops: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    """Gaussian noise of ``std`` plus uniform noise of the same width, U(-std, std)."""
    if std <= 0:
        return crops
    shape, device = crops.shape, crops.device
    gaussian = torch.randn(shape, generator=generator, device=device, dtype=crops.dtype)
    uniform = torch.rand(shape, generator=generator, device=device, dtype=crops.dtype)
    return crops + std * gaussian + std * (2 * uniform - 1)
