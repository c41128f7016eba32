"""Images to estimate a spectrum from: shipped photos, a folder, or a streamed dataset.

Three sources: colour photographs shipped inside scikit-image, scikit-learn and matplotlib
(``pip install "maco_hub[photos]"``), image files under a folder, or a Hugging Face dataset
streamed with ``datasets``. :func:`select_images` gives one source's ``(images, provenance
metadata)`` for :func:`maco_hub.spectra.estimation.estimate_spectrum`.

Only the standard library is imported here; numpy, PIL, datasets and the photo packages load
when a source is opened, so ``maco-hub --help`` stays fast.
"""

from __future__ import annotations

import logging
import random
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .._image_files import IMAGE_SUFFIXES, image_files, read_image_file
from .._numbers import MAX_RNG_SEED, check_int
from ..errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from PIL import Image

__all__ = [
    "DEFAULT_SCALES",
    "IMAGE_SUFFIXES",
    "PHOTOS_EXTRA",
    "Photo",
    "augmented",
    "builtin_photos",
    "dataset_images",
    "folder_images",
    "select_images",
]

DEFAULT_SCALES = (0.9, 0.8, 0.7, 0.6, 0.5)  # crop sides of the shipped default, fractions of the short side
PHOTOS_EXTRA = 'pip install "maco_hub[photos]"'
MAX_CROPS_PER_SCALE = 1000  # crop positions per scale and image
MAX_BUFFER_SIZE = 100_000  # rows a streamed dataset's shuffle buffer holds in memory
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Photo:
    """A photograph shipped inside an installed package."""

    name: str  # loader name inside its package
    package: str  # distribution it ships with, with version
    licence: str  # as stated by the package
    pixels: np.ndarray  # uint8 (H, W, 3)


def builtin_photos() -> list[Photo]:
    """The natural colour photos that load offline (microscopy, astronomy, drawings left out).

    scikit-image is required; scikit-learn (china, flower) and matplotlib (grace_hopper) add
    photos when installed. The order is fixed; callers shuffle.
    """
    try:
        import skimage
        import skimage.data as skdata
    except ImportError as error:
        raise ConfigError(
            f"The builtin photos need scikit-image, which is not installed: {PHOTOS_EXTRA} "
            "(also installs scikit-learn and matplotlib for the full set of nine photos)."
        ) from error

    version = f"scikit-image {skimage.__version__}"
    photos = [
        Photo(name, version, licence, getattr(skdata, name)())
        for name, licence in (
            ("astronaut", "public domain (NASA)"),
            ("chelsea", "CC0 (Stefan van der Walt)"),
            ("coffee", "CC0 (Rachel Michetti)"),
            ("rocket", "public domain (SpaceX)"),
        )
    ]
    left, right, _ = skdata.stereo_motorcycle()
    licence = "Middlebury 2014 stereo benchmark (no licence stated)"
    photos += [
        Photo("motorcycle_left", version, licence, left),
        Photo("motorcycle_right", version, licence, right),
    ]
    photos += _sklearn_photos() + _matplotlib_photos()
    return photos


def _sklearn_photos() -> list[Photo]:
    try:
        import sklearn
        from sklearn.datasets import load_sample_images
    except ImportError:
        _log.warning("scikit-learn is not installed: photos china and flower left out (%s)", PHOTOS_EXTRA)
        return []
    samples = load_sample_images()
    return [
        Photo(Path(filename).stem, f"scikit-learn {sklearn.__version__}", "CC BY 2.0 (Flickr)", pixels)
        for filename, pixels in zip(samples.filenames, samples.images, strict=True)
    ]


def _matplotlib_photos() -> list[Photo]:
    try:
        import matplotlib
        from matplotlib.cbook import get_sample_data
    except ImportError:
        _log.warning("matplotlib is not installed: photo grace_hopper left out (%s)", PHOTOS_EXTRA)
        return []
    import numpy as np
    from PIL import Image

    with get_sample_data("grace_hopper.jpg") as handle, Image.open(handle) as image:
        pixels = np.asarray(image.convert("RGB"))
    return [Photo("grace_hopper", f"matplotlib {matplotlib.__version__}", "public domain (US Navy)", pixels)]


