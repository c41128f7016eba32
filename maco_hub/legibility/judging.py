"""The judging behind :func:`maco_hub.legibility.evaluate`; the metrics are documented in
:mod:`maco_hub.legibility`."""

from __future__ import annotations

import itertools
import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .._numbers import MAX_RNG_SEED, check_int
from .._version import __version__
from ..errors import ClassNotFoundError, ConfigError
from ..gallery.evaluation import (
    FEATURE_METRICS,
    ROW_FIELDS,
    TRANSFER_METRICS,
    Evaluation,
    artifact_column,
    column_name,
)
from ..gallery.rows import Gallery, Visualization
from ..gallery.storage import load_gallery, save_evaluation
from ..models.loader import LoadedModel, load_model
from ..models.placement import placement
from .artifacts import MEASURES, artifact_measures
from .features import frechet_distance, logits_and_features, plausibility
from .reference import ReferenceSet, check_per_class, load_reference

logger = logging.getLogger(__name__)

CROP_SIDE = (0.25, 0.30)  # crop side as a fraction of the canvas side
MAX_CROPS = 1024  # crops per row: each is one more judge forward per row and judge
VIEWS_PER_CALL = 32  # views of a row one judge call takes (the whole canvas + 16 crops by default)


def evaluate(
    gallery: Gallery | Sequence[Visualization] | str | Path,
    judges: Sequence[str | Path | LoadedModel] | Mapping[str, str | Path | LoadedModel],
    *,
    reference: str | Path | Mapping[str, Sequence[Any]] | ReferenceSet | None = None,
    crops: int = 16,
    seed: int = 0,
    reference_per_class: int = 16,
    reference_split: str | None = None,
    device: str | torch.device | None = None,
    out: str | Path | None = None,
) -> Evaluation:
    """Judge every class row of ``gallery`` with each of ``judges`` (see the module docstring).

    ``gallery``: a Gallery, a list of Visualizations, a gallery folder or a Hub dataset repo id.
    ``judges``: Hub ids, local folders or loaded classifiers; a mapping names them (names become
    column names), otherwise the name is the last part of the model id (``efficientnet_lite1``).
    ``reference``: labelled real images for plausibility and Fréchet distance (None: skip them).
    ``crops`` (0 to 1024), ``seed`` (0 to 2**32 - 1) and ``reference_per_class`` (1 to 1000) are
    integers; anything else is one :class:`~maco_hub.errors.ConfigError` before any work.
    ``out``: a gallery folder holding these rows (usually the one evaluated) to store the results
    in, as :func:`maco_hub.save_evaluation` does: columns ``eval_<judge>_<field>`` in its shards,
    ``evaluation.json``, and a "Legibility" section in its card and page. Pushing the folder
    (``push_gallery(load_gallery(out), repo)``) then shows them on the Hub. Every row, judged or
    not, also gets the artifact measures of its picture (:mod:`maco_hub.legibility.artifacts`;
    columns ``eval_artifact_<measure>``, None under 64 px a side).

    Summary keys per judge: ``judge``, ``model_id``, ``model_revision``, ``rows`` (class rows),
    ``judged``, ``not_judged`` ({status: count}), the mean of every row field over judged rows,
    ``frechet_pooled``, ``reference_classes`` and ``reference_images``.

    >>> result = evaluate("out/gallery", ["google/vit-base-patch16-224"])  # doctest: +SKIP
    >>> print(result.to_markdown())  # doctest: +SKIP
    """
    crops, seed, reference_per_class = check_options(crops, seed, reference_per_class)
    keyed = _items(gallery)
    items = [item for _, item in keyed]
    named = _load_judges(judges, device)
    boxes = crop_fractions(crops, seed)
    targets = {name: [_target(judge, item) for item in items] for name, judge in named}
    references = None
    if reference is not None:
        wanted = {(name, t[0]) for name, _ in named for t in targets[name] if t[0] is not None}
        judge_of = dict(named)

        def keep(label: str) -> bool:
            return any((n, _class_by_name(judge_of[n], label)) in wanted for n in judge_of)

        references = load_reference(
            reference, keep=keep, per_class=reference_per_class, split=reference_split
        )
        if not references.images:
            logger.warning(
                "The reference %s has no image of the gallery's classes; plausibility and "
                "Fréchet distance are left empty.",
                references.source,
            )
    rows: dict[str, dict[str, Any]] = {key: {} for key, _ in keyed}
    summary = []
    for name, judge in named:
        ref_features = _reference_features(judge, references) if references else {}
        results = _judge_rows(judge, items, targets[name], boxes, ref_features)
        for key, values in zip(rows, results, strict=True):
            rows[key].update({column_name(name, f): values.get(f) for f in ROW_FIELDS})
        summary.append(_summarize(name, judge, results, targets[name], ref_features))
    for key, item in keyed:
        rows[key].update(_artifact_columns(item.image))
    settings = {
        "crops": crops,
        "crop_side": list(CROP_SIDE),
        "crop_position": "uniform",
        "seed": seed,
        "reference": references.describe() if references else None,
        "reference_details": dict(references.details) if references else None,
        "feature_space": "penultimate features (input of the classifier head)",
        "judges": {name: {"model_id": j.model_id, "revision": j.revision} for name, j in named},
        "maco_hub_version": __version__,
    }
    evaluation = Evaluation(rows, tuple(summary), settings, MEASURES)
    if out is not None:
        save_evaluation(out, evaluation)
    return evaluation


