"""Fourier magnitude spectra: the fixed magnitude MACO optimizes the phase against.

A :class:`Spectrum` holds the mean ``|rfft2|`` of natural images in decorrelated colour space,
laid out as ``torch.fft.rfft2`` returns it for an ``H x W`` image: shape ``(3, H, W // 2 + 1)``,
DC at ``[..., 0, 0]``, not fftshifted. :func:`maco_hub.spectra.loading.load_spectrum` finds one
(the shipped default, a local file or a Hub repo) and verifies its checksum.

>>> from maco_hub import load_spectrum
>>> spectrum = load_spectrum()
>>> tuple(spectrum.magnitude.shape), spectrum.height, spectrum.width
((3, 512, 257), 512, 512)
>>> spectrum.resized(64, 96).magnitude.shape
torch.Size([3, 64, 49])
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import torch

from .._files import atomic_write
from .._numbers import STANDARDIZE_EPS as ENGINE_EPS
from ..errors import ConfigError, SpectrumError

COLOR_SPACE = "decorrelated-lucid"  # the channels of maco_hub.spectra.color.decorrelate
DEFAULT_FILENAME = "spectrum.safetensors"  # file looked up in Hub repos and folders
TENSOR_NAME = "magnitude"  # the one tensor of a spectrum file
REQUIRED_KEYS = ("sha256", "height", "width", "color_space")  # metadata every file must carry
LOADED_FROM_KEYS = ("source", "revision", "filename")  # where a spectrum was loaded from; never saved
DEFAULT_SPECTRUM_ID = "maco_hub/default"
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
MAX_CANVAS_ENERGY = float(torch.finfo(torch.float32).max) / 2**10  # see check_engine_range
MIN_CANVAS_STD = 1000 * ENGINE_EPS  # canvas std before standardizing; see check_engine_range
MAX_MEAN_TO_STD = 2**24 / 100  # a channel's mean over that std; see check_engine_range
_NAME_PART_RE = re.compile(r"^\w[\w.+-]*$")  # a letter, digit or "_" first; no spaces or markup
_MAX_NAME = 255
_REPO_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


def _tensor_sha256(magnitude: torch.Tensor) -> str:
    """sha256 of the float32 little-endian, C-order bytes of ``magnitude``."""
    array = magnitude.detach().to("cpu", torch.float32).contiguous().numpy()
    return hashlib.sha256(array.astype("<f4", copy=False).tobytes(order="C")).hexdigest()


@dataclass(frozen=True, eq=False)
class Spectrum:
    """Mean Fourier magnitude of natural images, decorrelated colours, rfft2 layout.

    ``metadata`` may omit ``height``/``width`` (then ``width`` is taken as even) and ``sha256``
    (computed); if given they must agree with ``magnitude``.
    """

    magnitude: torch.Tensor  # float32 (3, H, W // 2 + 1), not fftshifted, DC at [..., 0, 0]
    metadata: Mapping[str, str] = field(default_factory=dict)  # provenance, all values str

    def __post_init__(self) -> None:
        magnitude = self.magnitude
        if not isinstance(magnitude, torch.Tensor):
            raise SpectrumError(
                f"Spectrum magnitude must be a torch.Tensor, got {type(magnitude).__name__}; "
                "wrap arrays with torch.as_tensor(...)."
            )
        if magnitude.ndim != 3 or magnitude.shape[0] != 3:
            raise SpectrumError(
                f"Spectrum magnitude has shape {tuple(magnitude.shape)}; expected (3, H, W // 2 + 1)"
                " (three decorrelated colour channels in the rfft2 layout)."
            )
        magnitude = magnitude.detach().to("cpu", torch.float32).contiguous()
        if not torch.isfinite(magnitude).all():
            raise SpectrumError("Spectrum magnitude contains NaN or infinite values; re-estimate it.")
        if (magnitude < 0).any():
            raise SpectrumError(
                f"Spectrum magnitude has negative values (min {magnitude.min().item():.3g}); "
                "a magnitude is |rfft2|, re-estimate it."
            )
        ac = magnitude.clone()
        ac[:, 0, 0] = 0
        if not ac.any():
            raise SpectrumError(
                f"Spectrum magnitude of shape {tuple(magnitude.shape)} is zero at every frequency "
                "but DC: every image made with it would be flat grey; re-estimate it."
            )
        metadata = {str(k): str(v) for k, v in dict(self.metadata).items()}
        rows, half = magnitude.shape[1], magnitude.shape[2]
        height = _int_key(metadata, "height", rows)
        width = _int_key(metadata, "width", 2 * (half - 1))
        if height != rows or width < 1 or width // 2 + 1 != half:
            raise SpectrumError(
                f"Spectrum magnitude shape {tuple(magnitude.shape)} does not match the image size "
                f"{height}x{width} in its metadata (expected (3, {height}, {width // 2 + 1})); "
                "fix the height/width metadata or re-estimate the spectrum."
            )
        check_engine_range(magnitude, height, width)
        color_space = metadata.setdefault("color_space", COLOR_SPACE)
        if color_space != COLOR_SPACE:
            raise SpectrumError(
                f"Spectrum color_space={color_space!r} is not supported; maco_hub optimizes in "
                f"{COLOR_SPACE!r} (maco_hub.spectra.color.decorrelate); re-estimate in that space."
            )
        sha = _tensor_sha256(magnitude)
        if metadata.setdefault("sha256", sha) != sha:
            raise SpectrumError(
                f"Spectrum metadata sha256={metadata['sha256']} does not match the tensor "
                f"(sha256={sha}); drop the 'sha256' key to recompute it, or re-download the file."
            )
        metadata.update(height=str(height), width=str(width), resolution=f"{height}x{width}")
        object.__setattr__(self, "magnitude", magnitude)
        object.__setattr__(self, "metadata", MappingProxyType(metadata))

    @property
    def height(self) -> int:
        """Height in pixels of the images this spectrum describes."""
        return int(self.metadata["height"])

    @property
    def width(self) -> int:
        """Width in pixels of the images this spectrum describes."""
        return int(self.metadata["width"])

    @property
    def sha256(self) -> str:
        """sha256 of the magnitude's float32 little-endian bytes (C order)."""
        return self.metadata["sha256"]

    def reference(self) -> dict:
        """``{"id", "name", "revision", "sha256"}`` naming this spectrum in a reproducibility record.

        ``id``: where it was loaded from (a Hub repo id, a path, ``"maco_hub/default"`` or
        ``"in-memory"``); ``name``: the file name inside a Hub repo (None otherwise); ``revision``:
        the resolved Hub commit (the maco_hub version for the default; None for files);
        ``sha256``: of the tensor as stored.

        For a resized spectrum the record names the file it was resized from (resizing is
        deterministic given the canvas size, which callers record themselves).
        """
        return {
            "id": self.metadata.get("source", "in-memory"),
            "name": self.metadata.get("filename"),
            "revision": self.metadata.get("revision"),
            "sha256": self.metadata.get("source_sha256", self.sha256),
        }

    def resized(self, height: int, width: int) -> Spectrum:
        """The same spectrum for an ``height x width`` canvas.

        The magnitude is treated as a function of normalized frequency (cycles per pixel): bin
        ``k`` of an ``N``-point axis sits at ``k / N`` (vertical bins past ``N / 2`` at
        ``k / N - 1``). Each target bin is bilinearly interpolated at its own frequency. Along
        the vertical axis this is the same as fftshifting (so the axis runs contiguously from
        -1/2 to 1/2), interpolating and unshifting, except that indices are taken modulo ``H``
        so the bins next to the Nyquist row interpolate across it (the axis is periodic).
        The horizontal (last) axis holds frequencies ``0 .. 1/2``; positions past its last bin
        (odd widths) use that bin.

        The DC term carries the image mean, not the spectral fall-off, so it is no
        interpolation node: for interpolating, the source DC is replaced by the mean of its
        (up to four) nearest bins, which keeps bins next to DC from inheriting it.

        Scale: every bin except DC is multiplied by ``sqrt(new_area / old_area)``, which keeps
        the per-pixel variance (Parseval) of a random-phase image unchanged. The DC term is
        copied unscaled (the engine standardizes each image, so the mean does not matter).
        The same size returns ``self``.
        """
        height, width = _check_size(height, "height"), _check_size(width, "width")
        if (height, width) == (self.height, self.width):
            return self
        source = self.magnitude.to(torch.float64).clone()
        dc = source[:, 0, 0].clone()
        source[:, 0, 0] = _neighbour_mean(source)
        rows = _interpolate_axis(
            source, torch.fft.fftfreq(height, dtype=torch.float64), self.height, dim=1, periodic=True
        )
        out = _interpolate_axis(
            rows, torch.fft.rfftfreq(width, dtype=torch.float64), self.width, dim=2, periodic=False
        )
        out = out * ((height * width) / (self.height * self.width)) ** 0.5
        out[:, 0, 0] = dc
        metadata = {k: v for k, v in self.metadata.items() if k not in ("sha256", "height", "width")}
        metadata.update(height=str(height), width=str(width))
        metadata.setdefault("resized_from", self.metadata["resolution"])
        metadata.setdefault("source_sha256", self.sha256)
        return Spectrum(out.to(torch.float32), metadata)

    def save(self, path: str | os.PathLike) -> Path:
        """Write a safetensors file (tensor ``magnitude`` + string metadata), atomically.

        The ``source``/``revision`` keys (where this object was loaded from) are not written.
        """
        from safetensors.torch import save

        metadata = {k: v for k, v in self.metadata.items() if k not in LOADED_FROM_KEYS}
        return atomic_write(path, save({TENSOR_NAME: self.magnitude}, metadata=metadata))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Spectrum:
        """Read and verify a file written by :meth:`save`; ``source`` in metadata = the path."""
        spectrum = _read_file(Path(path), fix="re-download or re-estimate it")
        return spectrum._with(source=str(path))

    def _with(self, **metadata: str) -> Spectrum:
        return Spectrum(self.magnitude, {**self.metadata, **metadata})


