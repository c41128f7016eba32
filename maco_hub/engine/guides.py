"""What guides an optimization beyond its objective: pictures to start from and stay close to
(feature accentuation), and references seen through the same crops and noise (inversion, and
accentuation measured in a layer's activations).

References ride along with the images: every step, reference ``b`` is cut with image ``b``'s crop
boxes, gets the very same noise, and its rows reach the score function next to the image's rows,
so a score can compare what the model sees of both at the same place and scale.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch

from .._numbers import as_finite
from ..errors import ConfigError

_VARIANCE_EPS = 1e-6  # a flat start image has no variance: its pixel distance is taken as is


@dataclass(frozen=True, eq=False)
class Guides:
    """Optional inputs of :func:`maco_hub.engine.optimize`, one entry per image of the batch."""

    start: torch.Tensor | None = None  # (B, 3, S, S) RGB in [0, 1]: the pictures the images start as
    anchor_weights: Sequence[float] | None = None  # per image: weight of the pixel pull to ``start``
    references: torch.Tensor | None = None  # (B, 3, S, S) RGB in [0, 1], cut with the images' crops
    final_score_fn: Callable[..., torch.Tensor] | None = None  # final scores (default: the score_fn)

    def checked(self, count: int, canvas: int) -> Guides:
        """These guides, checked against ``count`` images of a ``canvas`` px canvas (ConfigError)."""
        for name in ("start", "references"):
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, torch.Tensor) or tuple(value.shape) != (count, 3, canvas, canvas):
                shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                raise ConfigError(
                    f"guides.{name} is {shape}; pass a tensor ({count}, 3, {canvas}, {canvas}) of "
                    "RGB values in [0, 1], one picture per image at the canvas size"
                )
            if not bool(torch.isfinite(value).all()) or value.min() < 0 or value.max() > 1:
                raise ConfigError(f"guides.{name} must hold finite RGB values in [0, 1]")
        if self.anchor_weights is None:
            return self
        if self.start is None:
            raise ConfigError("guides.anchor_weights pull the images to guides.start: pass start too")
        weights = [as_finite(w) for w in self.anchor_weights]
        if len(weights) != count or any(w is None or w < 0 for w in weights):
            raise ConfigError(
                f"guides.anchor_weights={list(self.anchor_weights)!r} must be {count} finite numbers >= 0"
            )
        return replace(self, anchor_weights=tuple(float(w) for w in weights))

    def on(self, device: torch.device) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``start`` (when pulled to) and ``references`` as float32 tensors on ``device``."""
        pulled = self.start is not None and self.anchor_weights is not None and any(self.anchor_weights)
        start = self.start.float().to(device) if pulled else None
        references = self.references.float().to(device) if self.references is not None else None
        return start, references


def pixel_distance(images: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """Per image: mean squared pixel difference over the start picture's own variance (0 at the start)."""
    dims = tuple(range(1, images.dim()))
    variance = start.var(dim=dims).clamp_min(_VARIANCE_EPS)
    return (images - start).pow(2).mean(dim=dims) / variance


def anchor_gradient(images: torch.Tensor, start: torch.Tensor, weights: Sequence[float]) -> torch.Tensor:
    """d/d(images) of Σ_b weight_b · :func:`pixel_distance` (the loss the pull adds)."""
    dims = tuple(range(1, images.dim()))
    variance = start.var(dim=dims, keepdim=True).clamp_min(_VARIANCE_EPS)
    scale = torch.tensor(weights, device=images.device, dtype=images.dtype).view(-1, *[1] * len(dims))
    return 2 * scale * (images - start) / (variance * images[0].numel())


def noisy_pair(
    views: torch.Tensor,
    seen: torch.Tensor,
    crops: int,
    std: float,
    generators: Sequence[torch.Generator],
) -> tuple[torch.Tensor, torch.Tensor]:
    """``views`` and the references' crops ``seen`` with the same noise per image, drawn as
    :func:`~maco_hub.engine.transforms.add_noise` draws it (so the images' noise is unchanged)."""
    if std <= 0:
        return views, seen
    noisy, references = [], []
    for b, generator in enumerate(generators):
        part = slice(b * crops, (b + 1) * crops)
        shape, device = views[part].shape, views.device
        gaussian = torch.randn(shape, generator=generator, device=device, dtype=views.dtype)
        uniform = torch.rand(shape, generator=generator, device=device, dtype=views.dtype)
        noisy.append(views[part] + std * gaussian + std * (2 * uniform - 1))
        references.append(seen[part] + std * gaussian + std * (2 * uniform - 1))
    return torch.cat(noisy), torch.cat(references)
