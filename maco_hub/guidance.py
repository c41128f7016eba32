"""What ``explain`` adds to plain rows: a start image to accentuate, variants kept apart by a
diversity penalty, and the images :class:`~maco_hub.objectives.Inversion` objectives compare with.

Everything is checked before a model loads (:meth:`Guidance.checked`), then against the model
(:meth:`Guidance.resolved`); per batch it becomes the objectives the engine maximizes (with the
accentuation's layer regularizer), its guides (start pictures, references cut with the same crops)
and the diversity penalties (:meth:`Guidance.batch_inputs`); each row records what shaped it
(:meth:`Guidance.record_fields`), only when set, so rows without it keep their keys.

Variants of one objective are consecutive rows: variant 0 has the objective's usual seed, variant
``v`` a seed derived from it and ``v``; a batch never splits an objective's variants (they are
optimized together, with the penalty between them), and rows of one batch with the same objective
are its variants, in order (which is how :func:`maco_hub.regenerate` finds them again).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ._image_files import InputImage, read_image
from ._numbers import as_finite, check_int
from .engine.guides import Guides
from .errors import ConfigError
from .gallery.keys import canonical_json, seed_for
from .objectives.checks import layer_info
from .objectives.defaults import last_block
from .objectives.guided import Closeness, GramDiversity
from .objectives.records import objective_to_record

if TYPE_CHECKING:
    from .models.loader import LoadedModel
    from .objectives.builtin import Objective

IMAGE_WEIGHT = 1.0  # weight of the pull to the start image (README "Methods": accentuation table)
DIVERSITY = 16.0  # weight of the Gram penalty between variants (README "Methods": diversity, measured)
MAX_VARIANTS = 64  # the penalty costs O(variants²) per step; Lucid uses 4


@dataclass(frozen=True)
class Accentuation:
    """Start from ``image`` and stay close to it: in pixels (``layer`` None) or at ``layer``."""

    image: InputImage
    layer: str | None
    weight: float

    def record(self) -> dict[str, Any]:
        return {"image_sha256": self.image.sha256, "layer": self.layer, "weight": self.weight}


@dataclass(frozen=True)
class Variants:
    """``count`` images per objective, ``weight`` × the Gram penalty at ``layer`` between them
    (None: each objective's own layer, or the model's last block for objectives without one)."""

    count: int
    weight: float
    layer: str | None


@dataclass(frozen=True)
class Guidance:
    accentuation: Accentuation | None = None
    variants: Variants | None = None

    @classmethod
    def checked(
        cls,
        *,
        image: Any = None,
        image_layer: str | None = None,
        image_weight: float | None = None,
        variants: int = 1,
        diversity: float | None = None,
        diversity_layer: str | None = None,
    ) -> Guidance:
        """The options of ``explain`` as a Guidance (ConfigError/ImageError for a bad one)."""
        accentuation = None
        if image is not None:
            weight = _weight("image_weight", IMAGE_WEIGHT if image_weight is None else image_weight)
            accentuation = Accentuation(
                read_image(image, "image"), _layer("image_layer", image_layer), weight
            )
        elif image_layer is not None or image_weight is not None:
            raise ConfigError(
                "image_layer and image_weight apply to image=...: pass the image to accentuate."
            )
        count = check_int("variants", variants, 1, MAX_VARIANTS, "images per objective")
        if count == 1:
            if diversity is not None or diversity_layer is not None:
                raise ConfigError("diversity applies to variants > 1: pass variants=N (e.g. 4).")
            return cls(accentuation)
        weight = _weight("diversity", DIVERSITY if diversity is None else diversity)
        return cls(accentuation, Variants(count, weight, _layer("diversity_layer", diversity_layer)))

    def resolved(self, loaded: LoadedModel, objectives: Sequence[Objective]) -> Guidance:
        """Layers checked against ``loaded``; refuses an accentuated Inversion."""
        if self.accentuation is not None:
            if any(o.image_hashes for o in objectives):
                raise ConfigError(
                    "image= accentuates objectives of the model; an Inversion already starts from "
                    "its own image comparison: explain Inversion objectives without image=."
                )
            if self.accentuation.layer is not None:
                layer_info(loaded, self.accentuation.layer)
        if self.variants is not None and self.variants.layer is not None:
            layer_info(loaded, self.variants.layer)
        return self

    @property
    def images(self) -> tuple[InputImage, ...]:
        return (self.accentuation.image,) if self.accentuation is not None else ()

    def plan(self, objectives: Sequence[Objective], seed: int) -> list[tuple[Objective, int]]:
        """``(objective, seed)`` per row: each objective's variants in a row (see the module doc)."""
        count = self.variants.count if self.variants is not None else 1
        plan = []
        for objective in objectives:
            record = objective_to_record(objective)
            first = seed_for(seed, record)
            plan += [(objective, first)]
            plan += [
                (objective, seed_for(seed, {"objective": record, "variant": v})) for v in range(1, count)
            ]
        return plan

    def batches(self, plan: Sequence[tuple[Objective, int]], size: int) -> list[list[tuple[Objective, int]]]:
        """``plan`` in batches of about ``size`` images that never split an objective's variants."""
        groups: list[list] = []
        for item in plan:
            if groups and _same(groups[-1][0][0], item[0]) and self.variants is not None:
                groups[-1].append(item)
            else:
                groups.append([item])
        batches: list[list] = []
        for group in groups:
            if batches and len(batches[-1]) + len(group) <= size:
                batches[-1] += group
            else:
                batches.append(list(group))
        return batches

    def record_fields(self, batch: Sequence[tuple[Objective, int]], b: int, loaded: LoadedModel) -> dict:
        """The RowRecord fields of row ``b`` of ``batch`` (only those set)."""
        fields: dict[str, Any] = {}
        if self.accentuation is not None:
            fields["accentuation"] = self.accentuation.record()
        if self.variants is not None:
            fields["variant"] = _variant_indices(batch)[b]
            fields["diversity"] = {
                "variants": self.variants.count,
                "weight": self.variants.weight,
                "layer": self._diversity_layer(batch[b][0], loaded),
            }
        return fields

    def batch_inputs(
        self, loaded: LoadedModel, batch: Sequence[tuple[Objective, int]], canvas: int
    ) -> tuple[list[Objective], Guides, list[GramDiversity]]:
        """What the engine maximizes for ``batch`` (objectives with the layer regularizer), its
        guides (start pictures and references) and the diversity penalties."""
        objectives = [objective for objective, _ in batch]
        start = references = anchors = None
        accent = self.accentuation
        if accent is not None:
            start = _pictures([accent.image] * len(batch), canvas)
            if accent.layer is None:
                anchors = [accent.weight] * len(batch)
            else:
                closeness = Closeness(accent.layer).validate(loaded)
                objectives = [o + accent.weight * closeness for o in objectives]
                references = start
        if any(o.reference_image is not None for o in objectives):
            references = _pictures([o.reference_image for o in objectives], canvas)
        guides = Guides(start=start, anchor_weights=anchors, references=references)
        return objectives, guides, self._penalties(loaded, batch)

    def _penalties(self, loaded: LoadedModel, batch: Sequence[tuple[Objective, int]]) -> list[GramDiversity]:
        if self.variants is None or self.variants.weight == 0:
            return []
        groups = _group_ids(batch)
        layers = [self._diversity_layer(objective, loaded) for objective, _ in batch]
        table = {name: layer_info(loaded, name) for name in set(layers)}
        return [
            GramDiversity(
                name,
                self.variants.weight,
                [
                    g if layer == name else -1 - b
                    for b, (g, layer) in enumerate(zip(groups, layers, strict=True))
                ],
                table[name],
            )
            for name in sorted(table)
        ]

    def _diversity_layer(self, objective: Objective, loaded: LoadedModel) -> str:
        if self.variants.layer is not None:
            return self.variants.layer
        return objective.layer or last_block(loaded).name