def check_spectrum_name(name: str) -> None:
    """ConfigError unless ``name`` is a ``.safetensors`` file name, or a relative path of such
    names joined by "/", that stays inside its folder or Hub repo.

    Each part starts with a letter, digit or "_" and holds only those and ``. + -`` (so no
    "..", no absolute or hidden paths, no spaces, backslashes, control characters or markup).
    """
    parts = name.split("/") if isinstance(name, str) else [""]
    if (
        not isinstance(name, str)
        or len(name) > _MAX_NAME
        or not name.endswith(".safetensors")
        or not all(_NAME_PART_RE.match(part) for part in parts)
    ):
        raise ConfigError(
            f"Spectrum file name {name!r} must be a relative .safetensors path inside the folder or "
            "repo, made of letters, digits and _ . + - (parts joined by '/', none starting with "
            "'.' or '-'), e.g. 'spectrum.safetensors' or 'spectra/imagenet.safetensors'."
        )


def _read_file(path: Path, *, fix: str) -> Spectrum:
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise SpectrumError(
            f"Spectrum file {str(path)!r} does not exist; check the path (and name= for a folder), or {fix}."
        )
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
            names = list(handle.keys())
            magnitude = handle.get_tensor(TENSOR_NAME) if TENSOR_NAME in names else None
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise SpectrumError(
            f"Spectrum file {str(path)!r} is not a readable safetensors file ({error}); "
            f"it is corrupted or truncated: {fix}."
        ) from error
    if magnitude is None:
        raise SpectrumError(
            f"Spectrum file {str(path)!r} has no {TENSOR_NAME!r} tensor (found {names}); "
            f"it is not a maco_hub spectrum: {fix}."
        )
    missing = [key for key in REQUIRED_KEYS if key not in metadata]
    if missing:
        raise SpectrumError(f"Spectrum file {str(path)!r} lacks the metadata keys {missing}; {fix}.")
    sha = _tensor_sha256(magnitude)
    if sha != metadata["sha256"]:
        raise SpectrumError(
            f"Spectrum file {str(path)!r} fails its checksum: metadata sha256 "
            f"{metadata['sha256']} but the tensor hashes to {sha}; the file is corrupted or was "
            f"edited: {fix}."
        )
    try:
        return Spectrum(magnitude, metadata)
    except SpectrumError as error:
        raise SpectrumError(f"Spectrum file {str(path)!r} is invalid: {error}") from error