def _artifact_columns(image: Image.Image) -> dict[str, float | None]:
    """The artifact measures of one picture as its columns (None for a picture they do not take)."""
    try:
        measures = artifact_measures(image)
    except ConfigError as error:  # under 64 px a side, or over 4096 x 4096 px
        logger.info("Artifact measures left empty for a picture of %dx%d px: %s", *image.size, error)
        measures = {}
    return {artifact_column(m): measures.get(m) for m in MEASURES}


def check_options(crops: Any, seed: Any, reference_per_class: Any) -> tuple[int, int, int]:
    """``crops``, ``seed`` and ``reference_per_class`` of :func:`evaluate` as ints, or one
    ConfigError naming the bad value and its range (numpy integers pass, bools do not)."""
    return (
        check_int("crops", crops, 0, MAX_CROPS, "random crops per row"),
        check_int("seed", seed, 0, MAX_RNG_SEED, "seed of the crop boxes"),
        check_per_class(reference_per_class, "reference_per_class"),
    )


def crop_fractions(count: int, seed: int) -> list[tuple[float, float, float]]:
    """``count`` crop boxes ``(top, left, side)`` as fractions of the canvas, drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    draws = rng.random((count, 3))
    boxes = []
    for u_side, u_top, u_left in draws:
        side = CROP_SIDE[0] + (CROP_SIDE[1] - CROP_SIDE[0]) * float(u_side)
        boxes.append(((1 - side) * float(u_top), (1 - side) * float(u_left), side))
    return boxes


def judge_views(
    judge: LoadedModel, image: Image.Image, boxes: Iterable[tuple[float, float, float]]
) -> torch.Tensor:
    """Normalized judge inputs: the whole image, then one per crop box."""
    return _to_pixels(judge, list(_views(image, boxes)))


def _views(image: Image.Image, boxes: Iterable[tuple[float, float, float]]) -> Iterator[Image.Image]:
    """The whole image, then its crop at each box, made one at a time."""
    image = image.convert("RGB")
    width, height = image.size
    short = min(width, height)
    yield image
    for top, left, side in boxes:
        size = max(1, round(side * short))
        y, x = round(top * height), round(left * width)
        y, x = min(y, height - size), min(x, width - size)
        yield image.crop((x, y, x + size, y + size))


def _judge_views_in_batches(
    judge: LoadedModel, image: Image.Image, boxes: Sequence[tuple[float, float, float]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`logits_and_features` of :func:`judge_views`, at most :data:`VIEWS_PER_CALL` views
    per judge call, so memory does not grow with the number of crops."""
    views = _views(image, boxes)
    parts = []
    while batch := list(itertools.islice(views, VIEWS_PER_CALL)):
        parts.append(logits_and_features(judge, _to_pixels(judge, batch)))
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


