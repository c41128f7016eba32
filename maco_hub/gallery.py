"""Results in memory: one :class:`Visualization` per objective, gathered in a :class:`Gallery`."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import numpy as np
import torch
from PIL import Image

from ._files import atomic_write
from .errors import ConfigError

ALPHA_QUANTILE = 0.99  # attribution at this quantile maps to full opacity


@dataclass(frozen=True)
class Visualization:
    """One optimized image, its attribution map and everything needed to make it again."""

    image: Image.Image  # RGB, canvas × canvas
    alpha: Image.Image  # "L": attribution normalized to 0–255 (see attribution_to_alpha)
    score: float  # objective on the whole image resized to the model input
    objective: str  # human-readable description, used as caption
    kind: str  # "class", "channel", "neuron", "layer", "direction" or "sum"
    layer: str | None = None  # module path the objective reads, if one
    unit: int | None = None  # channel / neuron index, if any
    class_id: int | None = None  # class index for class objectives
    label: str | None = None  # class name for class objectives
    record: dict[str, Any] = field(default_factory=dict)  # reproducibility record (see explain)

    @property
    def seed(self) -> int | None:
        return self.record.get("seed")

    def with_transparency(self) -> Image.Image:
        """RGBA image whose alpha is the attribution map, as in the MACO paper's figures."""
        rgba = self.image.convert("RGBA")
        rgba.putalpha(self.alpha)
        return rgba


@dataclass(frozen=True)
class Gallery(Sequence[Visualization]):
    """An ordered, immutable collection of visualizations of one model."""

    items: tuple[Visualization, ...] = ()  # in objective order

    @overload
    def __getitem__(self, index: int) -> Visualization: ...
    @overload
    def __getitem__(self, index: slice) -> Gallery: ...
    def __getitem__(self, index):
        if isinstance(index, slice):
            return Gallery(self.items[index])
        return self.items[index]

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Visualization]:
        return iter(self.items)

    def __add__(self, other: Gallery) -> Gallery:
        return Gallery(self.items + tuple(other))

    def save(self, folder: str | Path, *, title: str | None = None) -> Path:
        """Write (or extend) a gallery folder that ``datasets.load_dataset(folder)`` reads.

        Rows already in the folder are kept and not duplicated; see :mod:`maco_hub.store`.
        """
        from .store import GalleryFolder

        store = GalleryFolder.open(folder)
        store.append(self.items)
        store.write_pages(title=title)
        return store.path

    def push_to_hub(self, repo_id: str, *, private: bool = False, token: str | None = None,
                    revision: str | None = None, commit_message: str | None = None) -> str:
        """Add these rows to the Hub dataset ``repo_id`` (created if needed) in one commit.

        Rows the repo already holds are kept and not duplicated. Returns the commit URL.
        """
        from .hub import push_gallery

        return push_gallery(self, repo_id, private=private, token=token, revision=revision,
                            commit_message=commit_message)

    def regenerate(self, index: int, **options) -> Visualization:
        """Make row ``index`` again from its record (see :func:`maco_hub.regenerate`)."""
        from ._explain import regenerate

        return regenerate(self.items[index], **options)

    def save_images(self, folder: str | Path) -> list[Path]:
        """Write ``NNNN-<slug>.png`` (RGB) and ``NNNN-<slug>-alpha.png`` (RGBA) per row; return paths."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for i, item in enumerate(self.items):
            stem = f"{i:04d}-{_slug(item.label or item.objective)}"
            paths.append(_save_png(item.image, folder / f"{stem}.png"))
            paths.append(_save_png(item.with_transparency(), folder / f"{stem}-alpha.png"))
        return paths


def load_gallery(source: str | Path, *, revision: str | None = None, token: str | None = None) -> Gallery:
    """A gallery from a folder written by :meth:`Gallery.save` / ``explain(out=...)``, or a Hub
    dataset repo id (downloaded into the Hugging Face cache at ``revision``)."""
    from .store import GalleryFolder

    path = Path(source)
    if path.exists():
        if revision is not None:
            raise ConfigError(f"revision={revision!r} applies to Hub repos; {str(source)!r} is a folder.")
        return GalleryFolder.open(path, create=False).read()
    from .hub import download_gallery

    return GalleryFolder.open(download_gallery(str(source), revision=revision, token=token),
                              create=False).read()


def to_pil_image(image: torch.Tensor) -> Image.Image:
    """(3, H, W) float in [0, 1] → 8-bit RGB image."""
    array = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(np.ascontiguousarray(array), mode="RGB")


def attribution_to_alpha(attribution: torch.Tensor) -> Image.Image:
    """(H, W) non-negative attribution → "L" image: value / its 99th percentile, clipped to [0, 1]."""
    scale = torch.quantile(attribution.flatten().float(), ALPHA_QUANTILE).clamp_min(1e-12)
    alpha = (attribution / scale).clamp(0, 1)
    return Image.fromarray((alpha * 255).round().to(torch.uint8).numpy(), mode="L")


def _slug(text: str) -> str:
    kept = "".join(c.lower() if c.isalnum() else "-" for c in text)
    return "-".join(part for part in kept.split("-") if part)[:60] or "item"


def png_bytes(image: Image.Image) -> bytes:
    """The image as PNG file bytes (lossless)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _save_png(image: Image.Image, path: Path) -> Path:
    return atomic_write(path, png_bytes(image))
