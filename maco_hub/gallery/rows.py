"""Results in memory: one :class:`Visualization` per objective, gathered in a :class:`Gallery`.

Pure data and PNG helpers, no torch (browsing a gallery stays fast); folders
(:mod:`maco_hub.gallery.folder`) and the Hub (:mod:`maco_hub.gallery.storage`) build on it.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

from PIL import Image

from .._files import atomic_write
from ..errors import GalleryError
from .evaluation import Evaluation
from .keys import is_row_key
from .record import RowRecord


@dataclass(frozen=True)
class Visualization:
    """One optimized image, its attribution map and everything needed to make it again."""

    image: Image.Image  # RGB, canvas × canvas
    alpha: Image.Image  # "L": attribution normalized to 0–255 (see maco_hub.engine.pictures)
    score: float  # objective on the whole image resized to the model input
    objective: str  # human-readable description, used as caption
    kind: str  # "class", "channel", "neuron", "layer", "direction" or "sum"
    layer: str | None = None  # module path the objective reads, if one
    unit: int | None = None  # channel / neuron index, if any
    class_id: int | None = None  # class index for class objectives
    label: str | None = None  # class name for class objectives
    record: RowRecord | None = None  # how to make it again (None: a row from elsewhere, no key)
    inputs: Mapping[str, Any] = field(default_factory=dict, compare=False)  # sha256 -> InputImage the
    # row's batch was made from (start image, inverted images); a gallery stores them in inputs/

    @property
    def seed(self) -> int | None:
        return self.record.seed if self.record is not None else None

    @property
    def key(self) -> str:
        """The row's key in a gallery (see :class:`~maco_hub.gallery.record.RowRecord`)."""
        if self.record is None:
            raise GalleryError(
                f"Row {self.objective!r} has no reproducibility record, so no key; only "
                "rows made by maco_hub can be stored in a gallery."
            )
        return self.record.key

    def with_transparency(self) -> Image.Image:
        """RGBA image whose alpha is the attribution map, as in the MACO paper's figures."""
        rgba = self.image.convert("RGBA")
        rgba.putalpha(self.alpha)
        return rgba


@dataclass(frozen=True)
class Gallery(Sequence[Visualization]):
    """An ordered, immutable collection of visualizations of one model."""

    items: tuple[Visualization, ...] = ()  # in objective order
    evaluation: Evaluation | None = None  # legibility results by row key (maco_hub.evaluate), if any

    @overload
    def __getitem__(self, index: int) -> Visualization: ...
    @overload
    def __getitem__(self, index: slice) -> Gallery: ...
    def __getitem__(self, index):
        if isinstance(index, slice):
            return Gallery(self.items[index], self.evaluation)
        return self.items[index]

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Visualization]:
        return iter(self.items)

    def save_images(self, folder: str | Path) -> list[Path]:
        """Write each row's ``KEY.png`` (RGB) and ``KEY-transparent.png`` (RGBA); return the paths.

        The names are the ones a gallery folder's ``images/`` uses (see :func:`image_names`).
        """
        folder = Path(folder)
        paths = []
        for item in self.items:
            image, transparent = image_names(item.key)
            paths.append(atomic_write(folder / image, png_bytes(item.image)))
            paths.append(atomic_write(folder / transparent, png_bytes(item.with_transparency())))
        return paths


def row_note(record: RowRecord | None) -> str:
    """What sets a row apart from a plain MACO row, for captions ('' for a plain one): its method,
    the image it started from, its variant."""
    if record is None:
        return ""
    parts = [record.method] if record.method != "maco" else []
    if record.accentuation:
        layer = record.accentuation.get("layer")
        parts.append(
            f"from image {str(record.accentuation.get('image_sha256'))[:12]}"
            + (f" (close at {layer})" if layer else "")
        )
    if record.variant is not None:
        total = (record.diversity or {}).get("variants")
        parts.append(f"variant {record.variant + 1}" + (f" of {total}" if total else ""))
    return ", ".join(parts)


def image_names(key: str) -> tuple[str, str]:
    """File names of a row's image and of its RGBA version: derived from its key, never from data."""
    if not is_row_key(key):
        raise GalleryError(
            f"Row key {key!r} is not a maco_hub row key (20 hex digits); it cannot "
            "name a file. The row was crafted or damaged."
        )
    return f"{key}.png", f"{key}-transparent.png"


def png_bytes(image: Image.Image) -> bytes:
    """The image as PNG file bytes (lossless)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
