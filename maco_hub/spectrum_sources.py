"""Images to estimate a spectrum from, and the command-line options that pick them.

Three sources: colour photographs shipped inside scikit-image, scikit-learn and matplotlib
(``pip install "maco_hub[photos]"``), image files under a folder, or a Hugging Face dataset
streamed with ``datasets``. :func:`images_from_arguments` turns the options added by
:func:`add_source_arguments` into ``(images, provenance metadata)`` for
:func:`maco_hub.spectrum_estimation.estimate_spectrum`.

Only the standard library is imported here; numpy, PIL, datasets and the photo packages load
when a source is opened, so ``maco-hub --help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from PIL import Image

__all__ = [
    "DEFAULT_SCALES", "IMAGE_SUFFIXES", "Photo", "add_source_arguments", "augmented", "builtin_photos",
    "dataset_images", "folder_images", "images_from_arguments",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
DEFAULT_SCALES = (0.9, 0.8, 0.7, 0.6, 0.5)  # crop sides of the shipped default, fractions of the short side
PHOTOS_EXTRA = 'pip install "maco_hub[photos]"'
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
            f"--builtin-photos needs scikit-image, which is not installed: {PHOTOS_EXTRA} "
            "(also installs scikit-learn and matplotlib for the full set of nine photos)."
        ) from error

    version = f"scikit-image {skimage.__version__}"
    photos = [Photo(name, version, licence, getattr(skdata, name)())
              for name, licence in (("astronaut", "public domain (NASA)"),
                                    ("chelsea", "CC0 (Stefan van der Walt)"),
                                    ("coffee", "CC0 (Rachel Michetti)"),
                                    ("rocket", "public domain (SpaceX)"))]
    left, right, _ = skdata.stereo_motorcycle()
    licence = "Middlebury 2014 stereo benchmark (no licence stated)"
    photos += [Photo("motorcycle_left", version, licence, left),
               Photo("motorcycle_right", version, licence, right)]
    photos += _sklearn_photos() + _matplotlib_photos()
    return photos


def _sklearn_photos() -> list[Photo]:
    try:
        import sklearn
        from sklearn.datasets import load_sample_images
    except ImportError:
        _log.warning("scikit-learn is not installed: photos china and flower left out (%s)",
                     PHOTOS_EXTRA)
        return []
    samples = load_sample_images()
    return [Photo(Path(filename).stem, f"scikit-learn {sklearn.__version__}", "CC BY 2.0 (Flickr)",
                  pixels)
            for filename, pixels in zip(samples.filenames, samples.images, strict=True)]


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
    return [Photo("grace_hopper", f"matplotlib {matplotlib.__version__}", "public domain (US Navy)",
                  pixels)]


def folder_images(folder: str | Path, *, count: int | None = None, seed: int = 0
                  ) -> Iterator[Image.Image]:
    """RGB images under ``folder`` (recursively; sorted, shuffled with ``seed``, first ``count``).

    Files are listed and checked at the call; each is opened only when iterated.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"--folder {str(folder)!r} is not a folder; pass a folder of images.")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ConfigError(f"--folder {str(folder)!r} holds no image ({', '.join(IMAGE_SUFFIXES)}); "
                          "pass a folder with image files.")
    random.Random(seed).shuffle(paths)
    return _open_images(paths[:count])


def _open_images(paths: Sequence[Path]) -> Iterator[Image.Image]:
    from PIL import Image

    for path in paths:
        with Image.open(path) as image:
            yield image.convert("RGB")


def dataset_images(dataset_id: str, *, split: str = "train", revision: str | None = None,
                   column: str | None = None, count: int | None = None, seed: int = 0,
                   buffer_size: int = 10_000) -> Iterator:
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
                " name one with --image-column."
            )
        column = columns[0]
    elif features and column not in features:
        raise ConfigError(
            f"--image-column {column!r} is not a column of {dataset_id!r}: {list(features)}."
        )
    stream = stream.shuffle(seed=seed, buffer_size=buffer_size)
    if count is not None:
        stream = stream.take(count)
    return (row[column] for row in stream)