def _int_key(metadata: dict, key: str, default: int) -> int:
    value = metadata.get(key, str(default))
    try:
        return int(value)
    except ValueError:
        raise SpectrumError(
            f"Spectrum metadata {key}={value!r} is not an integer; re-estimate the spectrum."
        ) from None


def _check_size(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"Spectrum {name}={value!r} must be a positive integer (pixels).")
    return value


def check_engine_range(magnitude: torch.Tensor, height: int, width: int) -> None:
    """SpectrumError unless the engine can make a ``height x width`` canvas from ``magnitude`` in
    float32 without overflow and without losing the image to rounding.

    The engine makes each canvas as ``x = irfft2(magnitude * e^{i phase}, norm="ortho")`` and
    standardizes it, ``(x - mean) / (std + eps)`` (:func:`maco_hub.param.phase_to_canvas`, eps
    1e-6), in float32 (CUDA also accumulates sums and the std in float32). Over the full
    Hermitian grid, ``E = sum(magnitude**2)``: by Parseval the canvas's squares sum to ``E``,
    and every sum the transform and the mean form is at most ``sqrt(3 H W E)``, far below ``E``
    once ``E`` nears float32's maximum, so ``E <= float32 max / 2**10`` rules out overflow.
    Below, the canvas's std from the non-DC bins, ``sqrt(E_ac / (3 H W))``, must be at least
    ``1000 * eps``, so eps lowers the contrast by less than 0.1 % (smaller magnitudes fade to
    flat grey, and under 1.2e-38 they turn subnormal). A channel's mean, ``|DC| / sqrt(H W)``,
    may be at most ``2**24 / 100`` times that std, so float32 rounding at the mean stays under
    1 % of the std (a larger DC leaves no detail). :meth:`Spectrum.resized` checks the canvas
    size it makes: a spectrum fine at one size can fail at another (the non-DC part of
    ``E`` grows as ``(H W)**2``).
    """
    dc, ac = _canvas_energy(magnitude, width)
    std = math.sqrt(ac / (3 * height * width))
    mean = float(magnitude[:, 0, 0].max()) / math.sqrt(height * width)
    size = f"a {height}x{width} canvas"
    if ac + dc > MAX_CANVAS_ENERGY:
        raise SpectrumError(
            f"Spectrum magnitudes are too large for float32: {size} made with them has a sum of "
            f"squares of {ac + dc:.3g}, above {MAX_CANVAS_ENERGY:.3g}, so float32 sums would "
            f"overflow (NaN images); divide the magnitude by "
            f"{math.sqrt((ac + dc) / MAX_CANVAS_ENERGY):.3g} or more, or re-estimate it."
        )
    if std < MIN_CANVAS_STD:
        raise SpectrumError(
            f"Spectrum magnitudes are too small for float32: {size} made with them has a std of "
            f"{std:.3g} before standardizing, below {MIN_CANVAS_STD:g}, so every image would fade "
            f"to flat grey; multiply the magnitude by {MIN_CANVAS_STD / max(std, 1e-300):.3g} or "
            "more, or re-estimate it."
        )
    if mean > MAX_MEAN_TO_STD * std:
        raise SpectrumError(
            f"Spectrum DC term {float(magnitude[:, 0, 0].max()):.3g} is too large for float32: "
            f"{size} made with it has a channel mean of {mean:.3g}, over {MAX_MEAN_TO_STD:.3g} "
            f"times its std {std:.3g}, so rounding would erase the image; lower the DC "
            "(magnitude[:, 0, 0]) or re-estimate the spectrum."
        )


