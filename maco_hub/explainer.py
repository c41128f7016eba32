"""``explain()``: from a model and what to look at, to a gallery of MACO visualizations."""

from __future__ import annotations

import dataclasses
import logging
import os
import platform
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from . import objectives as obj
from ._version import __version__
from .distributed import barrier, current_world, my_share, process_group, rank_device
from .engine.devices import available_devices, check_memory, use_channels_last
from .engine.loop import EngineConfig, EngineResult, optimize, resolve_device
from .engine.pictures import attribution_to_alpha, to_pil_image
from .errors import ConfigError, GalleryError
from .gallery.folder import GalleryFolder
from .gallery.keys import seed_for
from .gallery.record import BatchMember, RowRecord
from .gallery.rows import Gallery, Visualization
from .models.loader import LOCAL_REVISION_PREFIX, LoadedModel, load_model
from .models.placement import placement
from .objectives.defaults import default_objectives
from .objectives.records import objective_from_record, objective_to_record
from .objectives.scoring import scoring, validated
from .spectra.spectrum import DEFAULT_SPECTRUM_ID, Spectrum, load_spectrum

if TYPE_CHECKING:
    from .objectives.builtin import Objective

logger = logging.getLogger(__name__)

ALL_CLASSES = "all"  # classes="all": every class of the model's head, in label order


def explain(
    model: Any,
    *,
    classes: Sequence[int | str] | str | None = None,
    layer: str | None = None,
    channels: Sequence[int] | None = None,
    objectives: Sequence[Objective] | None = None,
    steps: int | None = None,
    batch_size: int = 8,
    canvas: int | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    spectrum: Spectrum | str | os.PathLike | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
    config: EngineConfig | None = None,
    out: str | os.PathLike | None = None,
    progress: bool = True,
    threads: int | None = None,
    compile: bool | None = None,
) -> Gallery:
    """Visualize what a vision model's classes, channels or other objectives respond to.

    ``model`` is a Hub repo id, a local folder, or a loaded :class:`~maco_hub.models.loader.LoadedModel`.
    Give ``classes`` (indices or names, or ``"all"`` for every class of the head in label order),
    and/or ``layer`` with ``channels``, or a list of ``objectives``; with none of them, the model's
    documented defaults (:mod:`maco_hub.objectives.defaults`) are visualized and logged. Each
    objective's seed derives from ``seed`` and the objective itself (not its position), and
    ``batch_size`` images are optimized at once. ``steps``, ``canvas``, ``threads`` (CPU threads;
    None: from the idle CPUs) and ``compile`` override the matching fields of ``config`` (default
    :class:`EngineConfig`).

    A passed :class:`~maco_hub.models.loader.LoadedModel` is moved to ``device`` (default: where it is).

    With ``out``, every finished batch is added to the gallery folder ``out`` at once (atomically,
    under the folder's lock); rows already there are skipped, so rerunning after an interruption
    finishes the job, running with more objectives extends the gallery, and concurrent runs on one
    folder end with the union of their rows. The whole folder's gallery is returned. Under
    ``torchrun`` (``WORLD_SIZE`` > 1) ``out`` is required: each rank takes a share of the pending
    objectives, runs on its own GPU (``cuda:LOCAL_RANK``) or the CPU, and appends to ``out``; rank 0
    writes the card and the page once all ranks are done.

    >>> gallery = maco_hub.explain("google/vit-base", classes=["tabby cat", 285])  # doctest: +SKIP
    >>> gallery[0].image  # PIL image; gallery[0].alpha is its attribution map  # doctest: +SKIP
    """
    _check_choice(classes, layer, channels, objectives)
    if batch_size < 1:
        raise ConfigError(f"batch_size={batch_size!r} is invalid: use 1 or more images per batch.")
    config = _engine_config(config, steps=steps, canvas=canvas, threads=threads, compile=compile)
    world = current_world()
    if world.size > 1 and out is None:
        raise ConfigError(f"This is rank {world.rank} of a {world.size}-process torchrun job: pass "
                          "out=DIR (--out DIR), the gallery folder where the ranks meet.")
    if isinstance(model, LoadedModel):
        where = device if device is not None else placement(model.module)[0]
        device = rank_device(resolve_device(where), world)
        model.module.to(device)
        loaded = model
    else:
        device = rank_device(resolve_device(device), world)
        loaded = load_model(model, revision=revision, trust_remote_code=trust_remote_code, device=device)
    resolved = validated(loaded, _objectives(loaded, classes, layer, channels, objectives))
    check_memory(config.canvas, min(batch_size, len(resolved)), config.crops, loaded.preprocessing.size,
                 device)  # once, before any work (run_batch tells the engine)
    use_channels_last(loaded.module, device)
    spectrum = _spectrum(spectrum)
    plan = [(o, seed_for(seed, objective_to_record(o))) for o in resolved]
    if out is not None and not config.reproducible:
        logger.warning("A schedule of this run is a plain callable: its rows are keyed by what it "
                       "computes but cannot be regenerated from the gallery; use a schedule from "
                       "maco_hub.schedules to make them reproducible.")
    if out is None:
        return Gallery(tuple(_run_plan(loaded, plan, batch_size, spectrum, config, device, progress)))

    with process_group(world, device):
        folder = GalleryFolder.open(out)
        keys = [_record(loaded, o, s, (), spectrum, config, device).key for o, s in plan]
        done = folder.identity_keys()
        pending = [(item, key) for item, key in zip(plan, keys, strict=True) if key not in done]
        if len(plan) > len(pending):
            logger.info("%d of %d objectives are already in %s; running the other %d.",
                        len(plan) - len(pending), len(plan), out, len(pending))
        barrier(world)  # every rank has read the same pending list before anyone adds to it
        mine = my_share([item for item, _ in pending], [key for _, key in pending], world)
        if world.size > 1:
            logger.info("rank %d of %d: %d of the %d pending objectives, on %s", world.rank,
                        world.size, len(mine), len(pending), device)
        for batch_items in _run_plan(loaded, mine, batch_size, spectrum, config, device, progress,
                                     by_batch=True):
            folder.append(batch_items)
            if world.size == 1:
                folder.write_pages()
        barrier(world)  # every rank's rows are in before the pages describe the gallery
        if world.is_main and (world.size > 1 or not pending):
            folder.write_pages()
        barrier(world)
        return folder.read()