def augmented(images: Iterable, *, scales: Sequence[float], crops_per_scale: int, flip: bool,
              seed: int) -> Iterator[np.ndarray]:
    """Square crops (and mirrors) of each image, one ``numpy.random.default_rng(seed)`` for all."""
    import numpy as np

    from .spectrum_estimation import augmented_views

    rng = np.random.default_rng(seed)
    for image in images:
        yield from augmented_views(np.asarray(image), scales=scales, crops_per_scale=crops_per_scale,
                                   flip=flip, rng=rng)


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the source options (one of --dataset/--folder/--builtin-photos) and their settings."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", metavar="ID", help="Hugging Face dataset id, streamed")
    source.add_argument("--folder", metavar="DIR", type=Path, help="folder of images (recursive)")
    source.add_argument("--builtin-photos", action="store_true",
                        help=f"photos shipped in scikit-image/scikit-learn/matplotlib ({PHOTOS_EXTRA})")
    parser.add_argument("--split", default="train", help="dataset split (default: %(default)s)")
    parser.add_argument("--dataset-revision", metavar="REV",
                        help="dataset revision: branch, tag or commit (default: main)")
    parser.add_argument("--image-column", help="dataset column holding images (default: first Image)")
    parser.add_argument("--count", type=int, help="use this many images (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="shuffle/crop seed (default: %(default)s)")
    parser.add_argument("--buffer-size", type=int, default=10_000,
                        help="shuffle buffer of a streamed dataset (default: %(default)s)")
    parser.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                        help="square crops at --scales (+ flips); default: on for --builtin-photos")
    parser.add_argument("--scales", default=",".join(map(str, DEFAULT_SCALES)),
                        help="crop sides as fractions of the short side (default: %(default)s)")
    parser.add_argument("--crops-per-scale", type=int, default=3,
                        help="random crop positions per scale (default: %(default)s)")
    parser.add_argument("--flip", action=argparse.BooleanOptionalAction, default=True,
                        help="also use each crop mirrored left-right (default: on)")


def images_from_arguments(args: argparse.Namespace) -> tuple[Iterable, dict[str, str]]:
    """The images the options of :func:`add_source_arguments` select, and their provenance."""
    scales = _scales(args.scales)
    for option, value in (("--count", args.count), ("--crops-per-scale", args.crops_per_scale),
                          ("--buffer-size", args.buffer_size)):
        if value is not None and value < 1:
            raise ConfigError(f"{option} {value} must be at least 1.")
    metadata = {"seed": str(args.seed)}
    if args.builtin_photos:
        photos = builtin_photos()
        random.Random(args.seed).shuffle(photos)
        photos = photos[:args.count]
        metadata.update(dataset="builtin-photos",
                        photos="; ".join(f"{p.name} ({p.package}, {p.licence})" for p in photos))
        images: Iterable = (p.pixels for p in photos)
    elif args.folder is not None:
        images = folder_images(args.folder, count=args.count, seed=args.seed)
        metadata.update(dataset=f"folder:{args.folder.name}")
    else:
        images = dataset_images(args.dataset, split=args.split, revision=args.dataset_revision,
                                column=args.image_column, count=args.count, seed=args.seed,
                                buffer_size=args.buffer_size)
        metadata.update(dataset=args.dataset, dataset_split=args.split,
                        dataset_revision=args.dataset_revision or "main",
                        shuffle=f"streaming shuffle seed={args.seed} buffer_size={args.buffer_size}")
    if args.builtin_photos if args.augment is None else args.augment:
        images = augmented(images, scales=scales, crops_per_scale=args.crops_per_scale,
                           flip=args.flip, seed=args.seed)
        metadata["augmentation"] = (
            f"per photo, in order, for each crop side s*short_side with s in {list(scales)}: "
            f"{args.crops_per_scale} square crops at positions drawn uniformly "
            f"(numpy default_rng({args.seed}), one generator for all photos, top then left;"
            " a single crop when the square fills the photo)"
            + ("; each crop also mirrored left-right" if args.flip else "")
        )
    return images, metadata


def _scales(text: str) -> tuple[float, ...]:
    try:
        scales = tuple(float(s) for s in text.split(",") if s.strip())
    except ValueError:
        scales = ()
    if not scales or not all(0 < s <= 1 for s in scales):
        raise ConfigError(f"--scales {text!r} must be comma-separated fractions in (0, 1], "
                          "e.g. 0.9,0.7,0.5.")
    return scales
