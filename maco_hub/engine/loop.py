"""The batched MACO optimizer: B images, one objective each, one forward/backward per step."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from .._numbers import check_seed
from ..errors import ConfigError, NonFiniteError
from ..models.preprocessing import Preprocessing
from . import schedules
from .config import MAX_CANVAS, MAX_STEPS, SHORT_RUN_CROPS, EngineConfig, check_crop_range, check_noise
from .devices import available_memory, check_memory, crops_per_call, resolve_device
from .param import FourierPhaseImage
from .threads import intra_op_threads
from .transforms import add_noise, crop_and_resize, crop_plan, level_weights, levels_needed, resample_crops

if TYPE_CHECKING:
    from ..spectra.spectrum import Spectrum

__all__ = [
    "MAX_CANVAS",
    "MAX_STEPS",
    "SHORT_RUN_CROPS",
    "EngineConfig",
    "EngineResult",
    "ScoreFn",
    "optimize",
    "resolve_device",
]

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``score_fn(pixel_values (N, 3, h, w), image_index (N,)) -> scores (N,)`` to maximize."""

# On the CPU, small model calls are faster per crop (EfficientNet-Lite0, 2 cores: 4 crops per call
# 0.16 s per image-step, 48 crops per call 0.34-0.37 s; scripts/benchmark.py --crops-per-forward).
_CPU_CROPS_PER_FORWARD = 4
# Crop boxes drawn at a time: memory stays flat however many steps a run has.
_PLAN_BOXES = 1 << 16


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
    names: Sequence[str] | None = None,
) -> EngineResult:
    """Optimize ``len(seeds)`` images with MACO; image ``b`` maximizes its rows of ``score_fn``.

    ``score_fn`` receives crops already normalized with ``preprocessing`` and must return one score
    per row; row ``r`` belongs to image ``image_index[r]``. Images never interact, so a batch gives each
    image the result it would get alone with the same seed (up to float rounding). Seeds are
    integers from 0 to :data:`maco_hub._numbers.MAX_SEED`; ``names`` (what each image optimizes) only
    words errors.

    ``result.settings`` says what the automatic settings resolved to: ``threads`` (CPU intra-op
    threads; None on other devices), ``resample`` and ``crops_per_forward``. The thread count
    changes the last bits of CPU results, so record it with them. ``memory_checked``: the caller
    already ran :func:`~maco_hub.engine.devices.check_memory` for at least this many images
    (``explain`` does, once, before its first batch).

    A score, image or attribution that ends NaN or infinite raises
    :class:`~maco_hub.errors.NonFiniteError` naming the image and the likely cause (checked once,
    after the last step, so the step loop never waits for the device).
    """
    config = config or EngineConfig()
    if not isinstance(config, EngineConfig):
        raise ConfigError(
            f"config={config!r} is not an EngineConfig; build one with maco_hub.EngineConfig(steps=..., ...)."
        )
    seeds = _checked_seeds(seeds)
    device = resolve_device(device)
    if not memory_checked:
        check_memory(config.canvas, len(seeds), config.crops, preprocessing.size, device)
    ranges = [
        check_crop_range(schedules.value_at(config.crop_scale, step, config.steps))
        for step in range(config.steps)
    ]
    noise = [
        check_noise(schedules.value_at(config.noise, step, config.steps)) for step in range(config.steps)
    ]
    if spectrum is None:
        from ..spectra.loading import load_spectrum

        spectrum = load_spectrum()
    on_cpu = device.type == "cpu"
    # on other devices torch's CPU threads barely matter: leave them as they are unless set
    threads = config.threads if on_cpu or config.threads is not None else torch.get_num_threads()
    with intra_op_threads(threads) as used:
        settings = {
            "threads": used if on_cpu else None,
            "resample": config.resample or ("per_crop" if on_cpu else "batched"),
        }
        result = _run(
            score_fn, preprocessing, seeds, config, spectrum, device, ranges, noise, settings, progress
        )
    _check_finite(result, seeds, names, config, spectrum)
    return result


