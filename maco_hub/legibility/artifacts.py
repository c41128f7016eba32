"""Artifact measures of one picture: a fine horizontal/vertical grid, narrow periodic peaks, haze,
contrast and bright borders. numpy and PIL only; no model.

Every measure reads the luminance ``Y = 0.299 R + 0.587 G + 0.114 B`` on [0, 1]; the two spectral
ones its Welch power spectrum: tiles of 128 px (64 or 32 under 256 or 128 px) overlapping by half,
mean removed, 2-D Hann window, ``|fft2|²`` averaged over tiles, so frequencies are in cycles per
pixel whatever the size. Typical values (``scripts/artifact_photos.py``; nine photos of
scikit-image, scikit-learn and matplotlib, centre squares; MACO pictures of EfficientNet-Lite0 at
canvas 512, 256 steps) are given per measure:

* ``grid_db`` (:func:`grid_score`, dB): how much more the fine detail is horizontal/vertical than
  the coarse detail. Per ring of the spectrum, 10·log10(mean power on the axes (within 1 bin of
  ``fx = 0`` or ``fy = 0``) / mean power off them); the score is the mean over the rings of the top
  two octaves (1/8 to 1/2 cycle/px) minus the mean over the two octaves below. Photos keep their
  orientation mix across scales: -0.6 to +1.3 at their own size (median -0.1). A grain of lines a
  few pixels apart all over the picture, a nearest-neighbour upscale or a magnitude spectrum with a
  wrap-around "axis cross" adds to the fine scales only: photos upscaled 1.5–2× (nearest) 4.1–4.4
  (median), MACO pictures with the spectrum shipped before issue 16 6.4–7.6, with a spectrum of
  periodic components 0.9–1.5.
* ``peak_db`` (:func:`peak_score`, dB): how far the strongest narrow peaks of the top two octaves
  stand out from a smooth background (a running median along the axis lines near them, a 9 × 9
  median elsewhere): the mean excess of the strongest 1 % of the band's bins. A faint lattice of
  thin lines (every 3–4 px, 3 % amplitude) gives 7.4–9.8 (medians) on photos that score 4.4
  without it; MACO pictures 1.4–2.7 (their grain is broad-band).
* ``haze`` (:func:`haze`): the dark channel (He et al., CVPR 2009): mean over the image of the
  minimum of R, G and B over a square window of 1/32 of the shorter side (odd, at least 3 px).
  Photos 0.04–0.36 (median 0.18); a washed-out picture lifts it: MACO pictures 0.15–0.35.
* ``rms_contrast`` (:func:`rms_contrast`): the standard deviation of Y. Photos 0.12–0.32 (median
  0.24); MACO pictures 0.10–0.22.
* ``border_excess`` (:func:`border_excess`): mean Y of the outer frame (1/32 of the shorter side)
  minus that of the interior; bright borders are positive. Photos -0.12 to +0.06; MACO pictures
  -0.08 to +0.10, random-phase MACO images of the spectrum shipped before issue 16 +0.06 to +0.08.

Images are PIL images or arrays (H, W) / (H, W, 3|4) of uint8 or floats on [0, 1], from
:data:`MIN_SIDE` px a side to :data:`MAX_PIXELS` pixels; anything else is one ConfigError.

>>> import numpy as np
>>> noise = np.random.default_rng(0).random((256, 256))
>>> lines = (np.arange(256) % 4 == 0)[None, :] | (np.arange(256) % 4 == 0)[:, None]
>>> bool(peak_score(0.8 * noise + 0.2 * lines) > peak_score(noise) + 4)
True
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from ..errors import ConfigError

__all__ = [
    "MAX_PIXELS",
    "MEASURES",
    "MIN_SIDE",
    "artifact_measures",
    "border_excess",
    "grid_score",
    "haze",
    "peak_score",
    "rms_contrast",
]

MEASURES = ("grid_db", "peak_db", "haze", "rms_contrast", "border_excess")  # artifact_measures' keys
MIN_SIDE = 64  # px: below this there are too few tiles for a steady spectrum
MAX_PIXELS = 4096 * 4096  # a few seconds for the largest picture; larger ones are refused
_LUMA = np.array([0.299, 0.587, 0.114])
_TILE = 128  # Welch tile side for images of 256 px and more
_BAND = (1 / 8, 1 / 2)  # cycles per pixel: the top two octaves
_TOP = 0.01  # fraction of the band's bins whose excess makes the peak score
_GRID_AXIS = 1  # grid score: bins within 1 of an axis line are "on the axes"
_AXIS_WIDTH = 2  # peak score: bins within 2 of an axis line follow it (the Hann main lobe)
_AXIS_REACH = 0.3  # axis background: running median over ±30 % of the frequency
_WINDOW = 4  # off-axis background: median over a 9 x 9 bin neighbourhood
_FLOOR = 1e-12  # relative to the mean power: a flat picture scores 0 dB, not NaN


def artifact_measures(image: Any) -> dict[str, float]:
    """Every measure of one picture, keyed by the names of :data:`MEASURES`."""
    rgb = _rgb(image)
    y = rgb @ _LUMA
    power = _power_spectrum(y)
    return {
        "grid_db": _grid(power),
        "peak_db": _peak(power),
        "haze": _haze(rgb),
        "rms_contrast": float(y.std()),
        "border_excess": _border(y),
    }


def grid_score(image: Any) -> float:
    """Fine-scale minus coarse-scale horizontal/vertical excess of the spectrum, in dB."""
    return _grid(_power_spectrum(_rgb(image) @ _LUMA))


def peak_score(image: Any) -> float:
    """Mean excess in dB over a smooth background of the strongest 1 % of top-octave bins."""
    return _peak(_power_spectrum(_rgb(image) @ _LUMA))


def haze(image: Any) -> float:
    """Mean dark channel: min of R, G, B over windows of 1/32 of the shorter side."""
    return _haze(_rgb(image))


def rms_contrast(image: Any) -> float:
    """Standard deviation of the luminance on [0, 1]."""
    return float((_rgb(image) @ _LUMA).std())


def border_excess(image: Any) -> float:
    """Mean luminance of the outer frame (1/32 of the shorter side) minus that of the interior."""
    return _border(_rgb(image) @ _LUMA)


# ------------------------------------------------------------------------------- internals


def _rgb(image: Any) -> np.ndarray:
    """``image`` as float64 (H, W, 3) on [0, 1], checked (ConfigError naming what is wrong)."""
    if isinstance(image, Image.Image):
        _check_size(image.height, image.width)
        image = image.convert("RGB")
    array = np.asarray(image) if isinstance(image, (Image.Image, np.ndarray)) else None
    if array is None or not (array.dtype == np.uint8 or np.issubdtype(array.dtype, np.floating)):
        what = f"an array of {array.dtype}" if array is not None else type(image).__name__
        raise ConfigError(
            f"The artifact measures take a PIL image or an array of uint8 or floats on [0, 1], not {what}."
        )
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (3, 4))):
        raise ConfigError(
            f"An image of shape {array.shape} is not (H, W), (H, W, 3) or (H, W, 4): pass one picture."
        )
    _check_size(*array.shape[:2])
    if array.dtype == np.uint8:
        array = array / 255.0
    elif not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
        raise ConfigError("The image has NaN, infinite or out-of-range pixels: pass floats on [0, 1].")
    array = array.astype(np.float64)
    return np.repeat(array[..., None], 3, axis=-1) if array.ndim == 2 else array[..., :3]


def _check_size(height: int, width: int) -> None:
    if min(height, width) < MIN_SIDE or height * width > MAX_PIXELS:
        raise ConfigError(
            f"An image of {height}x{width} px cannot be measured: use {MIN_SIDE} px or more a side "
            f"and at most {MAX_PIXELS} pixels ({int(MAX_PIXELS**0.5)}x{int(MAX_PIXELS**0.5)})."
        )


def _power_spectrum(y: np.ndarray) -> np.ndarray:
    """Welch power spectrum (tile, tile) of the luminance ``y``, in ``np.fft.fft2`` order."""
    tile = _TILE
    while tile > 32 and 2 * tile > min(y.shape):
        tile //= 2
    window = np.outer(np.hanning(tile + 1)[:-1], np.hanning(tile + 1)[:-1])
    tiles = np.lib.stride_tricks.sliding_window_view(y, (tile, tile))[:: tile // 2, :: tile // 2]
    total = np.zeros((tile, tile))
    for row in tiles:  # one row of tiles at a time: memory stays small for large pictures
        row = row - row.mean(axis=(1, 2), keepdims=True)
        total += (np.abs(np.fft.fft2(row * window)) ** 2).sum(axis=0)
    power = total / (tiles.shape[0] * tiles.shape[1])
    return power + _FLOOR * power.mean() + 1e-300


def _bins(tile: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer frequency indices (ky, kx) of a (tile, tile) spectrum in ``fft2`` order."""
    k = np.rint(np.fft.fftfreq(tile) * tile).astype(int)
    return np.meshgrid(k, k, indexing="ij")


