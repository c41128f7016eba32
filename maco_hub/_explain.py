"""``explain()``: from a model and what to look at, to a gallery of MACO visualizations."""

from __future__ import annotations

import logging
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ._version import __version__
from .engine import EngineConfig, EngineResult, optimize, resolve_device
from .errors import ConfigError
from .gallery import Gallery, Visualization, attribution_to_alpha, to_pil_image

if TYPE_CHECKING:
    from .models import LoadedModel
    from .objectives import Objective
    from .spectra import Spectrum

logger = logging.getLogger(__name__)


def explain(
    model: Any,
    *,
    classes: Sequence[int | str] | None = None,
    layer: str | None = None,
    channels: Sequence[int] | None = None,
    objectives: Sequence[Objective] | None = None,
    steps: int | None = None,
    batch_size: int = 8,
    canvas: int | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    spectrum: Spectrum | str | Path | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
    config: EngineConfig | None = None,
    progress: bool = True,
) -> Gallery:
    """Visualize what a vision model's classes, channels or other objectives respond to.

    ``model`` is a Hub repo id, a local folder, or a loaded :class:`~maco_hub.models.LoadedModel`.
    Give ``classes`` (indices or names), and/or ``layer`` with ``channels``, or a list of
    ``objectives``. Image ``i`` uses seed ``seed + i``; ``batch_size`` images are optimized at once.
    ``steps`` and ``canvas`` override the matching fields of ``config`` (default
    :class:`EngineConfig`).

    >>> gallery = maco_hub.explain("google/vit-base-patch16-224", classes=["tabby cat", 285])
    >>> gallery[0].image  # PIL image; gallery[0].alpha is its attribution map
    """
    from .models import LoadedModel, load_model
    from .objectives import scoring

    wanted = _objectives_from_arguments(classes, layer, channels, objectives)
    if batch_size < 1:
        raise ConfigError(f"batch_size={batch_size!r} is invalid: use 1 or more images per batch.")
    config = _engine_config(config, steps=steps, canvas=canvas)
    device = resolve_device(device)
    loaded = model if isinstance(model, LoadedModel) else load_model(
        model, revision=revision, trust_remote_code=trust_remote_code, device=device)
    resolved = [objective.validate(loaded) for objective in wanted]
    spectrum = _spectrum(spectrum)

    items: list[Visualization] = []
    for start in _batches(len(resolved), batch_size, progress):
        chunk = resolved[start:start + batch_size]
        seeds = [seed + start + i for i in range(len(chunk))]
        with scoring(loaded, chunk) as score_fn:
            result = optimize(score_fn, loaded.preprocessing, seeds=seeds, config=config,
                              spectrum=spectrum, device=device, progress=progress)
        items.extend(_visualizations(result, chunk, seeds, loaded, spectrum, config, device))
    return Gallery(tuple(items))


def _objectives_from_arguments(classes, layer, channels, objectives) -> list:
    from . import objectives as obj

    if objectives is not None and (classes is not None or channels is not None or layer is not None):
        raise ConfigError("Give either objectives=[...] or classes=/layer=+channels=, not both; "
                          "add class objectives to the list with maco_hub.objectives.ClassLogit.")
    if objectives is not None:
        wanted = list(objectives)
    else:
        if channels is not None and layer is None:
            raise ConfigError(f"channels={list(channels)!r} needs layer=...; list layers with "
                              "maco_hub.layers(model) or `maco-hub layers MODEL`.")
        if layer is not None and channels is None:
            raise ConfigError(f"layer={layer!r} needs channels=[...] (unit indices to visualize).")
        wanted = [obj.ClassLogit(c) for c in classes or ()]
        wanted += [obj.Channel(layer, int(c)) for c in channels or ()]
    if not wanted:
        raise ConfigError("Nothing to visualize: pass classes=[...], layer= with channels=[...], "
                          "or objectives=[...].")
    return wanted


def _engine_config(config: EngineConfig | None, *, steps: int | None, canvas: int | None) -> EngineConfig:
    import dataclasses

    config = config or EngineConfig()
    overrides = {k: v for k, v in {"steps": steps, "canvas": canvas}.items() if v is not None}
    return dataclasses.replace(config, **overrides) if overrides else config


def _spectrum(spectrum: Any) -> Spectrum:
    from .spectra import Spectrum, load_spectrum

    return spectrum if isinstance(spectrum, Spectrum) else load_spectrum(spectrum)


def _visualizations(result: EngineResult, objectives: Sequence[Objective], seeds: Sequence[int],
                    loaded: LoadedModel, spectrum: Spectrum, config: EngineConfig,
                    device: torch.device) -> list[Visualization]:
    items = []
    for b, (objective, seed) in enumerate(zip(objectives, seeds, strict=True)):
        record = {
            "model_id": loaded.model_id,
            "model_revision": loaded.revision,
            "preprocessing": loaded.preprocessing.to_dict(),
            "objective": objective.description,
            "spectrum": spectrum.reference(),
            "seed": seed,
            "batch_seeds": list(seeds),
            "config": config.to_record(),
            "device": device.type,
            "maco_hub_version": __version__,
            "torch_version": torch.__version__,
            "python_version": platform.python_version(),
        }
        items.append(Visualization(
            image=to_pil_image(result.images[b]),
            alpha=attribution_to_alpha(result.attribution[b]),
            score=float(result.scores[b]),
            objective=objective.description,
            kind=objective.kind,
            layer=objective.layer,
            unit=objective.unit,
            class_id=objective.class_id,
            label=objective.label,
            record=record,
        ))
    return items


def _batches(total: int, batch_size: int, progress: bool):
    starts = range(0, total, batch_size)
    if not progress or len(starts) < 2:
        return starts
    from tqdm.auto import tqdm

    return tqdm(starts, desc="batches", unit="batch")