def folder_images(folder: str | Path, *, count: int | None = None, seed: int = 0) -> Iterator[Image.Image]:
    """RGB images under ``folder`` (recursively; sorted, shuffled with ``seed``, first ``count``).

    Files are listed at the call (regular files named like images only); each is read when
    iterated, as :func:`maco_hub._inputs.read_image_file` reads it: files that are no readable
    image are skipped with a warning.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"Image folder {str(folder)!r} does not exist; pass a folder of images.")
    paths = image_files(folder, recursive=True)
    if not paths:
        raise ConfigError(
            f"Image folder {str(folder)!r} holds no image file "
            f"({', '.join(IMAGE_SUFFIXES)}); pass a folder with image files."
        )
    random.Random(seed).shuffle(paths)
    return _read_images(paths[:count])


def _read_images(paths: Sequence[Path]) -> Iterator[Image.Image]:
    for path in paths:
        image = read_image_file(path)
        if image is not None:
            yield image


def dataset_images(
    dataset_id: str,
    *,
    split: str = "train",
    revision: str | None = None,
    column: str | None = None,
    count: int | None = None,
    seed: int = 0,
    buffer_size: int = 10_000,
) -> Iterator:
    """Images streamed from a Hub dataset (or a local folder ``datasets`` reads).

    Shuffled with ``seed`` in a buffer of ``buffer_size`` rows, first ``count`` taken; ``column``
    defaults to the first column of type Image.
    """
    import datasets

    stream = datasets.load_dataset(dataset_id, split=split, revision=revision, streaming=True)
    features = stream.features or {}
    if column is None:
        columns = [k for k, v in features.items() if isinstance(v, datasets.Image)]
        if not columns:
            raise ConfigError(
                f"Dataset {dataset_id!r} has no column of type Image (features: {list(features)});"
                " name one (image_column=, --image-column)."
            )
        column = columns[0]
    elif features and column not in features:
        raise ConfigError(f"Image column {column!r} is not a column of {dataset_id!r}: {list(features)}.")
    stream = stream.shuffle(seed=seed, buffer_size=buffer_size)
    if count is not None:
        stream = stream.take(count)
    return (row[column] for row in stream)


def augmented(
    images: Iterable, *, scales: Sequence[float], crops_per_scale: int, flip: bool, seed: int
) -> Iterator[np.ndarray]:
    """Square crops (and mirrors) of each image, one ``numpy.random.default_rng(seed)`` for all."""
    import numpy as np

    from .estimation import augmented_views

    rng = np.random.default_rng(seed)
    for image in images:
        yield from augmented_views(
            np.asarray(image), scales=scales, crops_per_scale=crops_per_scale, flip=flip, rng=rng
        )


def select_images(
    *,
    dataset: str | None = None,
    folder: str | Path | None = None,
    builtin: bool = False,
    split: str = "train",
    dataset_revision: str | None = None,
    image_column: str | None = None,
    count: int | None = None,
    seed: int = 0,
    buffer_size: int = 10_000,
    augment: bool | None = None,
    scales: Sequence[float] = DEFAULT_SCALES,
    crops_per_scale: int = 3,
    flip: bool = True,
) -> tuple[Iterable, dict[str, str]]:
    """The images of one source (a ``dataset`` id, a ``folder`` or the ``builtin`` photos), and
    their provenance metadata for the spectrum file.

    ``augment`` (default: on for the builtin photos) replaces each image by square crops at
    ``scales`` of its short side, ``crops_per_scale`` positions each, mirrored too with ``flip``.
    """
    if sum((dataset is not None, folder is not None, bool(builtin))) != 1:
        raise ConfigError("Pick exactly one image source: a dataset id, a folder, or the builtin photos.")
    scales = tuple(scales)
    if not scales or not all(0 < s <= 1 for s in scales):
        raise ConfigError(f"scales={list(scales)} must be fractions in (0, 1], e.g. 0.9,0.7,0.5.")
    seed = check_int("seed", seed, 0, MAX_RNG_SEED, "the shuffle and crop seed")
    count = None if count is None else check_int("count", count, 1, sys.maxsize, "images to use")
    crops_per_scale = check_int(
        "crops_per_scale", crops_per_scale, 1, MAX_CROPS_PER_SCALE, "crop positions per scale"
    )
    buffer_size = check_int("buffer_size", buffer_size, 1, MAX_BUFFER_SIZE, "rows in the shuffle buffer")
    metadata = {"seed": str(seed)}
    if builtin:
        photos = builtin_photos()
        random.Random(seed).shuffle(photos)
        photos = photos[:count]
        metadata.update(
            dataset="builtin-photos", photos="; ".join(f"{p.name} ({p.package}, {p.licence})" for p in photos)
        )
        images: Iterable = (p.pixels for p in photos)
    elif folder is not None:
        images = folder_images(folder, count=count, seed=seed)
        metadata.update(dataset=f"folder:{Path(folder).name}")
    else:
        images = dataset_images(
            dataset,
            split=split,
            revision=dataset_revision,
            column=image_column,
            count=count,
            seed=seed,
            buffer_size=buffer_size,
        )
        metadata.update(
            dataset=dataset,
            dataset_split=split,
            dataset_revision=dataset_revision or "main",
            shuffle=f"streaming shuffle seed={seed} buffer_size={buffer_size}",
        )
    if builtin if augment is None else augment:
        images = augmented(images, scales=scales, crops_per_scale=crops_per_scale, flip=flip, seed=seed)
        metadata["augmentation"] = (
            f"per photo, in order, for each crop side s*short_side with s in {list(scales)}: "
            f"{crops_per_scale} square crops at positions drawn uniformly "
            f"(numpy default_rng({seed}), one generator for all photos, top then left;"
            " a single crop when the square fills the photo)"
            + ("; each crop also mirrored left-right" if flip else "")
        )
    return images, metadata