def _axis_excess(power: np.ndarray, low: float, high: float) -> float:
    """Mean over the rings ``low`` to ``high`` cycles/px of 10·log10(mean power on the axes / mean
    power off them)."""
    tile = power.shape[0]
    ky, kx = _bins(tile)
    ring = np.rint(np.hypot(ky, kx)).astype(int).ravel()
    on = (np.minimum(abs(ky), abs(kx)) <= _GRID_AXIS).ravel()
    rings = slice(round(low * tile), round(high * tile) + 1)

    size = ring.max() + 1
    sums = [np.bincount(ring[where], power.ravel()[where], size)[rings] for where in (on, ~on)]
    counts = [np.bincount(ring[where], minlength=size)[rings] for where in (on, ~on)]
    both = (counts[0] > 0) & (counts[1] > 0)  # small tiles: the innermost rings have no off-axis bin
    ratio = (sums[0][both] / counts[0][both]) / (sums[1][both] / counts[1][both])
    return float(10 * np.mean(np.log10(ratio)))


def _grid(power: np.ndarray) -> float:
    return _axis_excess(power, *_BAND) - _axis_excess(power, _BAND[0] / 4, _BAND[0])


def _axis_background(log_power: np.ndarray) -> np.ndarray:
    """Per bin near an axis line (within ±2 of it): the running median along that line over ±30 %
    of its frequency (at least ±3 bins), same side of zero; smooth along the radius, as edges are."""
    tile = log_power.shape[0]
    shifted = np.fft.fftshift(log_power)
    k = np.arange(tile) - tile // 2
    reach = np.maximum(3, np.rint(_AXIS_REACH * abs(k))).astype(int)
    neighbours = [
        np.flatnonzero((abs(k - ki) <= r) & (np.sign(k) == np.sign(ki)))
        for ki, r in zip(k, reach, strict=True)
    ]
    out = np.full_like(shifted, np.nan)
    centre = tile // 2
    for offset in range(-_AXIS_WIDTH, _AXIS_WIDTH + 1):
        for index in ((centre + offset, slice(None)), (slice(None), centre + offset)):
            line = shifted[index]
            out[index] = [np.median(line[n]) for n in neighbours]
    return np.fft.ifftshift(out)


