"""``explain()``: from a model and what to look at, to a gallery of MACO visualizations (its rows
are made again by :func:`maco_hub.reproduction.regenerate`)."""

from __future__ import annotations

import dataclasses
import logging
import os
import platform
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from ._numbers import check_seed
from ._version import __version__
from .choices import checked_batch_size, requested, resolved_objectives, unique
from .distributed import barrier, current_world, my_share, process_group, rank_device
from .engine.devices import check_memory, memory_format, use_channels_last
from .engine.loop import EngineConfig, EngineResult, optimize, resolve_device
from .engine.pictures import attribution_to_alpha, to_pil_image
from .errors import ConfigError
from .gallery.folder import GalleryFolder
from .gallery.pages import PageWriter
from .gallery.record import BatchMember, RowRecord
from .gallery.rows import Gallery, Visualization
from .guidance import Guidance
from .models.loader import LoadedModel, load_model
from .models.placement import placement
from .objectives.records import objective_to_record
from .objectives.scoring import scoring, validated
from .spectra.loading import load_spectrum
from .spectra.spectrum import Spectrum

if TYPE_CHECKING:
    from .objectives.builtin import Objective

logger = logging.getLogger(__name__)
LARGE_RUN = 256  # objectives beyond which a run without out= is warned about


def explain(
    model: Any,
    *,
    classes: Sequence[int | str] | str | None = None,
    layer: str | None = None,
    channels: Sequence[int] | str | None = None,
    objectives: Sequence[Objective | str] | None = None,
    layers: Sequence[str] | None = None,
    texts: Sequence[str] | None = None,
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
    method: str | None = None,
    image: Any = None,
    image_layer: str | None = None,
    image_weight: float | None = None,
    variants: int = 1,
    diversity: float | None = None,
    diversity_layer: str | None = None,
) -> Gallery:
    """Visualize what a vision model's classes, channels or other objectives respond to.

    ``model`` is a Hub repo id, a local folder, or a loaded :class:`~maco_hub.models.loader.LoadedModel`.
    Give ``classes`` (indices or names, or ``"all"`` for every class of the head in label order),
    and/or ``layer`` with ``channels``, or a list of ``objectives`` (objects from
    :mod:`maco_hub.objectives`, or strings in the CLI's forms ``"LAYER:UNIT"``, ``"LAYER"``,
    ``"class:NAME"``, read with :func:`maco_hub.objectives.parse`); with none of them, the model's
    documented defaults (:mod:`maco_hub.objectives.defaults`) are visualized and logged. A list given
    empty is an error; an objective given twice (e.g. a class by index and by name) is visualized
    once, with a warning. Each objective's seed derives from ``seed`` (an integer from 0 to
    2**31 - 1) and the objective itself (not its position), and ``batch_size`` images are optimized
    at once. ``steps``, ``canvas``, ``threads`` (CPU threads; None: from the idle CPUs) and
    ``compile`` override the matching fields of ``config`` (default :class:`EngineConfig`). A batch
    whose scores or images become NaN or infinite raises :class:`~maco_hub.errors.NonFiniteError`
    and adds no row.

    Whole layers: ``channels="all"`` is every unit of the layer, in unit order; ``layers=[...]``
    (instead of ``layer``) applies ``channels`` to each layer, layer by layer. ``texts`` (prompts;
    CLIP and SigLIP checkpoints) adds one :class:`~maco_hub.objectives.Text` objective each.

    A passed :class:`~maco_hub.models.loader.LoadedModel` is moved to ``device`` (default: where it is).

    ``method`` (overrides ``config.method``): ``"maco"`` or ``"fourier"``, the classic full-spectrum
    baseline. ``image`` (a path, PIL image or array) accentuates: every image starts as that picture
    and the objective is raised while ``image_weight`` × its distance to the picture is kept small,
    in pixels (``image_layer=None``) or in the activations of ``image_layer``. ``variants=N`` makes
    N images per objective, optimized together with ``diversity`` × Lucid's Gram penalty between
    them (at ``diversity_layer``, default the objective's layer or the model's last block;
    ``diversity=0``: N independent seeds). README "Methods" has the defaults and what they cost.

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
    wanted = requested(classes, layer, channels, objectives, layers=layers, texts=texts)
    batch_size = checked_batch_size(batch_size)
    seed = check_seed(seed)
    config = _engine_config(
        config, steps=steps, canvas=canvas, threads=threads, compile=compile, method=method
    )
    guidance = Guidance.checked(
        image=image,
        image_layer=image_layer,
        image_weight=image_weight,
        variants=variants,
        diversity=diversity,
        diversity_layer=diversity_layer,
    )
    world = current_world()
    if world.size > 1 and out is None:
        raise ConfigError(
            f"This is rank {world.rank} of a {world.size}-process torchrun job: pass "
            "out=DIR (--out DIR), the gallery folder where the ranks meet."
        )
    if isinstance(model, LoadedModel):
        where = device if device is not None else placement(model.module)[0]
        device = rank_device(resolve_device(where), world)
        model.module.to(device)
        loaded = model
    else:
        device = rank_device(resolve_device(device), world)
        loaded = load_model(model, revision=revision, trust_remote_code=trust_remote_code, device=device)
    resolved = unique(validated(loaded, resolved_objectives(loaded, wanted, classes)))
    guidance = guidance.resolved(loaded, resolved)
    plan = guidance.plan(resolved, seed)
    batches = guidance.batches(plan, batch_size)
    check_memory(
        config.canvas, max(map(len, batches)), config.crops, loaded.preprocessing.size, device
    )  # once, before any work (run_batch tells the engine)
    use_channels_last(loaded.module, device)
    spectrum = as_spectrum(spectrum)
    _log_plan(len(plan), batch_size, out)
    if out is not None and not config.reproducible:
        logger.warning(
            "A schedule of this run is a plain callable: its rows are keyed by what it "
            "computes but cannot be regenerated from the gallery; use a schedule from "
            "maco_hub.schedules to make them reproducible."
        )
    if out is None:
        return Gallery(tuple(_run_plan(loaded, batches, spectrum, config, device, progress, guidance)))

    with process_group(world, device):
        folder = GalleryFolder.open(out)
        images = [*guidance.images, *(o.reference_image for o in resolved if o.reference_image is not None)]
        if images and world.is_main:
            folder.add_inputs(images)  # a rerun restores a missing or damaged one
        keys = [
            _record(loaded, o, s, (), spectrum, config, device, guidance.record_fields(batch, b, loaded)).key
            for batch in batches
            for b, (o, s) in enumerate(batch)
        ]
        done = folder.identity_keys()
        pending = [(item, key) for item, key in zip(plan, keys, strict=True) if key not in done]
        if len(plan) > len(pending):
            logger.info(
                "%d of %d objectives are already in %s; running the other %d.",
                len(plan) - len(pending),
                len(plan),
                out,
                len(pending),
            )
        barrier(world)  # every rank has read the same pending list before anyone adds to it
        groups = guidance.batches([item for item, _ in pending], 1)  # an objective's variants stay together
        firsts = [pending[sum(map(len, groups[:g]))][1] for g in range(len(groups))]
        mine = [item for group in my_share(groups, firsts, world) for item in group]
        mine_batches = guidance.batches(mine, batch_size)
        if world.size > 1:
            logger.info(
                "rank %d of %d: %d of the %d pending objectives, on %s",
                world.rank,
                world.size,
                len(mine),
                len(pending),
                device,
            )
        pages = PageWriter(folder)  # during a one-process run; at the end by rank 0
        for batch_items in _run_plan(
            loaded, mine_batches, spectrum, config, device, progress, guidance, by_batch=True
        ):
            folder.append(batch_items)
            if world.size == 1:
                pages.batch_done()
        barrier(world)  # every rank's rows are in before the pages describe the gallery
        if world.is_main:
            pages.finish()
        barrier(world)
        return folder.read()


def _run_plan(
    loaded: LoadedModel,
    batches: Sequence[Sequence[tuple[Objective, int]]],
    spectrum: Spectrum,
    config: EngineConfig,
    device: torch.device,
    progress: bool,
    guidance: Guidance,
    *,
    by_batch: bool = False,
):
    """Optimize ``batches`` one by one; yield each visualization, or each batch's."""
    bar = _progress_bar(sum(map(len, batches)), progress)
    try:
        for batch in batches:
            items = run_batch(
                loaded,
                batch,
                spectrum=spectrum,
                config=config,
                device=device,
                progress=progress,
                memory_checked=True,
                guidance=guidance,
            )
            if bar is not None:
                bar.update(len(batch))
            if by_batch:
                yield items
            else:
                yield from items
    finally:
        if bar is not None:
            bar.close()