def _checked_seeds(seeds: Any) -> list[int]:
    """``seeds`` as a list of ints, each checked by :func:`maco_hub._numbers.check_seed`."""
    values = None if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__") else list(seeds)
    if values is None:
        raise ConfigError(f"seeds={seeds!r} is not a list: pass one seed per image, e.g. seeds=[0, 1, 2]")
    if not values:
        raise ConfigError("seeds is empty: pass one seed per image, e.g. seeds=[0, 1, 2]")
    return [check_seed(seed, f"seeds[{i}]") for i, seed in enumerate(values)]


def _run(
    score_fn: ScoreFn,
    preprocessing: Preprocessing,
    seeds: list[int],
    config: EngineConfig,
    spectrum: Spectrum,
    device: torch.device,
    ranges: list[tuple[float, float]],
    noise: list[float],
    settings: dict[str, Any],
    progress: bool,
) -> EngineResult:
    side, size = config.canvas, preprocessing.size
    magnitude = spectrum.resized(side, side).magnitude
    image = FourierPhaseImage(
        magnitude, (side, side), seeds, gain=config.contrast, phase_std=config.phase_std
    )
    image = image.to(device)
    optimizer = torch.optim.NAdam(image.parameters(), lr=config.learning_rate)
    batch, crops = len(seeds), config.crops
    noise_generators = [torch.Generator(device=device).manual_seed(s + 2) for s in seeds]
    batched = settings["resample"] == "batched"
    plan = _crop_steps(seeds, config, ranges, size, device, batched)
    image_index = torch.arange(batch, device=device).repeat_interleave(crops)
    scorer = torch.compile(score_fn, dynamic=False) if config.compile else score_fn
    chunk = config.crops_per_forward or _crops_per_forward(score_fn, config, device, batch * crops, size)
    settings["crops_per_forward"] = chunk
    attribution = torch.zeros(batch, side, side, device=device)
    history = torch.zeros(config.steps, batch, device=device)  # stays on the device: no sync per step

    for step, (boxes, device_boxes, weights) in zip(_steps(config.steps, progress), plan, strict=True):
        optimizer.zero_grad(set_to_none=True)
        rgb = image()
        rgb.retain_grad()
        if batched:
            views = resample_crops(rgb, device_boxes, size, weights)
        else:
            views = crop_and_resize(rgb, boxes, size)
        if noise[step] > 0:
            views = torch.cat(
                [
                    add_noise(views[b * crops : (b + 1) * crops], noise[step], g)
                    for b, g in enumerate(noise_generators)
                ]
            )
        pixels = preprocessing.normalize(views)
        scores, grad = _scores_and_gradient(scorer, pixels, image_index, crops, chunk, config, device)
        pixels.backward(grad)
        optimizer.step()
        attribution += rgb.grad.abs().sum(dim=1)
        history[step] = scores.view(batch, crops).mean(dim=1)

    with torch.no_grad():
        final = image()
        whole = torch.nn.functional.interpolate(
            final, size=size, mode="bilinear", antialias=True, align_corners=False
        )
        with _autocast(config, device):
            final_scores = score_fn(preprocessing.normalize(whole), torch.arange(batch, device=device))
    return EngineResult(
        images=final.detach().float().cpu(),
        attribution=attribution.cpu(),
        scores=final_scores.detach().float().cpu(),
        history=history.cpu(),
        settings=settings,
    )


