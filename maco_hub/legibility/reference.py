"""Labelled real images to compare visualizations with: a folder of class folders or a Hub dataset.

:func:`load_reference` reads at most ``per_class`` images of each class it is asked to keep, in a
fixed order (sorted file names; a dataset's stream order), so the same call gives the same images:

* a folder laid out like torchvision's ImageFolder: ``ROOT/<class name>/<image files>``; the class
  name is the folder name; files that are no readable image (or no regular file) are skipped
  with a warning;
* a Hub dataset id (or a folder ``datasets`` reads), streamed: the label column is a ``ClassLabel``
  (the first one, or ``label_column``) whose names are the class names; the image column is the
  first ``Image`` column (or ``image_column``). ``split`` defaults to "validation" when the dataset
  has one, else "train";
* a mapping ``{class name: [images]}`` (PIL images or uint8 (H, W, 3) arrays), taken as given.

Only the classes ``keep(name)`` accepts are read, so a large dataset is streamed only as far as
needed to fill them (or to its end).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from .._image_files import image_files, read_image_file
from .._numbers import check_int
from ..errors import ConfigError

MAX_PER_CLASS = 1000  # reference images per class (all are held in memory)


@dataclass(frozen=True)
class ReferenceSet:
    """Real images by class name, with where they came from."""

    images: Mapping[str, tuple[Image.Image, ...]]  # class name -> RGB images
    source: str  # folder path, dataset id (and split), or "in-memory"
    per_class: int | None = None  # the cap used when reading, None when given in memory
    details: dict[str, Any] = field(default_factory=dict)  # e.g. dataset split and revision

    def describe(self) -> str:
        """One line for logs and cards: where the images come from and how many."""
        count = sum(len(v) for v in self.images.values())
        cap = f", at most {self.per_class} per class" if self.per_class else ""
        return f"{self.source}: {count} images of {len(self.images)} classes{cap}"


def load_reference(
    source: str | Path | Mapping[str, Sequence[Any]] | ReferenceSet,
    *,
    keep: Callable[[str], bool] | None = None,
    per_class: int = 16,
    split: str | None = None,
    revision: str | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
) -> ReferenceSet:
    """The reference images of the classes ``keep`` accepts (all when None); see the module doc."""
    if isinstance(source, ReferenceSet):
        return source
    per_class = check_per_class(per_class)
    keep = keep or (lambda name: True)
    if isinstance(source, Mapping):
        images = {
            str(name): tuple(_rgb(image) for image in values)
            for name, values in source.items()
            if keep(str(name))
        }
        return ReferenceSet(images, "in-memory")
    if not isinstance(source, (str, Path)) or not str(source).strip():
        raise ConfigError(
            f"reference={source!r} must be a folder of class folders, a Hub dataset id "
            "or a mapping {class name: images}."
        )
    path = Path(source)
    if path.is_dir() and not _is_dataset_folder(path):
        return _from_folder(path, keep, per_class)
    return _from_dataset(str(source), keep, per_class, split, revision, image_column, label_column)


def check_per_class(value: Any, name: str = "per_class") -> int:
    """``value`` as an int from 1 to :data:`MAX_PER_CLASS`, or ConfigError naming ``name``."""
    return check_int(name, value, 1, MAX_PER_CLASS, "reference images per class")


def _is_dataset_folder(path: Path) -> bool:
    """A folder ``datasets`` reads (parquet or arrow files), not class folders."""
    return any(path.glob("*.parquet")) or any(path.glob("*.arrow")) or (path / "data").is_dir()


def _from_folder(root: Path, keep: Callable[[str], bool], per_class: int) -> ReferenceSet:
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ConfigError(
            f"Reference folder {str(root)!r} holds no class folders; lay it out as "
            "ROOT/<class name>/<image files> (like torchvision's ImageFolder)."
        )
    images = {}
    for folder in classes:
        if not keep(folder.name):
            continue
        loaded = [
            image for image in map(read_image_file, image_files(folder)[:per_class]) if image is not None
        ]
        if loaded:
            images[folder.name] = tuple(loaded)
    return ReferenceSet(images, f"folder {root.name}", per_class)


def _from_dataset(
    dataset_id: str,
    keep: Callable[[str], bool],
    per_class: int,
    split: str | None,
    revision: str | None,
    image_column: str | None,
    label_column: str | None,
) -> ReferenceSet:
    import datasets

    try:
        splits = datasets.load_dataset(dataset_id, revision=revision, streaming=True)
    except Exception as exc:  # datasets raises many types (FileNotFoundError, DatasetNotFoundError...)
        raise ConfigError(
            f"reference={dataset_id!r} is neither a folder of class folders nor a dataset that could "
            f"be opened ({type(exc).__name__}: {exc}). Pass an existing folder or a Hub dataset id."
        ) from exc
    if split is None:
        split = next((s for s in ("validation", "train") if s in splits), next(iter(splits)))
    if split not in splits:
        raise ConfigError(f"Reference dataset {dataset_id!r} has no split {split!r}; it has {list(splits)}.")
    stream = splits[split]
    features = stream.features or {}
    labels = _column(features, label_column, datasets.ClassLabel, "label", dataset_id)
    pixels = _column(features, image_column, datasets.Image, "image", dataset_id)
    names = features[labels].names
    wanted = {name for name in names if keep(name)}
    images: dict[str, list[Image.Image]] = {}
    full = 0
    rows = stream.select_columns([labels, pixels]) if wanted else ()
    for row in rows:
        index = row[labels]
        if index is None or not 0 <= int(index) < len(names):
            continue  # unlabelled rows (e.g. -1 in test splits)
        name = names[int(index)]
        kept = images.setdefault(name, []) if name in wanted else None
        if kept is None or len(kept) >= per_class or row[pixels] is None:
            continue
        kept.append(_rgb(row[pixels]))
        full += len(kept) == per_class
        if full == len(wanted):
            break
    details = {"split": split, "revision": revision or "main", "label_column": labels, "image_column": pixels}
    return ReferenceSet(
        {k: tuple(v) for k, v in images.items()}, f"dataset {dataset_id} ({split})", per_class, details
    )


def _column(features: Mapping, chosen: str | None, kind: type, what: str, dataset_id: str) -> str:
    if chosen is not None:
        if not isinstance(features.get(chosen), kind):
            raise ConfigError(
                f"Reference dataset {dataset_id!r}: column {chosen!r} is not a "
                f"{kind.__name__} column; columns: {dict(features)}."
            )
        return chosen
    for name, feature in features.items():
        if isinstance(feature, kind):
            return name
    raise ConfigError(
        f"Reference dataset {dataset_id!r} has no {kind.__name__} column (columns: {list(features)}); "
        f"the reference needs {what}s"
        + (" with class names" if what == "label" else "")
        + f". Name the column with {what}_column=... or pass a folder of class folders."
    )


def _rgb(image: Any) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    import numpy as np

    array = np.asarray(image)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ConfigError(f"Reference image of shape {array.shape} must be RGB (H, W, 3).")
    return Image.fromarray(array.astype(np.uint8), mode="RGB")