def run_batch(
    loaded: LoadedModel,
    batch: Sequence[tuple[Objective, int]],
    *,
    spectrum: Spectrum,
    config: EngineConfig,
    device: torch.device,
    progress: bool = False,
    memory_checked: bool = False,
    guidance: Guidance | None = None,
) -> list[Visualization]:
    """Optimize one batch of ``(objective, seed)`` pairs together (objectives from :func:`validated`;
    ``memory_checked``: the caller checked that the batch fits, see :func:`~maco_hub.engine.optimize`;
    ``guidance``: a start image, variants, see :mod:`maco_hub.guidance`)."""
    guidance = guidance or Guidance()
    objectives = [objective for objective, _ in batch]
    seeds = [seed for _, seed in batch]
    trained, guides, penalties = guidance.batch_inputs(loaded, batch, config.canvas)
    also = frozenset().union(*(o.layers for o in objectives))
    with scoring(loaded, trained, checked=True, penalties=penalties, also=also) as score_fn:
        if trained != objectives or penalties:
            guides = dataclasses.replace(guides, final_score_fn=score_fn.plain(objectives))
        result = optimize(
            score_fn,
            loaded.preprocessing,
            seeds=seeds,
            config=config,
            spectrum=spectrum,
            device=device,
            progress=progress,
            memory_checked=memory_checked,
            names=[objective.description for objective in objectives],
            guides=guides,
        )
    return _visualizations(result, batch, loaded, spectrum, config, device, guidance)