def from_record(record: Any, images: dict[str, InputImage]) -> Guidance:
    """The Guidance a row's record describes (its images from ``images``, by sha256)."""
    accentuation = variants = None
    if record.accentuation is not None:
        sha = record.accentuation["image_sha256"]
        if sha not in images or images[sha].sha256 != sha:
            raise ConfigError(
                f"The row {record.objective!r} started from the image {sha[:12]}…, which it does not "
                "carry: load the row from its gallery (which stores the image)."
            )
        accentuation = Accentuation(
            images[sha], record.accentuation.get("layer"), record.accentuation["weight"]
        )
    if record.diversity is not None:
        d = record.diversity
        variants = Variants(d["variants"], d["weight"], d.get("layer"))
    return Guidance(accentuation, variants)


def _pictures(images: Sequence[InputImage | None], canvas: int) -> torch.Tensor:
    """(B, 3, canvas, canvas) RGB in [0, 1]: each image's centre square at the canvas size (zeros
    for None, a reference no objective reads)."""
    cache: dict[str, np.ndarray] = {}
    arrays = []
    for image in images:
        if image is None:
            arrays.append(np.zeros((canvas, canvas, 3), dtype=np.uint8))
            continue
        if image.sha256 not in cache:
            cache[image.sha256] = image.at_canvas(canvas)
        arrays.append(cache[image.sha256])
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255


def _variant_indices(batch: Sequence[tuple[Objective, int]]) -> list[int]:
    """Each row's index among the rows of ``batch`` with the same objective."""
    seen: dict[str, int] = {}
    indices = []
    for objective, _ in batch:
        key = canonical_json(objective_to_record(objective))
        indices.append(seen.get(key, 0))
        seen[key] = indices[-1] + 1
    return indices


def _group_ids(batch: Sequence[tuple[Objective, int]]) -> list[int]:
    keys = [canonical_json(objective_to_record(objective)) for objective, _ in batch]
    return [keys.index(key) for key in keys]


def _same(a: Objective, b: Objective) -> bool:
    return canonical_json(objective_to_record(a)) == canonical_json(objective_to_record(b))


def _weight(name: str, value: Any) -> float:
    number = as_finite(value)
    if number is None or number < 0:
        raise ConfigError(f"{name}={value!r} is invalid: use a finite number >= 0.")
    return float(number)


def _layer(name: str, value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ConfigError(f"{name}={value!r} must be a module path, as listed by maco_hub.layers(model).")
    return value