# ------------------------------------------------------------------------------- internals


def _items(gallery: Any) -> list[tuple[str, Visualization]]:
    """(row key, row) pairs, one per key (a row without a key is keyed ``row-<index>``)."""
    if isinstance(gallery, (str, Path)):
        gallery = load_gallery(gallery)
    items = list(gallery)
    if not items:
        raise ConfigError("The gallery to evaluate is empty; make visualizations first (explain).")
    if not all(isinstance(item, Visualization) for item in items):
        raise ConfigError(
            "evaluate() needs a Gallery, a list of Visualizations, a gallery folder or a Hub dataset id."
        )
    keyed: dict[str, Visualization] = {}
    for index, item in enumerate(items):
        keyed.setdefault(_key(item, index), item)
    if len(keyed) < len(items):
        logger.info(
            "%d rows repeat the key of an earlier row; each key is evaluated once.", len(items) - len(keyed)
        )
    return list(keyed.items())


def _load_judges(judges: Any, device: Any) -> list[tuple[str, LoadedModel]]:
    if isinstance(judges, (str, Path, LoadedModel)):
        judges = [judges]
    pairs = list(judges.items()) if isinstance(judges, Mapping) else [(None, j) for j in judges]
    if not pairs:
        raise ConfigError(
            "judges=[] is empty: pass at least one image classifier (Hub id, folder "
            "or loaded model) to judge the gallery."
        )
    named: list[tuple[str, LoadedModel]] = []
    for given, judge in pairs:
        loaded = judge if isinstance(judge, LoadedModel) else load_model(judge, device=device)
        if not loaded.has_classifier or not loaded.id2label:
            raise ConfigError(
                f"Judge {loaded.model_id!r} is not an image classifier with class names (it has "
                f"{'no trained head' if not loaded.has_classifier else 'no labels'}); judges must "
                "classify into named classes."
            )
        name = _slug(given if given is not None else loaded.model_id)
        base, n = name, 2
        while name in {existing for existing, _ in named}:
            name, n = f"{base}_{n}", n + 1
        named.append((name, loaded))
    return named


def _slug(text: Any) -> str:
    last = str(text).rstrip("/\\").replace("\\", "/").split("/")[-1]
    return re.sub(r"[^0-9a-z]+", "_", last.lower()).strip("_") or "judge"


def _key(item: Visualization, index: int) -> str:
    return item.key if item.record is not None else f"row-{index}"


def _class_by_name(judge: LoadedModel, label: str | None) -> int | None:
    """The judge's class called ``label`` (None when it has none, or several)."""
    if not label or not str(label).strip():
        return None
    try:
        index = judge.resolve_class(str(label))
    except ClassNotFoundError as exc:
        logger.debug("Judge %r: %s", judge.model_id, exc)
        return None
    if str(label).strip().isdigit() and (judge.label(index) or "").strip() != str(label).strip():
        return None  # resolve_class read the digits as an index: not a name match
    return index


def _target(judge: LoadedModel, item: Visualization) -> tuple[int | None, str]:
    if item.kind != "class":
        return None, "not a class row"
    if not item.label:
        return None, "no label"
    index = _class_by_name(judge, item.label)
    return (index, "ok") if index is not None else (None, "label not in judge")


def _to_pixels(judge: LoadedModel, images: Sequence[Image.Image]) -> torch.Tensor:
    height, width = judge.preprocessing.size
    resample = getattr(Image.Resampling, judge.preprocessing.resample.upper(), Image.Resampling.BICUBIC)
    arrays = [
        np.asarray(image.resize((width, height), resample), dtype=np.float32) / 255.0 for image in images
    ]
    pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    device, dtype = placement(judge.module)
    return judge.preprocessing.normalize(pixels.to(device=device, dtype=dtype))


