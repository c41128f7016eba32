"""The validation table of the artifact measures (maco_hub.legibility.artifacts): natural photos,
photos with a synthetic lattice, upscaled photos and random-phase MACO images of given spectra.

    python scripts/artifact_photos.py --json artifact-photos.json \\
        --spectrum public=../shared/reference/imagenet_decorrelated_512.npy > artifact-photos.md

Photos: the colour photos of scikit-image / scikit-learn / matplotlib (``pip install
maco_hub[photos]``; the photos the shipped spectrum was estimated from), centre square, at their
own size and resized (PIL bicubic) to each ``--canvases`` side. Lattices: each photo at 512 px plus
a faint grid of lines every P px (amplitude A on [0, 1]). Upscaled: a 256, 292 or 341 px copy of
each photo scaled to 512 px, nearest neighbour, bilinear or bicubic (what reading a small crop at
a larger model input does). Random phase: MACO images of the shipped spectrum and of each
``--spectrum LABEL=FILE`` (a .npy magnitude, a spectrum file or a Hub repo id; as
scripts/benchmark_quality.py reads them) with the engine's initial phase of seeds 0-2, no
optimization. Pictures: every row of a gallery folder, or every image of a folder, of each
``--pictures LABEL=FOLDER``. The Markdown table (median [min, max] per set) goes to stdout;
``--json`` keeps every measured image.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from benchmark_quality import _spectrum as spectrum_from  # .npy, spectrum file or repo id
from PIL import Image

import maco_hub
from maco_hub.engine.param import FourierPhaseImage
from maco_hub.gallery.layout import MANIFEST_NAME
from maco_hub.legibility.artifacts import artifact_measures
from maco_hub.spectra.loading import load_spectrum
from maco_hub.spectra.sources import builtin_photos

LATTICES = ((3, 0.03), (3.5, 0.03), (4, 0.03), (4, 0.01))  # (period px, amplitude)
UPSCALES = ((256, "nearest"), (341, "nearest"), (292, "nearest"), (256, "bilinear"), (341, "bilinear"))
UPSCALES += ((292, "bicubic"),)
SEEDS = (0, 1, 2)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def pictures(folder: Path) -> list[tuple[str, Image.Image]]:
    """(name, RGB picture) of every row of a gallery folder (its label, or its objective), or of
    every image of a folder of images (its file name), in order."""
    if (folder / MANIFEST_NAME).is_file():
        return [
            (item.label or item.objective, item.image.convert("RGB"))
            for item in maco_hub.load_gallery(folder)
        ]
    if not folder.is_dir():
        raise SystemExit(f"error: {folder} is neither a gallery folder nor a folder of images")
    found = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            with Image.open(path) as image:
                found.append((path.stem, image.convert("RGB")))
    return found


def square(pixels: np.ndarray) -> Image.Image:
    height, width = pixels.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return Image.fromarray(pixels[top : top + side, left : left + side])


def with_lattice(image: Image.Image, period: float, amplitude: float) -> Image.Image:
    """``image`` plus horizontal and vertical lines every ``period`` px (zero-mean, ``amplitude``)."""
    pixels = np.asarray(image, dtype=np.float64) / 255
    lines = (np.arange(pixels.shape[0]) % period < 1).astype(float)
    grid = np.maximum(lines[:, None], lines[None, :])
    pixels = np.clip(pixels + amplitude * (grid - grid.mean())[..., None], 0, 1)
    return Image.fromarray(np.round(pixels * 255).astype(np.uint8))


def random_phase(magnitude: torch.Tensor, side: int, seed: int) -> np.ndarray:
    """The engine's picture of ``magnitude`` (for a ``side`` canvas) at its initial phase of ``seed``."""
    with torch.no_grad():
        return FourierPhaseImage(magnitude, (side, side), [seed])()[0].permute(1, 2, 0).double().numpy()


def measured(canvases: list[int], spectra: dict, folders: list[tuple[str, Path]]) -> list[dict]:
    rows = []

    def add(group: str, name: str, image) -> None:
        side = image.size[0] if isinstance(image, Image.Image) else image.shape[0]
        rows.append({"group": group, "name": name, "side": side, **artifact_measures(image)})

    for photo in builtin_photos():
        native = square(photo.pixels)
        add("photo-native", photo.name, native)
        for side in canvases:
            add(f"photo-{side}", photo.name, native.resize((side, side), Image.Resampling.BICUBIC))
        base = native.resize((512, 512), Image.Resampling.BICUBIC)
        for period, amplitude in LATTICES:
            add(f"lattice P{period} A{amplitude}", photo.name, with_lattice(base, period, amplitude))
        for small, how in UPSCALES:
            copy = native.resize((small, small), Image.Resampling.BICUBIC)
            upscaled = copy.resize((512, 512), getattr(Image.Resampling, how.upper()))
            add(f"upscaled {small}->512 {how}", photo.name, upscaled)
    for label, spectrum in spectra.items():
        for side in canvases:
            magnitude = spectrum.resized(side, side).magnitude
            for seed in SEEDS:
                add(f"random-phase {label} {side}", f"seed {seed}", random_phase(magnitude, side, seed))
    for label, folder in folders:  # folders of the same label make one set
        for name, image in pictures(folder):
            add(f"pictures: {label}", name, image)
    return rows


def table(rows: list[dict]) -> str:
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["group"], []).append(row)

    def spread(values: list[float]) -> str:
        return f"{np.median(values):.1f} [{min(values):.1f}, {max(values):.1f}]"

    lines = [
        "| set | n | grid_db median [min, max] | peak_db median [min, max] | haze median "
        "| RMS contrast median | border excess median |",
        "|---|---:|---|---|---:|---:|---:|",
    ]
    for group, members in groups.items():
        values = {m: [r[m] for r in members] for m in ("grid_db", "peak_db", "haze", "rms_contrast")}
        border = np.median([r["border_excess"] for r in members])
        lines.append(
            f"| {group} | {len(members)} | {spread(values['grid_db'])} | {spread(values['peak_db'])} | "
            f"{np.median(values['haze']):.2f} | {np.median(values['rms_contrast']):.2f} | {border:+.3f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", help="also write every measured image to this JSON file")
    parser.add_argument(
        "--spectrum",
        action="append",
        default=[],
        metavar="LABEL=FILE",
        help="also random-phase images of this spectrum (repeatable)",
    )
    parser.add_argument(
        "--pictures",
        action="append",
        default=[],
        metavar="LABEL=FOLDER",
        help="also every picture of this gallery folder or folder of images (repeatable)",
    )
    parser.add_argument("--canvases", type=int, nargs="+", default=[384, 512, 1024])
    args = parser.parse_args()

    def labelled(option: str, item: str) -> tuple[str, str]:
        label, sep, source = item.partition("=")
        if not sep or not label or not source:
            parser.error(f"--{option} {item!r} must be LABEL=SOURCE, e.g. public=imagenet_512.npy")
        return label, source

    spectra = {"shipped": load_spectrum()}
    spectra.update(
        (label, spectrum_from(source)) for label, source in (labelled("spectrum", s) for s in args.spectrum)
    )
    folders = [(label, Path(source)) for label, source in (labelled("pictures", p) for p in args.pictures)]
    rows = measured(args.canvases, spectra, folders)
    print(table(rows), end="")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
