"""Objectives that look at a given image, and the penalty that keeps variants apart.

* :class:`Inversion` (feature inversion): the canvas's activations at a layer should match those of
  a given image. The image is seen through the *same* crop boxes and noise as the canvas (the
  engine cuts both, :mod:`maco_hub.engine.guides`), so the activations are compared at the same
  place and scale: pooled features would throw away where things are, which the layer keeps.
* :class:`Closeness`: the same agreement with the picture the run starts from: the regularizer of
  feature accentuation measured in a layer's activations (``explain(image=..., image_layer=...)``).
* :class:`GramDiversity`: Lucid's diversity penalty between the variants of one objective.

Both agreements score ``-‖a - r‖² / ‖r‖²`` per crop (the squared distance relative to the
reference's own size: 0 when equal, 1 for a blank canvas), ``a`` the canvas's and ``r`` the
image's activations, whatever the layer's shape. The reference's activations come to
:meth:`~maco_hub.objectives.Objective.score` as ``acts[reference_key(layer)]``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from .._image_files import InputImage, read_image
from .._numbers import as_finite
from ..errors import ConfigError
from .base import Activations, Objective, Sum, Table
from .checks import check_layer, layer_info, positions

if TYPE_CHECKING:
    from ..models.loader import LoadedModel

REFERENCE = "reference:"  # acts[REFERENCE + layer]: the reference image's activations, same rows
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_EPS = 1e-12


def reference_key(layer: str) -> str:
    """The key under which a score function finds the reference's activations at ``layer``."""
    return REFERENCE + layer