def _centre_square(image: Image.Image) -> Image.Image:
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return image.crop((left, top, left + side, top + side))


def _reference_features(judge: LoadedModel, references: ReferenceSet) -> dict[int, np.ndarray]:
    """Judge class index -> features (M, D) of the reference images of the classes of that name."""
    by_class: dict[int, list[np.ndarray]] = {}
    for label, images in references.images.items():
        index = _class_by_name(judge, label)
        if index is None or not images:
            continue
        for start in range(0, len(images), 16):
            batch = [_centre_square(image) for image in images[start : start + 16]]
            _, features = logits_and_features(judge, _to_pixels(judge, batch))
            by_class.setdefault(index, []).append(features.numpy())
    return {index: np.concatenate(parts) for index, parts in by_class.items()}


def _judge_rows(
    judge: LoadedModel,
    items: Sequence[Visualization],
    targets: Sequence[tuple[int | None, str]],
    boxes: Sequence[tuple[float, float, float]],
    ref_features: Mapping[int, np.ndarray],
) -> list[dict[str, Any]]:
    results = []
    for item, (index, status) in zip(items, targets, strict=True):
        values: dict[str, Any] = {"status": status}
        results.append(values)
        if index is None:
            continue
        logits, features = _judge_views_in_batches(judge, item.image, boxes)
        probs = logits.softmax(dim=-1)
        top5 = (logits.topk(min(5, logits.shape[-1]), dim=-1).indices == index).any(dim=-1)
        top1 = logits.argmax(dim=-1) == index
        predicted = int(logits[0].argmax())
        values.update(
            top1=bool(top1[0]),
            top5=bool(top5[0]),
            prob=float(probs[0, index]),
            pred=judge.label(predicted) or str(predicted),
            _features=features.numpy(),
        )
        if len(boxes):
            values.update(
                crops_top1=float(top1[1:].float().mean()),
                crops_top5=float(top5[1:].float().mean()),
                crops_prob=float(probs[1:, index].mean()),
            )
        reference = ref_features.get(index)
        values["reference_images"] = 0 if reference is None else len(reference)
        if reference is not None:
            views = features.numpy()
            scores = plausibility(views, reference)
            values.update(plausibility=float(scores[0]), frechet=frechet_distance(views, reference))
            if len(boxes):
                values["crops_plausibility"] = float(scores[1:].mean())
    return results


def _summarize(
    name: str,
    judge: LoadedModel,
    results: Sequence[dict[str, Any]],
    targets: Sequence[tuple[int | None, str]],
    ref_features: Mapping[int, np.ndarray],
) -> dict[str, Any]:
    statuses = Counter(values["status"] for values in results)
    class_rows = len(results) - statuses["not a class row"]
    summary: dict[str, Any] = {
        "judge": name,
        "model_id": judge.model_id,
        "model_revision": judge.revision,
        "rows": class_rows,
        "judged": statuses["ok"],
        "not_judged": {k: n for k, n in statuses.items() if k not in ("ok", "not a class row")},
    }
    for metric in (*TRANSFER_METRICS, *FEATURE_METRICS):
        numbers = [float(v[metric]) for v in results if v.get(metric) is not None]
        summary[metric] = float(np.mean(numbers)) if numbers else None
    whole, classes = [], set()
    for values, (index, _) in zip(results, targets, strict=True):
        if index is not None and index in ref_features:
            whole.append(values["_features"][0])
            classes.add(index)
    summary["frechet_pooled"] = (
        frechet_distance(np.stack(whole), np.concatenate([ref_features[c] for c in sorted(classes)]))
        if whole
        else None
    )
    summary["reference_classes"] = len(ref_features)
    summary["reference_images"] = int(sum(len(v) for v in ref_features.values()))
    for values in results:
        values.pop("_features", None)
    return summary
