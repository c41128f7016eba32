"""Results in memory: one :class:`Visualization` per objective, gathered in a :class:`Gallery`.

Pure data and PNG helpers, no torch (browsing a gallery stays fast); folders
(:mod:`maco_hub.gallery.folder`) and the Hub (:mod:`maco_hub.gallery.storage`) build on it. In a
notebook a gallery shows itself as a captioned grid of thumbnails and a visualization as its image
(:mod:`maco_hub.gallery.display`); their ``repr`` is one line.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

from PIL import Image

from .._files import atomic_write
from .._text import visible
from ..errors import ConfigError, GalleryError
from .display import NOTEBOOK_TILES, contact_sheet, tiles_html
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
    kind: str  # "class", "channel", "neuron", "layer", "direction", "text" or "sum"
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

    @property
    def caption(self) -> str:
        """What a thumbnail is captioned with: the label, else ``layer:unit``, else the objective."""
        if self.label:
            return self.label
        if self.layer is not None and self.unit is not None:
            return f"{self.layer}:{self.unit}"
        return self.objective

    def __repr__(self) -> str:
        width, height = self.image.size
        return (
            f"<Visualization {self.caption!r}: {self.objective!r}, score {self.score:.4g}, "
            f"seed {self.seed}, {width}x{height} px>"
        )

    def _repr_png_(self) -> bytes:
        """Jupyter shows the image."""
        return png_bytes(self.image)


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

    def summary(self) -> str:
        """One line: how many rows of which kinds, of which models, whether evaluated."""
        kinds = ", ".join(
            f"{n} {visible(str(kind))}" for kind, n in Counter(i.kind for i in self).most_common()
        )
        models = sorted({visible(i.record.model_id) for i in self if i.record is not None})
        text = f"Gallery of {len(self)} visualization{'s' if len(self) != 1 else ''}"
        text += f" ({kinds})" if kinds else ""
        text += f" of {', '.join(models[:3])}{' and others' if len(models) > 3 else ''}" if models else ""
        if self.evaluation is not None:
            judges = len(self.evaluation.summary)
            text += f", evaluated by {judges} judge{'s' if judges != 1 else ''}"
        return text

    def __repr__(self) -> str:
        return f"<{self.summary()}>"

    def _repr_html_(self) -> str:
        """Jupyter shows a captioned grid of the first :data:`~.display.NOTEBOOK_TILES` thumbnails."""
        shown = self.items[:NOTEBOOK_TILES]
        return tiles_html(
            [item.image for item in shown],
            [item.caption for item in shown],
            [f"score {item.score:.4g}" for item in shown],
            title=self.summary(),
            more=len(self) - len(shown),
        )

    def grid(
        self,
        *,
        columns: int = 8,
        size: int = 128,
        captions: bool | Sequence[str] = True,
        transparency: bool = False,
        background: str | tuple[int, ...] | None = None,
    ) -> Image.Image:
        """One PIL contact sheet of every row: ``columns`` pictures a row, each fitted in ``size``
        px, captioned with :attr:`Visualization.caption` (or the ``captions`` given, or none);
        ``transparency`` draws the attribution as alpha (an RGBA sheet, transparent background
        unless ``background`` is given; else RGB on white).

        >>> gallery.grid(columns=4, size=96).save("figure.png")  # doctest: +SKIP
        """
        if not isinstance(transparency, bool):
            raise ConfigError(f"transparency={transparency!r} must be True or False.")
        if isinstance(captions, bool):
            texts = [item.caption for item in self] if captions else None
        elif (
            isinstance(captions, Sequence)
            and not isinstance(captions, str)
            and all(isinstance(text, str) for text in captions)
        ):
            texts = list(captions)
        else:
            raise ConfigError(
                f"captions={captions!r} must be True, False or a list of strings (one per row)."
            )
        pictures = [item.with_transparency() if transparency else item.image for item in self]
        return contact_sheet(pictures, texts, columns=columns, size=size, background=background)

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
    return _file_names(key, ".png", ".png")


def thumbnail_names(key: str) -> tuple[str, str]:
    """File names of a row's thumbnails (``thumbs/``, see :mod:`maco_hub.gallery.thumbnails`)."""
    return _file_names(key, ".jpg", ".webp")


def _file_names(key: str, suffix: str, transparent_suffix: str) -> tuple[str, str]:
    if not is_row_key(key):
        raise GalleryError(
            f"Row key {key!r} is not a maco_hub row key (20 hex digits); it cannot "
            "name a file. The row was crafted or damaged."
        )
    return f"{key}{suffix}", f"{key}-transparent{transparent_suffix}"


def png_bytes(image: Image.Image) -> bytes:
    """The image as PNG file bytes (lossless)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
