"""The batched MACO optimizer: B images, one objective each, one forward/backward per step."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import torch

from ..errors import ConfigError
from ..models.preprocessing import Preprocessing
from . import schedules
from .devices import available_memory, check_memory, crops_per_call, resolve_device
from .param import FourierPhaseImage
from .threads import check_threads, intra_op_threads
from .transforms import add_noise, crop_and_resize, crop_plan, level_weights, levels_needed, resample_crops

if TYPE_CHECKING:
    from ..spectra.spectrum import Spectrum

__all__ = ["SHORT_RUN_CROPS", "EngineConfig", "EngineResult", "ScoreFn", "optimize", "resolve_device"]

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``score_fn(pixel_values (N, 3, h, w), image_index (N,)) -> scores (N,)`` to maximize."""

_PRECISIONS = ("fp32", "bf16")
_RESAMPLERS = ("batched", "per_crop")
# On the CPU, small model calls are faster per crop (EfficientNet-Lite0, 2 cores: 4 crops per call
# 0.16 s per image-step, 48 crops per call 0.34-0.37 s; scripts/benchmark.py --crops-per-forward).
_CPU_CROPS_PER_FORWARD = 4
# Fields added after rows were first written: recorded only when set, so older rows keep their keys.
_OPTIONAL_FIELDS = {"threads": None, "compile": False, "resample": None}


@dataclass(frozen=True)
class EngineConfig:
    """Optimization settings. Defaults and their reasons are in the README ("Engine defaults")."""

    steps: int = 256  # optimization steps (paper and Xplique: 256; Horama: 1000)
    learning_rate: float = 1.0  # NAdam step size on the phase (all reference implementations)
    canvas: int = 512  # side of the square canvas in pixels (Xplique 512; Horama 1280)
    crops: int = 6  # random crops per image and step (Horama 6; Xplique 32)
    # crop side / canvas: 25–30 % on two steps, 60–100 % on the third (scripts/benchmark_quality.py)
    crop_scale: schedules.Schedule = field(default_factory=functools.partial(schedules.Alternating,
                                                                             small_steps=2))
    crop_centre_std: float = 0.30  # crop centres 0.5 + N(0, std) of the canvas (Horama: 0.15)
    noise: schedules.Schedule = 0.05  # std of gaussian noise (plus uniform of the same width), [0, 1] scale
    crops_per_forward: int | None = None  # crops per model call; None: what fits on CUDA, 4 on the CPU
    precision: str = "fp32"  # "fp32" or "bf16" (autocast around the model)
    threads: int | None = None  # CPU intra-op threads; None: from the idle CPUs (maco_hub.engine.threads)
    compile: bool = False  # torch.compile the score function (the model and the objective)
    resample: str | None = None  # "batched", "per_crop"; None: per_crop on the CPU, batched elsewhere

    def __post_init__(self) -> None:
        _check(self.steps >= 1, "steps", self.steps, "use 1 or more steps")
        _check(self.learning_rate > 0, "learning_rate", self.learning_rate, "use a positive value")
        _check(self.canvas >= 16, "canvas", self.canvas, "use a canvas of 16 px or more")
        _check(self.crops >= 1, "crops", self.crops, "use 1 or more crops per step")
        _check(self.crop_centre_std >= 0, "crop_centre_std", self.crop_centre_std, "use >= 0")
        _check(self.crops_per_forward is None or self.crops_per_forward >= 1, "crops_per_forward",
               self.crops_per_forward, "use None or a positive number")
        _check(self.precision in _PRECISIONS, "precision", self.precision, f"use one of {_PRECISIONS}")
        _check(self.resample is None or self.resample in _RESAMPLERS, "resample", self.resample,
               f"use None or one of {_RESAMPLERS}")
        _check(isinstance(self.compile, bool), "compile", self.compile, "use True or False")
        check_threads(self.threads)
        if not callable(self.crop_scale):
            _check_crop_range(self.crop_scale)
        if not callable(self.noise):
            _check_noise(self.noise)

    @property
    def reproducible(self) -> bool:
        """False when a schedule is a plain callable, which :meth:`from_record` cannot rebuild."""
        return all(schedules.is_reproducible(schedules.to_record(s)) for s in (self.crop_scale, self.noise))

    def to_record(self) -> dict[str, Any]:
        """A JSON-able record that :meth:`from_record` turns back into an equal config."""
        record = dataclasses.asdict(self)
        record["crop_scale"] = schedules.to_record(self.crop_scale)
        record["noise"] = schedules.to_record(self.noise)
        for name, default in _OPTIONAL_FIELDS.items():
            if record[name] == default:
                del record[name]
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> EngineConfig:
        """The config a :meth:`to_record` record describes; unknown fields are a ConfigError."""
        values = dict(record)
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(f"engine config record has unknown fields {unknown}; it was written by "
                              "another maco_hub version: upgrade maco_hub.")
        for name in ("crop_scale", "noise"):
            if name in values:
                values[name] = schedules.from_record(values[name])
        return cls(**values)