def _crop_steps(
    seeds: list[int],
    config: EngineConfig,
    ranges: list[tuple[float, float]],
    size: tuple[int, int],
    device: torch.device,
    batched: bool,
):
    """Each step's ``(boxes, device_boxes, level_weights)``; the last two only when ``batched``.

    Boxes are drawn a chunk of steps at a time (:data:`_PLAN_BOXES` boxes) from each image's own
    generator, so they are exactly those of drawing every box up front, in bounded memory. Chunks
    reach the device without making the host wait (pinned memory on CUDA).
    """
    side = config.canvas
    generators = [torch.Generator().manual_seed(s + 1) for s in seeds]
    steps_per_chunk = max(1, _PLAN_BOXES // (len(seeds) * config.crops))
    for start in range(0, config.steps, steps_per_chunk):
        boxes = crop_plan(
            generators,
            config.crops,
            (side, side),
            ranges[start : start + steps_per_chunk],
            config.crop_centre_std,
        )
        if not batched:
            yield from ((step_boxes, None, None) for step_boxes in boxes)
            continue
        levels = [levels_needed(step_boxes, size) for step_boxes in boxes]
        weights = _to_device(level_weights(boxes, size, max(levels)).to(torch.float32), device)
        device_boxes = _to_device(boxes, device)
        for step, count in enumerate(levels):
            yield boxes[step], device_boxes[step], weights[step, ..., :count]


def _to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def _check_finite(
    result: EngineResult,
    seeds: list[int],
    names: Sequence[str] | None,
    config: EngineConfig,
    spectrum: Spectrum,
) -> None:
    """Raise :class:`NonFiniteError` for the first image whose score, pixels or attribution is
    not finite: a NaN or infinity is never a result."""
    finite = (
        torch.isfinite(result.history).all(dim=0)
        & torch.isfinite(result.scores)
        & torch.isfinite(result.images).flatten(1).all(dim=1)
        & torch.isfinite(result.attribution).flatten(1).all(dim=1)
    )
    bad = (~finite).nonzero().flatten().tolist()
    if not bad:
        return
    b = bad[0]
    what = f"objective {names[b]!r}" if names is not None else f"image {b}"
    others = f" (and {len(bad) - 1} more of this batch)" if len(bad) > 1 else ""
    cause = _non_finite_cause(result.history[:, b], seeds[b], config, spectrum)
    raise NonFiniteError(
        f"{what} (seed {seeds[b]}){others} became NaN or infinite, so nothing of this "
        f"batch is kept. Likely cause: {cause}."
    )


def _non_finite_cause(history: torch.Tensor, seed: int, config: EngineConfig, spectrum: Spectrum) -> str:
    """The likely reason one image went non-finite (only worked out once it has)."""
    side = config.canvas
    start = FourierPhaseImage(
        spectrum.resized(side, side).magnitude,
        (side, side),
        [seed],
        gain=config.contrast,
        phase_std=config.phase_std,
    )
    with torch.no_grad():
        if not torch.isfinite(start()).all():
            return (
                "its starting image is already not finite, so the spectrum's magnitude overflows "
                "float32: use another spectrum (e.g. the shipped one, spectrum=None)"
            )
    broken = (~torch.isfinite(history)).nonzero().flatten().tolist()
    if broken and broken[0] == 0:
        return (
            f"its score was {history[0].item()} on the first step: the objective overflows float32 "
            "(a weight or a Direction vector too large, or a model whose outputs overflow)"
        )
    when = (
        f"its score became {history[broken[0]].item()} at step {broken[0] + 1} of {config.steps}"
        if broken
        else "its final image or score is not finite"
    )
    return (
        f"{when}: the optimization diverged; try a smaller learning_rate (now "
        f"{config.learning_rate}) or smaller objective weights"
    )


def _crops_per_forward(
    score_fn: ScoreFn, config: EngineConfig, device: torch.device, total: int, size: tuple[int, int]
) -> int:
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
    score_fn: ScoreFn,
    pixels: torch.Tensor,
    image_index: torch.Tensor,
    crops: int,
    chunk: int,
    config: EngineConfig,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores of all rows and d(loss)/d(pixels), with loss = -Σ_images mean_crops(score).

    The model runs on detached micro-batches so the canvas graph is backpropagated only once.
    """
    scores, grads = [], []
    for start in range(0, len(pixels), chunk):
        rows = pixels[start : start + chunk].detach().requires_grad_(True)
        with _autocast(config, device):
            row_scores = score_fn(rows, image_index[start : start + chunk]).float()
        if row_scores.shape != (len(rows),):
            raise ConfigError(
                f"score_fn returned shape {tuple(row_scores.shape)}; expected "
                f"({len(rows)},), one score per row"
            )
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