def _run_plan(loaded: LoadedModel, plan: Sequence[tuple[Objective, int]], batch_size: int,
              spectrum: Spectrum, config: EngineConfig, device: torch.device, progress: bool,
              *, by_batch: bool = False):
    """Optimize ``plan`` in batches of ``batch_size``; yield each visualization, or each batch's."""
    bar = _progress_bar(len(plan), progress)
    try:
        for start in range(0, len(plan), batch_size):
            batch = plan[start:start + batch_size]
            items = run_batch(loaded, batch, spectrum=spectrum, config=config, device=device,
                              progress=progress, memory_checked=True)
            if bar is not None:
                bar.update(len(batch))
            if by_batch:
                yield items
            else:
                yield from items
    finally:
        if bar is not None:
            bar.close()


def run_batch(loaded: LoadedModel, batch: Sequence[tuple[Objective, int]], *, spectrum: Spectrum,
              config: EngineConfig, device: torch.device, progress: bool = False,
              memory_checked: bool = False) -> list[Visualization]:
    """Optimize one batch of ``(objective, seed)`` pairs together (objectives from :func:`validated`;
    ``memory_checked``: the caller checked that the batch fits, see :func:`~maco_hub.engine.optimize`)."""

    objectives = [objective for objective, _ in batch]
    seeds = [seed for _, seed in batch]
    with scoring(loaded, objectives, checked=True) as score_fn:
        result = optimize(score_fn, loaded.preprocessing, seeds=seeds, config=config,
                          spectrum=spectrum, device=device, progress=progress,
                          memory_checked=memory_checked)
    return _visualizations(result, batch, loaded, spectrum, config, device)


def _check_choice(classes, layer, channels, objectives) -> None:
    """Refuse combinations of what to visualize that cannot work (before any model is loaded)."""
    if objectives is not None and (classes is not None or channels is not None or layer is not None):
        raise ConfigError("Give either objectives=[...] or classes=/layer=+channels=, not both; "
                          "add class objectives to the list with maco_hub.objectives.ClassLogit.")
    if channels is not None and layer is None:
        raise ConfigError(f"channels={list(channels)!r} needs layer=...; list layers with "
                          "maco_hub.layers(model) or `maco-hub layers MODEL`.")
    if layer is not None and channels is None:
        raise ConfigError(f"layer={layer!r} needs channels=[...] (unit indices to visualize).")
    if isinstance(classes, str) and classes != ALL_CLASSES:
        raise ConfigError(f"classes={classes!r} is a single string: pass a list such as [{classes!r}], "
                          f"or {ALL_CLASSES!r} for every class of the head.")


def _objectives(loaded: LoadedModel, classes, layer, channels, objectives) -> list[Objective]:
    """What to visualize: the given objectives, classes ("all": every class in label order) and
    channels, or, when nothing was chosen, the model's documented defaults (logged)."""
    if objectives is not None:
        if not objectives:
            raise ConfigError("objectives=[] is empty: pass objectives to visualize, or leave it out "
                              "for the model's documented defaults.")
        return list(objectives)
    if classes == ALL_CLASSES:
        loaded.require_head()
        classes = range(loaded.num_classes)
        logger.info("Visualizing all %d classes of %s.", len(classes), loaded.model_id)
    wanted = [obj.ClassLogit(c) for c in classes or ()]
    wanted += [obj.Channel(layer, int(c)) for c in channels or ()]
    if not wanted:
        choice = default_objectives(loaded)
        logger.info("Nothing chosen to visualize; using the defaults: %s.", choice.description)
        wanted = list(choice.objectives)
    return wanted


