"""Estimate a MACO magnitude spectrum from photographs and save it as a safetensors file.

Sources (pick one):
  --dataset ID          a Hugging Face dataset, streamed (``--split``, ``--revision``,
                        ``--image-column``: default the first column of type Image)
  --folder DIR          image files under DIR, recursively
  --builtin-photos      the colour photographs shipped inside scikit-image, scikit-learn and
                        (if installed) matplotlib; augmented with crops and flips by default

Examples:
  python scripts/estimate_spectrum.py --builtin-photos --out spectra/default.safetensors
  python scripts/estimate_spectrum.py --dataset ORG/NAME --split train --count 5000 --out s.safetensors
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

from maco_hub.errors import ConfigError, MacoHubError
from maco_hub.spectrum_estimation import augmented_views, estimate_spectrum

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
DEFAULT_SCALES = (0.9, 0.8, 0.7, 0.6, 0.5)
PUSH_NOT_IMPLEMENTED = "--push is not implemented yet: lands with the Hub issue."


@dataclass(frozen=True)
class Photo:
    """A photograph shipped inside an installed package."""

    name: str  # loader name inside its package
    package: str  # distribution it ships with, with version
    licence: str  # as stated by the package
    pixels: np.ndarray  # uint8 (H, W, 3)


def builtin_photos() -> list[Photo]:
    """The natural colour photos that load offline (microscopy, astronomy, drawings excluded)."""
    try:
        import skimage
        import skimage.data as skdata
    except ImportError as error:
        raise ConfigError(
            "--builtin-photos needs scikit-image: pip install 'maco_hub[photos]'."
        ) from error

    photos: list[Photo] = []
    version = f"scikit-image {skimage.__version__}"
    for name, licence in (("astronaut", "public domain (NASA)"),
                          ("chelsea", "CC0 (Stefan van der Walt)"),
                          ("coffee", "CC0 (Rachel Michetti)"),
                          ("rocket", "public domain (SpaceX)")):
        photos.append(Photo(name, version, licence, getattr(skdata, name)()))
    left, right, _ = skdata.stereo_motorcycle()
    licence = "Middlebury 2014 stereo benchmark (no licence stated)"
    photos += [Photo("motorcycle_left", version, licence, left),
               Photo("motorcycle_right", version, licence, right)]
    try:
        import sklearn
        from sklearn.datasets import load_sample_images
    except ImportError:
        print("scikit-learn is not installed: china and flower left out", file=sys.stderr)
    else:
        samples = load_sample_images()
        for filename, pixels in zip(samples.filenames, samples.images, strict=True):
            photos.append(Photo(Path(filename).stem, f"scikit-learn {sklearn.__version__}",
                                "CC BY 2.0 (Flickr)", pixels))
    try:
        import matplotlib
        from matplotlib.cbook import get_sample_data
        from PIL import Image
    except ImportError:
        print("matplotlib is not installed: grace_hopper left out", file=sys.stderr)
    else:
        with get_sample_data("grace_hopper.jpg") as handle, Image.open(handle) as image:
            pixels = np.asarray(image.convert("RGB"))
        photos.append(Photo("grace_hopper", f"matplotlib {matplotlib.__version__}",
                            "public domain (US Navy)", pixels))
    return photos


def folder_images(folder: Path, *, count: int | None, seed: int) -> Iterator:
    """Images under ``folder`` (sorted, then shuffled with ``seed``), opened lazily."""
    from PIL import Image

    if not folder.is_dir():
        raise ConfigError(f"--folder {str(folder)!r} is not a folder; pass a folder of images.")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ConfigError(f"--folder {str(folder)!r} holds no image ({', '.join(IMAGE_SUFFIXES)}).")
    random.Random(seed).shuffle(paths)
    for path in paths[:count]:
        with Image.open(path) as image:
            yield image.convert("RGB")


def dataset_images(dataset_id: str, *, split: str, revision: str | None, column: str | None,
                   count: int | None, seed: int, buffer_size: int) -> Iterator:
    """Images streamed from a Hub dataset: shuffled with ``seed``, first ``count`` taken."""
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
    for row in stream:
        yield row[column]


def _augment(photos: Iterable, *, scales: tuple[float, ...], crops: int, flip: bool, seed: int
             ) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(seed)
    for photo in photos:
        yield from augmented_views(np.asarray(photo), scales=scales, crops_per_scale=crops,
                                   flip=flip, rng=rng)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="\n".join(__doc__.splitlines()[2:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", metavar="ID", help="Hugging Face dataset id")
    source.add_argument("--folder", metavar="DIR", type=Path, help="folder of images")
    source.add_argument("--builtin-photos", action="store_true",
                        help="photos shipped in scikit-image/scikit-learn/matplotlib")
    parser.add_argument("--split", default="train", help="dataset split (default: train)")
    parser.add_argument("--revision", help="dataset revision (branch, tag or commit)")
    parser.add_argument("--image-column", help="dataset column holding images (default: auto)")
    parser.add_argument("--count", type=int, help="use this many images (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="shuffle/crop seed (default: 0)")
    parser.add_argument("--buffer-size", type=int, default=10_000,
                        help="shuffle buffer of a streamed dataset (default: 10000)")
    parser.add_argument("--resolution", type=int, default=512, help="canvas side (default: 512)")
    parser.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                        help="square crops at --scales (+ flips); default: on for builtin photos")
    parser.add_argument("--scales", default=",".join(map(str, DEFAULT_SCALES)),
                        help="crop sides as fractions of the short side (default: %(default)s)")
    parser.add_argument("--crops-per-scale", type=int, default=3,
                        help="random crop positions per scale (default: 3)")
    parser.add_argument("--flip", action=argparse.BooleanOptionalAction, default=True,
                        help="also use each crop mirrored left-right (default: on)")
    parser.add_argument("--out", type=Path, required=True, help="output .safetensors file")
    parser.add_argument("--push", metavar="REPO_ID", help="upload to a Hub repo (not yet)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.push:
        print(PUSH_NOT_IMPLEMENTED, file=sys.stderr)
        return 2
    try:
        scales = tuple(float(s) for s in args.scales.split(",") if s.strip())
    except ValueError:
        print(f"--scales {args.scales!r} must be comma-separated numbers.", file=sys.stderr)
        return 2
    if args.count is not None and args.count < 1:
        print(f"--count {args.count} must be at least 1.", file=sys.stderr)
        return 2
    metadata: dict[str, str] = {"seed": str(args.seed)}
    try:
        if args.builtin_photos:
            photos = builtin_photos()
            random.Random(args.seed).shuffle(photos)
            photos = photos[:args.count]
            metadata.update(
                dataset="builtin-photos",
                photos="; ".join(f"{p.name} ({p.package}, {p.licence})" for p in photos),
            )
            images: Iterable = (p.pixels for p in photos)
        elif args.folder is not None:
            images = folder_images(args.folder, count=args.count, seed=args.seed)
            metadata.update(dataset=f"folder:{args.folder.name}")
        else:
            images = dataset_images(args.dataset, split=args.split, revision=args.revision,
                                    column=args.image_column, count=args.count, seed=args.seed,
                                    buffer_size=args.buffer_size)
            metadata.update(dataset=args.dataset, dataset_split=args.split,
                            dataset_revision=args.revision or "main",
                            shuffle=f"streaming shuffle seed={args.seed} "
                                    f"buffer_size={args.buffer_size}")
        augment = args.builtin_photos if args.augment is None else args.augment
        if augment:
            images = _augment(images, scales=scales, crops=args.crops_per_scale,
                              flip=args.flip, seed=args.seed)
            metadata["augmentation"] = (
                f"per photo, in order, for each crop side s*short_side with s in {list(scales)}: "
                f"{args.crops_per_scale} square crops at positions drawn uniformly "
                f"(numpy default_rng({args.seed}), one generator for all photos, top then left;"
                " a single crop when the square fills the photo)"
                + ("; each crop also mirrored left-right" if args.flip else "")
            )
        spectrum = estimate_spectrum(images, resolution=args.resolution, metadata=metadata,
                                     progress=not args.no_progress)
    except MacoHubError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    path = spectrum.save(args.out)
    print(f"{path}: {spectrum.metadata['num_images']} images, {spectrum.metadata['resolution']},"
          f" sha256 {spectrum.sha256}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