def relative_distance(acts: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per row: ``‖a - r‖² / ‖r‖²`` over everything but the first dimension."""
    a, r = acts.float().flatten(1), reference.float().flatten(1)
    return (a - r).pow(2).sum(dim=1) / r.pow(2).sum(dim=1).clamp_min(_EPS)


@dataclass(frozen=True)
class Inversion(Objective):
    """What a layer keeps of an image: maximize the agreement of the canvas's activations at
    ``layer`` with the image's (seen through the same crops), ``-‖a - r‖² / ‖r‖²``.

    ``image``: a path, PIL image or array (read by :func:`maco_hub._image_files.read_image`:
    checked, RGB). Its centre square, resized to the canvas, is what the canvas is compared with.
    A recorded Inversion holds only ``image_sha256`` until :func:`bind_images` gives it the image.
    """

    kind: ClassVar[str] = "inversion"
    image: Any  # a path, PIL image or array; becomes an InputImage (None: bound later by sha256)
    layer: str  # dotted module path, as listed by maco_hub.layers(model)
    _: KW_ONLY
    image_sha256: str | None = None  # sha256 of the image's pixels, filled from the image
    layer_kind: str | None = None  # "conv" / "tokens" / "vector", filled by validate()

    def __post_init__(self) -> None:
        check_layer(self.layer)
        if self.image is not None:
            image = read_image(self.image, "Inversion image")
            if self.image_sha256 not in (None, image.sha256):
                raise ConfigError(
                    f"Inversion image has pixel sha256 {image.sha256[:12]}…, not the "
                    f"image_sha256 {self.image_sha256[:12]}… it was given with: pass the original image."
                )
            object.__setattr__(self, "image", image)
            object.__setattr__(self, "image_sha256", image.sha256)
        elif not isinstance(self.image_sha256, str) or not _SHA256_RE.match(self.image_sha256):
            raise ConfigError(
                f"Inversion needs an image (a path, PIL image or array); got image=None and "
                f"image_sha256={self.image_sha256!r}."
            )

    @property
    def description(self) -> str:
        return f"inversion of image {self.image_sha256[:12]} at {self.layer}"

    @property
    def reference_layers(self) -> frozenset[str]:
        return frozenset({self.layer})

    @property
    def reference_image(self) -> InputImage | None:
        return self.image

    @property
    def image_hashes(self) -> frozenset[str]:
        return frozenset({self.image_sha256})

    def validate(self, loaded: LoadedModel) -> Inversion:
        info = layer_info(loaded, self.layer)
        if self.image is None:
            raise ConfigError(
                f"{self.description} has no image: load its gallery row (which holds the image) "
                "or build Inversion(image, layer) with the image."
            )
        return replace(self, layer_kind=info.kind)

    def score(self, acts: Activations, logits: torch.Tensor | None, table: Table) -> torch.Tensor:
        return -relative_distance(acts[self.layer], acts[reference_key(self.layer)])

    def record_values(self) -> dict[str, Any]:
        """The fields a record keeps: the image by its sha256 (a gallery stores it once)."""
        return {"layer": self.layer, "image_sha256": self.image_sha256, "layer_kind": self.layer_kind}


@dataclass(frozen=True)
class Closeness(Objective):
    """Agreement at ``layer`` with the run's own reference (the picture an accentuation starts
    from), ``-‖a - r‖² / ‖r‖²`` per crop. Built by ``explain(image=..., image_layer=...)``."""

    kind: ClassVar[str] = "closeness"
    layer: str  # dotted module path, as listed by maco_hub.layers(model)

    def __post_init__(self) -> None:
        check_layer(self.layer)

    @property
    def description(self) -> str:
        return f"closeness to the start image at {self.layer}"

    @property
    def reference_layers(self) -> frozenset[str]:
        return frozenset({self.layer})

    def validate(self, loaded: LoadedModel) -> Closeness:
        layer_info(loaded, self.layer)
        return self

    def score(self, acts: Activations, logits: torch.Tensor | None, table: Table) -> torch.Tensor:
        return -relative_distance(acts[self.layer], acts[reference_key(self.layer)])


def bind_images(objective: Objective, images: Mapping[str, InputImage]) -> Objective:
    """``objective`` with every recorded :class:`Inversion` given its image from ``images`` (by
    pixel sha256); ConfigError naming a missing one."""
    if isinstance(objective, Sum):
        return Sum(tuple((w, bind_images(o, images)) for w, o in objective.terms))
    if not isinstance(objective, Inversion) or objective.image is not None:
        return objective
    image = images.get(objective.image_sha256)
    if image is None or getattr(image, "sha256", None) != objective.image_sha256:
        raise ConfigError(
            f"The image of {objective.description} (pixel sha256 {objective.image_sha256}) is "
            "missing: pass it, or load the gallery that stores it."
        )
    return replace(objective, image=image)


class GramDiversity:
    """Lucid's diversity penalty, per crop: how much the layer's Gram matrix of this crop
    resembles those of the image's other variants.

    Each crop's activations ``A`` (positions × units) give ``Ĝ = AᵀA / ‖AᵀA‖_F``; the penalty of a
    crop of image ``i`` is ``weight`` times the mean of ``⟨Ĝ, Ĝ_j⟩`` over the other images ``j`` of
    its group, where ``Ĝ_j`` is image ``j``'s mean Gram over its latest crops (the same step or the
    one before), held constant. So every model call scores its own crops (no extra calls, groups
    need not share a call), each image gets the exact gradient of its own terms, and the others'
    Grams lag by at most one step. ``groups[b]``: the group of image ``b`` (its objective).
    """

    def __init__(self, layer: str, weight: float, groups: Sequence[int], info: Any) -> None:
        number = as_finite(weight)
        if number is None or number < 0:
            raise ConfigError(f"diversity={weight!r} must be a finite number >= 0 (0: independent variants).")
        self.layer, self.weight, self.info = layer, float(number), info
        self.groups = torch.as_tensor(list(groups), dtype=torch.long)
        same = self.groups[:, None] == self.groups[None, :]
        others = same & ~torch.eye(len(self.groups), dtype=torch.bool)
        self._mix = others.float() / others.sum(dim=1, keepdim=True).clamp_min(1).float()  # (B, B)
        self._bank: torch.Tensor | None = None  # (B, U·U) latest mean Gram per image
        self._known: torch.Tensor | None = None  # (B,) whether the bank holds image b yet

    def __call__(self, acts: Activations, index: torch.Tensor) -> torch.Tensor:
        """The penalty (N,) of rows whose images are ``index``; updates the images' Grams."""
        grams = gram(acts[self.layer], self.info)  # (N, U·U)
        if self._bank is None:
            self._bank = torch.zeros(len(self.groups), grams.shape[1], device=grams.device)
            self._known = torch.zeros(len(self.groups), device=grams.device)
        mix = self._mix.to(grams.device)[index] * self._known  # (N, B): known other variants
        penalty = ((grams @ self._bank.T) * mix).sum(dim=1)
        with torch.no_grad():
            counts = torch.zeros(len(self.groups), device=grams.device).index_add_(
                0, index, torch.ones_like(index, dtype=grams.dtype)
            )
            sums = torch.zeros_like(self._bank).index_add_(0, index, grams.detach())
            seen = counts > 0
            self._bank = torch.where(seen[:, None], sums / counts.clamp_min(1)[:, None], self._bank)
            self._known = torch.maximum(self._known, seen.float())
        return self.weight * penalty


def gram(act: torch.Tensor, info: Any) -> torch.Tensor:
    """Per row: the normalized Gram matrix ``AᵀA / ‖AᵀA‖_F`` of positions × units, flattened."""
    a = positions(act, info, "all")  # (N, P, U)
    g = (a.transpose(1, 2) @ a).flatten(1)
    return g / g.norm(dim=1, keepdim=True).clamp_min(_EPS)


def mean_gram_similarity(acts: torch.Tensor, info: Any) -> float:
    """The mean ``⟨Ĝ_i, Ĝ_j⟩`` over pairs i ≠ j of ``acts``' rows (1: same features everywhere)."""
    g = gram(acts, info)
    n = len(g)
    if n < 2:
        raise ConfigError("the similarity of variants needs at least two images")
    sims = g @ g.T
    return float((sims.sum() - sims.diagonal().sum()) / (n * (n - 1)))