def _engine_config(config: EngineConfig | None, **overrides: Any) -> EngineConfig:
    """``config`` (default :class:`EngineConfig`) with the explicitly given fields replaced."""
    config = config or EngineConfig()
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(config, **overrides) if overrides else config


def _spectrum(spectrum: Any) -> Spectrum:
    return spectrum if isinstance(spectrum, Spectrum) else load_spectrum(spectrum)


def _record(loaded: LoadedModel, objective: Objective, seed: int, batch: tuple[BatchMember, ...],
            spectrum: Spectrum, config: EngineConfig, device: torch.device) -> RowRecord:
    """Everything needed to make this row again (see :func:`maco_hub.regenerate`)."""
    return RowRecord(
        model_id=loaded.model_id,
        model_revision=loaded.revision,
        model_source=loaded.source,
        preprocessing=loaded.preprocessing.to_dict(),
        objective=objective.description,
        objective_record=objective_to_record(objective),
        seed=seed,
        batch=batch,
        spectrum=spectrum.reference(),
        config=config.to_record(),
        device=device.type,
        maco_hub_version=__version__,
        torch_version=torch.__version__,
        python_version=platform.python_version(),
    )


def _visualizations(result: EngineResult, batch: Sequence[tuple[Objective, int]],
                    loaded: LoadedModel, spectrum: Spectrum, config: EngineConfig,
                    device: torch.device) -> list[Visualization]:
    members = tuple(BatchMember(objective_to_record(o), s) for o, s in batch)  # shared by the batch
    items = []
    for b, (objective, seed) in enumerate(batch):
        record = _record(loaded, objective, seed, members, spectrum, config, device)
        record = record.with_settings(result.settings)  # e.g. CPU threads: not part of the key
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


def _progress_bar(total: int, progress: bool):
    """A bar over objectives (its rate gives the ETA) when there is more than one batch to show."""
    if not progress or total < 2:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="objectives", unit="image")


def regenerate(item: Visualization, *, model: Any = None, device: str | torch.device | None = None,
               trust_remote_code: bool = False) -> Visualization:
    """Make one gallery row again from its reproducibility record.

    The row's whole batch is re-run (batch members share forward passes, whose rounding depends on
    the batch), from the recorded model revision, spectrum, seeds and engine settings. On the same
    device type the pixels match the original up to float rounding; when the recorded device type
    is not available here, the default device is used and a message says so. ``model`` overrides
    the recorded model (e.g. a folder or a loaded model when the record names an in-memory module).
    """
    record = item.record
    if record is None or not record.batch:
        raise ConfigError(f"Row {item.objective!r} has no reproducibility record with its batch; it "
                          "cannot be regenerated.")
    try:
        batch_records = [(objective_from_record(dict(m.objective_record)), m.seed) for m in record.batch]
        position = [m.seed == record.seed and m.objective_record == record.objective_record
                    for m in record.batch].index(True)
        reference = dict(record.spectrum)
        config = EngineConfig.from_record(dict(record.config))
    except (KeyError, TypeError, ValueError) as error:
        if isinstance(error, ConfigError):
            raise
        raise GalleryError(f"The record of row {item.objective!r} is malformed ({type(error).__name__}: "
                           f"{error}); it cannot be regenerated.") from None
    device = resolve_device(device if device is not None else _available(record.device))
    if isinstance(model, LoadedModel):
        model.module.to(device)
        loaded = model
    else:
        recorded = record.model_revision
        local = isinstance(recorded, str) and recorded.startswith(LOCAL_REVISION_PREFIX)
        loaded = load_model(model or record.model_id, revision=None if model or local else recorded,
                            trust_remote_code=trust_remote_code, device=device)
        if local and loaded.revision != recorded:
            logger.warning("The row was made from a local folder with fingerprint %s; %s has %s, so "
                           "the result may differ.", recorded, loaded.model_id, loaded.revision)
    if reference.get("id") == DEFAULT_SPECTRUM_ID:
        spectrum = load_spectrum()
    else:
        spectrum = load_spectrum(reference.get("id"), name=reference.get("name"),
                                 revision=reference.get("revision"))
    if spectrum.reference()["sha256"] != reference.get("sha256"):
        raise ConfigError(f"Spectrum {reference.get('id')!r} now has sha256 {spectrum.sha256[:12]}…, but "
                          f"the row was made with {str(reference.get('sha256'))[:12]}…; pass the original "
                          "spectrum file.")
    checked = validated(loaded, [objective for objective, _ in batch_records])
    batch = list(zip(checked, [seed for _, seed in batch_records], strict=True))
    return run_batch(loaded, batch, spectrum=spectrum, config=config, device=device)[position]


def _available(recorded: Any) -> str | None:
    """The recorded device type if this machine has it, else None (the default) with a message."""
    if recorded is None:
        return None
    kind = str(recorded).split(":")[0]
    if any(name.split(":")[0] == kind for name in available_devices()):
        return kind
    logger.warning("The row was made on %r, which this machine does not have; regenerating on %s "
                   "(pixels may differ slightly from the original).", str(recorded), resolve_device(None))
    return None