def _local_background(log_power: np.ndarray) -> np.ndarray:
    """Median of each bin's 9 × 9 neighbourhood, axis bins left out of it."""
    tile = log_power.shape[0]
    ky, kx = _bins(tile)
    masked = np.fft.fftshift(np.where(np.minimum(abs(ky), abs(kx)) <= _AXIS_WIDTH, np.nan, log_power))
    padded = np.pad(masked, _WINDOW, constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (2 * _WINDOW + 1,) * 2)
    return np.fft.ifftshift(np.nanmedian(windows.reshape(tile, tile, -1), axis=-1))


def _peak(power: np.ndarray) -> float:
    tile = power.shape[0]
    ky, kx = _bins(tile)
    frequency = np.hypot(ky, kx) / tile
    band = (frequency >= _BAND[0]) & (frequency <= _BAND[1])
    log_power = np.log(power)
    near_axis = np.minimum(abs(ky), abs(kx)) <= _AXIS_WIDTH
    background = np.where(near_axis, _axis_background(log_power), _local_background(log_power))
    excess = np.sort((log_power - background)[band])[::-1]
    top = max(1, round(_TOP * len(excess)))
    return float(10 / np.log(10) * excess[:top].mean())


def _haze(rgb: np.ndarray) -> float:
    size = max(3, round(min(rgb.shape[:2]) / 32) | 1)
    darkest = np.minimum(np.minimum(rgb[..., 0], rgb[..., 1]), rgb[..., 2]).astype(np.float32)
    return float(_min_filter(_min_filter(darkest, size, 1).T, size, 1).mean(dtype=np.float64))


def _min_filter(a: np.ndarray, size: int, axis: int) -> np.ndarray:
    """Minimum over a centred window of ``size`` (odd) along ``axis``, edges replicated (as PIL's
    MinFilter), in O(n) per line: van Herk / Gil-Werman block prefix and suffix minima."""
    a = np.moveaxis(a, axis, -1)
    n, half = a.shape[-1], size // 2
    padded = np.pad(a, [(0, 0)] * (a.ndim - 1) + [(half, half + (-(n + 2 * half)) % size)], mode="edge")
    blocks = padded.reshape(*padded.shape[:-1], -1, size)
    forward = np.minimum.accumulate(blocks, axis=-1).reshape(padded.shape)
    backward = np.minimum.accumulate(blocks[..., ::-1], axis=-1)[..., ::-1].reshape(padded.shape)
    return np.moveaxis(np.minimum(backward[..., :n], forward[..., size - 1 : size - 1 + n]), -1, axis)


def _border(y: np.ndarray) -> float:
    width = max(1, min(y.shape) // 32)
    frame = np.ones(y.shape, dtype=bool)
    frame[width:-width, width:-width] = False
    return float(y[frame].mean() - y[~frame].mean())