def _engine_config(config: EngineConfig | None, **overrides: Any) -> EngineConfig:
    """``config`` (default :class:`EngineConfig`) with the explicitly given fields replaced."""
    if config is not None and not isinstance(config, EngineConfig):
        raise ConfigError(
            f"config={config!r} is not an EngineConfig; build one with maco_hub.EngineConfig(steps=..., ...)."
        )
    config = config or EngineConfig()
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(config, **overrides) if overrides else config


def as_spectrum(spectrum: Any) -> Spectrum:
    """``spectrum`` itself, or the one :func:`~maco_hub.spectra.loading.load_spectrum` finds for it."""
    return spectrum if isinstance(spectrum, Spectrum) else load_spectrum(spectrum)


def _record(
    loaded: LoadedModel,
    objective: Objective,
    seed: int,
    batch: tuple[BatchMember, ...],
    spectrum: Spectrum,
    config: EngineConfig,
    device: torch.device,
    fields: dict[str, Any] | None = None,
) -> RowRecord:
    """Everything needed to make this row again (see :func:`maco_hub.regenerate`); ``fields``:
    what :meth:`Guidance.record_fields` adds."""
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
        **(fields or {}),
    )


def _visualizations(
    result: EngineResult,
    batch: Sequence[tuple[Objective, int]],
    loaded: LoadedModel,
    spectrum: Spectrum,
    config: EngineConfig,
    device: torch.device,
    guidance: Guidance,
) -> list[Visualization]:
    members = tuple(BatchMember(objective_to_record(o), s) for o, s in batch)  # shared by the batch
    inputs = {image.sha256: image for image in guidance.images}
    inputs.update(
        {o.reference_image.sha256: o.reference_image for o, _ in batch if o.reference_image is not None}
    )
    items = []
    for b, (objective, seed) in enumerate(batch):
        fields = guidance.record_fields(batch, b, loaded)
        record = _record(loaded, objective, seed, members, spectrum, config, device, fields)
        # e.g. CPU threads, the weights' layout (regenerate uses it again): not part of the key
        record = record.with_settings({**result.settings, "memory_format": memory_format(loaded.module)})
        items.append(
            Visualization(
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
                inputs=inputs,
            )
        )
    return items


def _log_plan(count: int, batch_size: int, out: Any) -> None:
    """Say how a long run is cut (batches; in memory or resumable in ``out``)."""
    if count <= batch_size:
        return
    batches = -(-count // batch_size)
    logger.info("%d objectives in %d batches of up to %d images.", count, batches, batch_size)
    if out is None and count > LARGE_RUN:
        logger.warning(
            "%d images will be kept in memory and lost if the run stops; pass out=DIR (--out) to "
            "write each batch as it finishes and resume an interrupted run.",
            count,
        )


def _progress_bar(total: int, progress: bool):
    """A bar over objectives (its rate gives the ETA) when there is more than one batch to show."""
    if not progress or total < 2:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="objectives", unit="image")
