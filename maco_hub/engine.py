"""The batched MACO optimizer: B images, one objective each, one forward/backward per step."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from . import schedules
from .errors import ConfigError
from .param import FourierPhaseImage
from .preprocessing import Preprocessing
from .transforms import add_noise, crop_and_resize, crop_boxes

if TYPE_CHECKING:
    from .spectra import Spectrum

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``score_fn(pixel_values (N, 3, h, w), image_index (N,)) -> scores (N,)`` to maximize."""

_PRECISIONS = ("fp32", "bf16")
# On the CPU, small model calls are faster per crop (EfficientNet-Lite0, 2 cores: 4 crops per call
# 0.16 s per image-step, 48 crops per call 0.34-0.37 s; scripts/benchmark.py --crops-per-forward).
_CPU_CROPS_PER_FORWARD = 4


@dataclass(frozen=True)
class EngineConfig:
    """Optimization settings. Defaults and their reasons are in the README ("Engine defaults")."""

    steps: int = 256  # optimization steps (paper and Xplique: 256; Horama: 1000)
    learning_rate: float = 1.0  # NAdam step size on the phase (all reference implementations)
    canvas: int = 512  # side of the square canvas in pixels (Xplique 512; Horama 1280)
    crops: int = 6  # random crops per image and step (Horama 6; Xplique 32)
    crop_scale: schedules.Schedule = field(default_factory=schedules.Alternating)  # crop side / canvas
    crop_centre_std: float = 0.15  # crop centres 0.5 + N(0, std) of the canvas (Horama)
    noise: schedules.Schedule = 0.05  # std of gaussian noise (plus uniform of the same width), [0, 1] scale
    crops_per_forward: int | None = None  # crops per model call; None: all on CUDA, 4 on the CPU
    precision: str = "fp32"  # "fp32" or "bf16" (autocast around the model)

    def __post_init__(self) -> None:
        _check(self.steps >= 1, "steps", self.steps, "use 1 or more steps")
        _check(self.learning_rate > 0, "learning_rate", self.learning_rate, "use a positive value")
        _check(self.canvas >= 16, "canvas", self.canvas, "use a canvas of 16 px or more")
        _check(self.crops >= 1, "crops", self.crops, "use 1 or more crops per step")
        _check(self.crop_centre_std >= 0, "crop_centre_std", self.crop_centre_std, "use >= 0")
        _check(self.crops_per_forward is None or self.crops_per_forward >= 1, "crops_per_forward",
               self.crops_per_forward, "use None or a positive number")
        _check(self.precision in _PRECISIONS, "precision", self.precision, f"use one of {_PRECISIONS}")
        if not callable(self.crop_scale):
            _check_crop_range(self.crop_scale)

    def to_record(self) -> dict[str, Any]:
        """A JSON-able record that :meth:`from_record` turns back into an equal config."""
        record = dataclasses.asdict(self)
        record["crop_scale"] = schedules.to_record(self.crop_scale)
        record["noise"] = schedules.to_record(self.noise)
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> EngineConfig:
        values = dict(record)
        values["crop_scale"] = schedules.from_record(values["crop_scale"])
        values["noise"] = schedules.from_record(values["noise"])
        return cls(**values)


@dataclass(frozen=True)
class EngineResult:
    """What one batch of optimization produced (tensors on the CPU)."""

    images: torch.Tensor  # (B, 3, H, W) RGB in [0, 1]
    attribution: torch.Tensor  # (B, H, W) sum over steps of |d loss / d image|, channels summed
    scores: torch.Tensor  # (B,) objective on the whole canvas resized to the model input, no noise
    history: torch.Tensor  # (steps, B) mean objective over each step's crops