def _canvas_energy(magnitude: torch.Tensor, width: int) -> tuple[float, float]:
    """Sums of squares over the full Hermitian grid of the DC bins and of all other bins,
    computed on ``magnitude / max`` so that no float32 square overflows or underflows."""
    peak = float(magnitude.max())
    squares = (magnitude / peak).square()
    dc = float(squares[:, 0, 0].sum()) * peak**2
    squares[:, 0, 0] = 0
    return dc, _hermitian_sum(squares, width) * peak**2


def _hermitian_sum(values: torch.Tensor, width: int) -> float:
    """Sum of ``values`` (rfft2 layout) over the full ``width``-column grid: every column but DC
    (and, for even widths, Nyquist) stands for two bins."""
    total = 2 * float(values.sum()) - float(values[..., 0].sum())
    if width % 2 == 0:
        total -= float(values[..., -1].sum())
    return total


def _neighbour_mean(magnitude: torch.Tensor) -> torch.Tensor:
    """Per channel, the mean of the bins next to DC: vertical +-1 and horizontal +1."""
    rows = sorted({1 % magnitude.shape[1], -1 % magnitude.shape[1]} - {0})
    bins = [magnitude[:, r, 0] for r in rows]
    if magnitude.shape[2] > 1:
        bins.append(magnitude[:, 0, 1])
    return torch.stack(bins).mean(0) if bins else magnitude[:, 0, 0]


def _interpolate_axis(
    values: torch.Tensor, freqs: torch.Tensor, size: int, *, dim: int, periodic: bool
) -> torch.Tensor:
    """Bilinear samples of ``values`` along ``dim`` at frequencies ``freqs`` (cycles/pixel).

    Bin ``k`` of the source axis (image size ``size``) sits at frequency ``k / size``.
    """
    position = freqs * size
    low = torch.floor(position)
    frac = position - low
    low = low.long()
    if periodic:
        low, high = low % values.shape[dim], (low + 1) % values.shape[dim]
    else:
        last = values.shape[dim] - 1
        low, high = low.clamp(0, last), (low + 1).clamp(0, last)
    shape = [1] * values.ndim
    shape[dim] = -1
    frac = frac.view(shape)
    return values.index_select(dim, low) * (1 - frac) + values.index_select(dim, high) * frac