SHORT_RUN_CROPS = MappingProxyType({"crop_scale": schedules.Alternating(), "crop_centre_std": 0.15})
"""Crop settings for short runs (about 100 steps): small and large crops alternating 1:1, centred
(the defaults before the quality table), e.g. ``EngineConfig(steps=96, **SHORT_RUN_CROPS)``. The
default 2:1 schedule gives the large crops too few steps there (README, "Engine defaults")."""


@dataclass(frozen=True)
class EngineResult:
    """What one batch of optimization produced (tensors on the CPU)."""

    images: torch.Tensor  # (B, 3, H, W) RGB in [0, 1]
    attribution: torch.Tensor  # (B, H, W) sum over steps of |d loss / d image|, channels summed
    scores: torch.Tensor  # (B,) objective on the whole canvas resized to the model input, no noise
    history: torch.Tensor  # (steps, B) mean objective over each step's crops
    settings: dict[str, Any] = field(default_factory=dict)  # what auto settings resolved to (see optimize)


def optimize(
    score_fn: ScoreFn,
    preprocessing: Preprocessing,
    *,
    seeds: Sequence[int],
    config: EngineConfig | None = None,
    spectrum: Spectrum | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
    memory_checked: bool = False,
) -> EngineResult:
    """Optimize ``len(seeds)`` images with MACO; image ``b`` maximizes its rows of ``score_fn``.

    ``score_fn`` receives crops already normalized with ``preprocessing`` and must return one score
    per row; row ``r`` belongs to image ``image_index[r]``. Images never interact, so a batch gives each
    image the result it would get alone with the same seed (up to float rounding).

    ``result.settings`` says what the automatic settings resolved to: ``threads`` (CPU intra-op
    threads; None on other devices), ``resample`` and ``crops_per_forward``. The thread count
    changes the last bits of CPU results, so record it with them. ``memory_checked``: the caller
    already ran :func:`~maco_hub.engine.devices.check_memory` for at least this many images
    (``explain`` does, once, before its first batch).
    """
    config = config or EngineConfig()
    if not seeds:
        raise ConfigError("seeds is empty: pass one seed per image, e.g. seeds=[0, 1, 2]")
    device = resolve_device(device)
    if not memory_checked:
        check_memory(config.canvas, len(seeds), config.crops, preprocessing.size, device)
    ranges = [_check_crop_range(schedules.value_at(config.crop_scale, step, config.steps))
              for step in range(config.steps)]
    noise = [_check_noise(schedules.value_at(config.noise, step, config.steps))
             for step in range(config.steps)]
    if spectrum is None:
        from ..spectra.spectrum import load_spectrum

        spectrum = load_spectrum()
    on_cpu = device.type == "cpu"
    # on other devices torch's CPU threads barely matter: leave them as they are unless set
    threads = config.threads if on_cpu or config.threads is not None else torch.get_num_threads()
    with intra_op_threads(threads) as used:
        settings = {"threads": used if on_cpu else None,
                    "resample": config.resample or ("per_crop" if on_cpu else "batched")}
        return _run(score_fn, preprocessing, list(seeds), config, spectrum, device, ranges, noise,
                    settings, progress)