def optimize(
    score_fn: ScoreFn,
    preprocessing: Preprocessing,
    *,
    seeds: Sequence[int],
    config: EngineConfig | None = None,
    spectrum: Spectrum | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> EngineResult:
    """Optimize ``len(seeds)`` images with MACO; image ``b`` maximizes its rows of ``score_fn``.

    ``score_fn`` receives crops already normalized with ``preprocessing`` and must return one score
    per row; row ``r`` belongs to image ``image_index[r]``. Images never interact, so a batch gives each
    image the result it would get alone with the same seed (up to float rounding).
    """
    config = config or EngineConfig()
    if not seeds:
        raise ConfigError("seeds is empty: pass one seed per image, e.g. seeds=[0, 1, 2]")
    device = resolve_device(device)
    if spectrum is None:
        from .spectra import load_spectrum

        spectrum = load_spectrum()
    side = config.canvas
    magnitude = spectrum.resized(side, side).magnitude
    image = FourierPhaseImage(magnitude, (side, side), seeds).to(device)
    optimizer = torch.optim.NAdam(image.parameters(), lr=config.learning_rate)
    crop_generators = [torch.Generator().manual_seed(int(s) + 1) for s in seeds]
    noise_generators = [torch.Generator(device=device).manual_seed(int(s) + 2) for s in seeds]
    batch, crops = len(seeds), config.crops
    image_index = torch.arange(batch, device=device).repeat_interleave(crops)
    attribution = torch.zeros(batch, side, side, device=device)
    history = torch.zeros(config.steps, batch)

    for step in _steps(config.steps, progress):
        side_range = schedules.value_at(config.crop_scale, step, config.steps)
        noise_std = float(schedules.value_at(config.noise, step, config.steps))
        _check_crop_range(side_range)
        boxes = [crop_boxes(g, crops, (side, side), side_range, config.crop_centre_std)
                 for g in crop_generators]
        optimizer.zero_grad(set_to_none=True)
        rgb = image()
        rgb.retain_grad()
        views = crop_and_resize(rgb, boxes, preprocessing.size)
        views = torch.cat([add_noise(views[b * crops:(b + 1) * crops], noise_std, g)
                           for b, g in enumerate(noise_generators)])
        pixels = preprocessing.normalize(views)
        scores, grad = _scores_and_gradient(score_fn, pixels, image_index, crops, config, device)
        pixels.backward(grad)
        optimizer.step()
        attribution += rgb.grad.abs().sum(dim=1)
        history[step] = scores.view(batch, crops).mean(dim=1).cpu()

    with torch.no_grad():
        final = image()
        whole = torch.nn.functional.interpolate(final, size=preprocessing.size, mode="bilinear",
                                                antialias=True, align_corners=False)
        with _autocast(config, device):
            final_scores = score_fn(preprocessing.normalize(whole), torch.arange(batch, device=device))
    return EngineResult(
        images=final.detach().float().cpu(),
        attribution=attribution.cpu(),
        scores=final_scores.detach().float().cpu(),
        history=history,
    )


def _scores_and_gradient(
    score_fn: ScoreFn, pixels: torch.Tensor, image_index: torch.Tensor, crops: int,
    config: EngineConfig, device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores of all rows and d(loss)/d(pixels), with loss = -Σ_images mean_crops(score).

    The model runs on detached micro-batches so the canvas graph is backpropagated only once.
    """
    chunk = config.crops_per_forward or (len(pixels) if device.type == "cuda" else _CPU_CROPS_PER_FORWARD)
    scores, grads = [], []
    for start in range(0, len(pixels), chunk):
        rows = pixels[start:start + chunk].detach().requires_grad_(True)
        with _autocast(config, device):
            row_scores = score_fn(rows, image_index[start:start + chunk]).float()
        if row_scores.shape != (len(rows),):
            raise ValueError(f"score_fn returned shape {tuple(row_scores.shape)}; expected "
                             f"({len(rows)},), one score per row")
        (-row_scores.sum() / crops).backward()
        scores.append(row_scores.detach())
        grads.append(rows.grad)
    return torch.cat(scores), torch.cat(grads)


def _autocast(config: EngineConfig, device: torch.device) -> contextlib.AbstractContextManager:
    if config.precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _steps(total: int, progress: bool):
    if not progress:
        return range(total)
    from tqdm.auto import tqdm

    return tqdm(range(total), desc="MACO", unit="step", leave=False)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``device`` as a torch.device; None picks CUDA when available, else the CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _check(ok: bool, name: str, value: Any, fix: str) -> None:
    if not ok:
        raise ConfigError(f"{name}={value!r} is invalid: {fix}.")


def _check_crop_range(value: Any) -> None:
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"crop_scale={value!r} is invalid: use a (low, high) pair of canvas "
                          "fractions, e.g. (0.25, 0.3), or a schedule") from None
    _check(0 < low <= high <= 1, "crop_scale", value, "use 0 < low <= high <= 1")
