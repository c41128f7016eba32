"""Estimate a :class:`~maco_hub.spectra.spectrum.Spectrum` from photographs.

Each image is converted to RGB (grayscale images are replicated to three channels, an alpha
channel is dropped), its short side resized to ``resolution`` (bicubic, antialiased), centre
cropped to ``resolution x resolution``, scaled to [0, 1], normalized with the ImageNet mean/std,
mapped to decorrelated colours, reduced to its periodic component (:func:`periodic_component`;
``boundary="plain"`` skips that step) and transformed with ``rfft2``; the magnitudes are averaged
in float64. Images whose short side is below ``min_size`` pixels are skipped with a warning.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> photos = [rng.integers(0, 256, (40, 50, 3), dtype=np.uint8) for _ in range(2)]
>>> spectrum = estimate_spectrum(photos, resolution=32, metadata={"dataset": "noise"},
...                              progress=False)
>>> tuple(spectrum.magnitude.shape), spectrum.metadata["num_images"]
((3, 32, 17), '2')
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .._host import memory_available
from .._numbers import check_int
from ..errors import ConfigError
from ..models.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
from .color import decorrelate
from .spectrum import COLOR_SPACE, Spectrum

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

__all__ = [
    "ESTIMATOR_VERSION",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "augmented_views",
    "compare_magnitudes",
    "estimate_spectrum",
    "periodic_component",
    "radial_slope",
]

MAX_RESOLUTION = 8192  # pixels: an estimate at 8192 needs about 8 GiB (BYTES_PER_PIXEL)
BYTES_PER_PIXEL = 128  # peak memory of an estimate per resolution**2 (measured ~100 on the CPU, 1024-4096 px)
ESTIMATOR_VERSION = "2"  # bump when the preprocessing below changes (1: without the periodic component)
BOUNDARIES = ("periodic", "plain")  # each view's periodic component, or the view as it is (version 1)
_VERSIONS = {"periodic": ESTIMATOR_VERSION, "plain": "1"}
_PERIODIC_STEP = (
    "periodic component of each view and channel (Moisan's periodic plus smooth decomposition: "
    "the jump between opposite borders removed); "
)
PREPROCESSING = (
    "RGB (grayscale replicated, alpha dropped); short side resized to {r} px (bicubic, "
    "antialiased, float); centre crop {r}x{r}; [0,1]; (x - mean) / std with ImageNet mean "
    "(0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225); decorrelated colours "
    "(inverse Lucid colour matrix); {periodic}mean |rfft2| per channel in float64"
)


def estimate_spectrum(
    images: Iterable[Image.Image | np.ndarray],
    *,
    resolution: int = 512,
    metadata: dict,
    progress: bool = True,
    min_size: int = 32,
    boundary: str = "periodic",
) -> Spectrum:
    """Mean decorrelated ``|rfft2|`` of ``images`` at ``resolution x resolution``.

    ``boundary="periodic"`` (default) transforms each view's :func:`periodic_component`, so the jump
    between its opposite borders (which ``rfft2`` sees as an edge) adds no cross of energy along the
    frequency axes; ``"plain"`` transforms the view as it is (estimator version 1).

    ``images`` are PIL images or arrays (H, W), (H, W, 3) or (H, W, 4): integer arrays are
    scaled by their dtype's maximum, float arrays are taken as already in [0, 1] (not clipped).
    ``metadata`` (provenance: dataset, split, ...) is stored with the result, plus
    ``num_images``, ``num_skipped``, ``resolution``, ``preprocessing``, ``color_space`` and
    ``estimator_version``.
    """
    from tqdm.auto import tqdm

    resolution = check_int("resolution", resolution, 8, MAX_RESOLUTION, "pixels")
    min_size = check_int("min_size", min_size, 1, sys.maxsize, "pixels on the short side")
    if boundary not in BOUNDARIES:
        raise ConfigError(f"boundary={boundary!r} is invalid: use one of {BOUNDARIES} (default 'periodic').")
    view = periodic_component if boundary == "periodic" else (lambda x: x)
    check_estimate_memory(resolution)
    normalizer = Preprocessing(mean=IMAGENET_MEAN, std=IMAGENET_STD, size=(resolution, resolution))
    total = torch.zeros(3, resolution, resolution // 2 + 1, dtype=torch.float64)
    count = skipped = 0
    for index, image in enumerate(tqdm(images, desc="spectrum", unit="img", disable=not progress)):
        pixels = _to_float_rgb(image, index)
        if min(pixels.shape[-2:]) < min_size:
            warnings.warn(
                f"Skipping image {index}: {pixels.shape[-2]}x{pixels.shape[-1]} px is below "
                f"min_size={min_size}.",
                stacklevel=2,
            )
            skipped += 1
            continue
        square = _resize_crop(pixels, resolution)
        total += torch.fft.rfft2(view(decorrelate(normalizer.normalize(square[None]))[0])).abs()
        count += 1
    if count == 0:
        raise ConfigError(
            f"No usable image to estimate a spectrum from ({skipped} skipped as smaller than "
            f"min_size={min_size} px; files that are no readable image are named in the warnings "
            "above); pass at least one image."
        )
    info = {str(k): str(v) for k, v in metadata.items()}
    info.update(
        num_images=str(count),
        num_skipped=str(skipped),
        preprocessing=PREPROCESSING.format(
            r=resolution, periodic=_PERIODIC_STEP if boundary == "periodic" else ""
        ),
        color_space=COLOR_SPACE,
        estimator_version=_VERSIONS[boundary],
        height=str(resolution),
        width=str(resolution),
    )
    info.pop("sha256", None)
    return Spectrum((total / count).to(torch.float32), info)


def periodic_component(x: torch.Tensor) -> torch.Tensor:
    """The periodic component of (..., H, W) images (Moisan, "Periodic plus smooth image
    decomposition", JMIV 2011): ``x`` minus the smooth image whose discrete Laplacian is the jump
    between opposite borders. Its ``rfft2`` has no cross of border energy along the axes; an image
    that is already periodic (no jump) is returned unchanged up to rounding, and the mean is kept.
    """
    height, width = x.shape[-2:]
    jump = torch.zeros_like(x)
    jump[..., 0, :] += x[..., -1, :] - x[..., 0, :]
    jump[..., -1, :] += x[..., 0, :] - x[..., -1, :]
    jump[..., :, 0] += x[..., :, -1] - x[..., :, 0]
    jump[..., :, -1] += x[..., :, 0] - x[..., :, -1]
    q = torch.arange(height, dtype=x.dtype)[:, None]
    r = torch.arange(width // 2 + 1, dtype=x.dtype)[None, :]
    laplacian = 2 * torch.cos(2 * math.pi * q / height) + 2 * torch.cos(2 * math.pi * r / width) - 4
    laplacian[0, 0] = 1
    smooth = torch.fft.rfft2(jump) / laplacian
    smooth[..., 0, 0] = 0
    return torch.fft.irfft2(torch.fft.rfft2(x) - smooth, s=(height, width))


def check_estimate_memory(resolution: int, available: int | None = None) -> None:
    """ConfigError before allocating when an estimate at ``resolution`` cannot fit in memory.

    ``available`` defaults to the free CPU memory (no check where it is unknown).
    """
    available = memory_available() if available is None else available
    need = BYTES_PER_PIXEL * resolution**2
    if available is None or need <= available:
        return
    fits = max(8, math.isqrt(available // BYTES_PER_PIXEL) // 8 * 8)
    raise ConfigError(
        f"resolution={resolution} needs about {need / 2**30:.1f} GiB of memory to "
        f"estimate, but only {available / 2**30:.1f} GiB is available: use "
        f"resolution={fits} or less, or free memory."
    )


def augmented_views(
    image: Image.Image | np.ndarray,
    *,
    scales: Sequence[float] = (1.0, 0.75, 0.5),
    crops_per_scale: int = 2,
    flip: bool = True,
    rng: np.random.Generator,
) -> Iterator[np.ndarray]:
    """Square crops of ``image`` (uint8/float array H x W x 3) for a steadier mean spectrum.

    For each scale ``s`` in ``scales``: the full-size square (side ``s * short side``) at
    ``crops_per_scale`` positions drawn uniformly with ``rng`` (one centred crop when the crop
    cannot move); with ``flip`` each crop is also yielded mirrored left-right.
    """
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    height, width = array.shape[:2]
    for scale in scales:
        if not 0 < scale <= 1:
            raise ConfigError(f"Crop scale {scale!r} must be in (0, 1].")
        side = max(1, round(scale * min(height, width)))
        room_y, room_x = height - side, width - side
        count = 1 if room_y == room_x == 0 else crops_per_scale
        for _ in range(count):
            top = int(rng.integers(0, room_y + 1))
            left = int(rng.integers(0, room_x + 1))
            crop = array[top : top + side, left : left + side]
            yield crop
            if flip:
                yield crop[:, ::-1]


def _to_float_rgb(image: Any, index: int) -> torch.Tensor:
    """(3, H, W) float64 in [0, 1] from a PIL image or an array."""
    if hasattr(image, "convert") and hasattr(image, "mode"):  # PIL
        image = image.convert("RGB")
    array = np.asarray(image)
    if array.dtype == bool or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise ConfigError(
            f"Image {index} has dtype {array.dtype}; pass uint8/uint16 or float (in [0, 1]) pixels."
        )
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    if array.ndim != 3 or array.shape[-1] not in (3, 4):
        raise ConfigError(
            f"Image {index} has shape {array.shape}; pass (H, W), (H, W, 3) or (H, W, 4) arrays."
        )
    scale = np.iinfo(array.dtype).max if np.issubdtype(array.dtype, np.integer) else 1.0
    pixels = torch.from_numpy(np.ascontiguousarray(array[..., :3], dtype=np.float64) / scale)
    return pixels.permute(2, 0, 1)


def _resize_crop(pixels: torch.Tensor, resolution: int) -> torch.Tensor:
    """Resize the short side of (3, H, W) to ``resolution`` and centre crop a square."""
    height, width = pixels.shape[-2:]
    if (height, width) != (resolution, resolution):
        factor = resolution / min(height, width)
        size = (
            max(resolution, math.floor(height * factor + 0.5)),
            max(resolution, math.floor(width * factor + 0.5)),
        )
        pixels = torch.nn.functional.interpolate(
            pixels[None], size=size, mode="bicubic", antialias=True, align_corners=False
        )[0]
        top, left = (size[0] - resolution) // 2, (size[1] - resolution) // 2
        pixels = pixels[:, top : top + resolution, left : left + resolution]
    return pixels


def radial_frequency(height: int, width: int) -> torch.Tensor:
    """Radial frequency in cycles per image of each bin of an rfft2 ``(height, width//2+1)`` grid.

    Cycles per image are measured along each axis (``k`` for bin ``k``), so a square canvas gives
    the usual integer grid; for non-square canvases both axes are scaled to the height.
    """
    fy = torch.fft.fftfreq(height, dtype=torch.float64) * height
    fx = torch.fft.rfftfreq(width, dtype=torch.float64) * height
    return torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)


def radial_slope(magnitude: torch.Tensor, low: float, high: float, *, width: int | None = None) -> float:
    """Least-squares slope of log-magnitude vs log-frequency over ``low <= f <= high``.

    ``magnitude`` is (..., H, W//2+1) (channels are pooled); frequencies in cycles per image.
    """
    height = magnitude.shape[-2]
    width = width if width is not None else 2 * (magnitude.shape[-1] - 1)
    radius = radial_frequency(height, width).expand(magnitude.shape)
    keep = (radius >= low) & (radius <= high) & (magnitude > 0)
    x = torch.log(radius[keep])
    y = torch.log(magnitude.to(torch.float64)[keep])
    x = x - x.mean()
    return float((x * (y - y.mean())).sum() / (x * x).sum())


def compare_magnitudes(ours: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    """Numbers comparing two (3, H, W//2+1) magnitudes of the same (square, even) canvas.

    ``corr_c{i}``/``corr_all``: Pearson correlation of log-magnitudes without DC;
    ``corr_all_128``: the same over frequencies up to 128 cycles/image only;
    ``slope_{lo}_{hi}_{ours,ref}``: :func:`radial_slope` (all channels pooled);
    ``axis_diag_{ours,ref}``: mean magnitude within 5 degrees of the axes over that within
    5 degrees of the diagonals, for 8-128 cycles/image, each bin first divided by the mean of
    its integer radius ring (so the radial fall-off cancels); ``scale_ratio``: mean magnitude of
    ``ours`` over that of ``reference`` (no DC); ``median_ratio``: median of the per-bin ratio.
    """
    if ours.shape != reference.shape or ours.ndim != 3:
        raise ConfigError(
            f"Cannot compare magnitudes of shapes {tuple(ours.shape)} and "
            f"{tuple(reference.shape)}; resize one with Spectrum.resized first."
        )
    ours, reference = ours.to(torch.float64), reference.to(torch.float64)
    height = ours.shape[-2]
    no_dc = torch.ones(ours.shape[-2:], dtype=torch.bool)
    no_dc[0, 0] = False
    result: dict[str, float] = {}
    for channel in range(3):
        result[f"corr_c{channel}"] = _pearson(ours[channel][no_dc].log(), reference[channel][no_dc].log())
    result["corr_all"] = _pearson(ours[:, no_dc].log(), reference[:, no_dc].log())
    low = no_dc & (radial_frequency(height, 2 * (ours.shape[-1] - 1)) <= 128)
    result["corr_all_128"] = _pearson(ours[:, low].log(), reference[:, low].log())
    for low, high in ((2, 32), (2, 128)):
        result[f"slope_{low}_{high}_ours"] = radial_slope(ours, low, high)
        result[f"slope_{low}_{high}_ref"] = radial_slope(reference, low, high)
    result["axis_diag_ours"] = _axis_to_diagonal(ours, height)
    result["axis_diag_ref"] = _axis_to_diagonal(reference, height)
    result["scale_ratio"] = float(ours[:, no_dc].mean() / reference[:, no_dc].mean())
    result["median_ratio"] = float((ours[:, no_dc] / reference[:, no_dc]).median())
    return result


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten() - a.mean(), b.flatten() - b.mean()
    return float((a * b).sum() / torch.sqrt((a * a).sum() * (b * b).sum()))


def _axis_to_diagonal(magnitude: torch.Tensor, height: int) -> float:
    width = 2 * (magnitude.shape[-1] - 1)
    fy = torch.fft.fftfreq(height, dtype=torch.float64) * height
    fx = torch.fft.rfftfreq(width, dtype=torch.float64) * height
    radius = radial_frequency(height, width)
    angle = torch.rad2deg(torch.atan2(fy[:, None].abs(), fx[None, :]))
    ring = radius.round().long()
    band = (radius >= 8) & (radius <= 128)
    mean = magnitude.mean(0)
    ring_mean = torch.zeros(int(ring.max()) + 1, dtype=torch.float64).index_add_(
        0, ring.flatten(), mean.flatten()
    ) / torch.bincount(ring.flatten()).clamp(min=1)
    relative = mean / ring_mean[ring]
    axis = band & ((angle <= 5) | (angle >= 85))
    diagonal = band & ((angle - 45).abs() <= 5)
    return float(relative[axis].mean() / relative[diagonal].mean())