def _run(score_fn: ScoreFn, preprocessing: Preprocessing, seeds: list[int], config: EngineConfig,
         spectrum: Spectrum, device: torch.device, ranges: list[tuple[float, float]],
         noise: list[float], settings: dict[str, Any], progress: bool) -> EngineResult:
    side, size = config.canvas, preprocessing.size
    magnitude = spectrum.resized(side, side).magnitude
    image = FourierPhaseImage(magnitude, (side, side), seeds).to(device)
    optimizer = torch.optim.NAdam(image.parameters(), lr=config.learning_rate)
    batch, crops = len(seeds), config.crops
    # every crop box of the run, drawn up front from each image's own generator
    boxes = crop_plan([torch.Generator().manual_seed(int(s) + 1) for s in seeds], crops,
                      (side, side), ranges, config.crop_centre_std)
    noise_generators = [torch.Generator(device=device).manual_seed(int(s) + 2) for s in seeds]
    batched = settings["resample"] == "batched"
    if batched:
        levels = [levels_needed(boxes[step], size) for step in range(config.steps)]
        weights = level_weights(boxes, size, max(levels)).to(device, torch.float32)
        device_boxes = boxes.to(device)
    image_index = torch.arange(batch, device=device).repeat_interleave(crops)
    scorer = torch.compile(score_fn, dynamic=False) if config.compile else score_fn
    chunk = config.crops_per_forward or _crops_per_forward(score_fn, config, device, batch * crops, size)
    settings["crops_per_forward"] = chunk
    attribution = torch.zeros(batch, side, side, device=device)
    history = torch.zeros(config.steps, batch, device=device)  # stays on the device: no sync per step

    for step in _steps(config.steps, progress):
        optimizer.zero_grad(set_to_none=True)
        rgb = image()
        rgb.retain_grad()
        if batched:
            views = resample_crops(rgb, device_boxes[step], size, weights[step, ..., :levels[step]])
        else:
            views = crop_and_resize(rgb, boxes[step], size)
        if noise[step] > 0:
            views = torch.cat([add_noise(views[b * crops:(b + 1) * crops], noise[step], g)
                               for b, g in enumerate(noise_generators)])
        pixels = preprocessing.normalize(views)
        scores, grad = _scores_and_gradient(scorer, pixels, image_index, crops, chunk, config, device)
        pixels.backward(grad)
        optimizer.step()
        attribution += rgb.grad.abs().sum(dim=1)
        history[step] = scores.view(batch, crops).mean(dim=1)

    with torch.no_grad():
        final = image()
        whole = torch.nn.functional.interpolate(final, size=size, mode="bilinear",
                                                antialias=True, align_corners=False)
        with _autocast(config, device):
            final_scores = score_fn(preprocessing.normalize(whole), torch.arange(batch, device=device))
    return EngineResult(
        images=final.detach().float().cpu(),
        attribution=attribution.cpu(),
        scores=final_scores.detach().float().cpu(),
        history=history.cpu(),
        settings=settings,
    )


def _crops_per_forward(score_fn: ScoreFn, config: EngineConfig, device: torch.device, total: int,
                       size: tuple[int, int]) -> int:
    """Crops per model call: 4 on the CPU (measured fastest); on CUDA as many as free memory allows,
    from the measured peak of a two-crop forward+backward."""
    if device.type != "cuda":
        return min(total, _CPU_CROPS_PER_FORWARD) if device.type == "cpu" else total
    probe = torch.rand(2, 3, *size, device=device, requires_grad=True)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    with _autocast(config, device):
        score_fn(probe, torch.zeros(2, dtype=torch.long, device=device)).float().sum().backward()
    torch.cuda.synchronize(device)
    per_crop = (torch.cuda.max_memory_allocated(device) - before) // 2
    del probe
    return crops_per_call(available_memory(device) or 0, per_crop, total)


def _scores_and_gradient(
    score_fn: ScoreFn, pixels: torch.Tensor, image_index: torch.Tensor, crops: int, chunk: int,
    config: EngineConfig, device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores of all rows and d(loss)/d(pixels), with loss = -Σ_images mean_crops(score).

    The model runs on detached micro-batches so the canvas graph is backpropagated only once.
    """
    scores, grads = [], []
    for start in range(0, len(pixels), chunk):
        rows = pixels[start:start + chunk].detach().requires_grad_(True)
        with _autocast(config, device):
            row_scores = score_fn(rows, image_index[start:start + chunk]).float()
        if row_scores.shape != (len(rows),):
            raise ConfigError(f"score_fn returned shape {tuple(row_scores.shape)}; expected "
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


def _check(ok: bool, name: str, value: Any, fix: str) -> None:
    if not ok:
        raise ConfigError(f"{name}={value!r} is invalid: {fix}.")


def _check_crop_range(value: Any) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"crop_scale={value!r} is invalid: use a (low, high) pair of canvas "
                          "fractions, e.g. (0.25, 0.3), or a schedule") from None
    _check(0 < low <= high <= 1, "crop_scale", value, "use 0 < low <= high <= 1")
    return low, high


def _check_noise(value: Any) -> float:
    try:
        std = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"noise={value!r} is invalid: use a number (std on [0, 1] pixels) or a "
                          "schedule returning one") from None
    _check(std >= 0 and std == std, "noise", value, "use a std >= 0")
    return std
