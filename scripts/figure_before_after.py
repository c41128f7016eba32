"""Before/after figure for the README: the same class from two or more runs, each as the whole
picture and a 100 % crop side by side, captioned with its artifact measures.

    python scripts/figure_before_after.py --out docs/grid-before-after.png --name espresso \\
        "before (0.1 defaults)=kept/0-shipped-seed0" "after=kept/1-shipped-seed0"

Each ``LABEL=SOURCE`` is a gallery folder (its first row whose label starts with ``--name``,
compared case-insensitively) or a folder of images (its first PNG, JPEG or WebP, by file name,
whose name starts with ``--name``). One band per ``--name`` and source, top to bottom: a caption
(label, class, grid dB, haze, contrast; :mod:`maco_hub.legibility.artifacts`), then the whole
picture scaled to ``--thumb`` px and beside it a ``--crop`` px square of the picture's own pixels
(the centre, or ``--at TOP,LEFT`` as fractions of the canvas) shown ``--zoom`` times larger by
nearest neighbour (1: at 100 %). The PNG is written atomically.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from artifact_photos import pictures  # every picture of a gallery folder or a folder of images
from PIL import Image, ImageDraw

from maco_hub._files import atomic_write
from maco_hub.legibility.artifacts import artifact_measures

GAP = 8  # px between the whole picture and its crop, and between bands
CAPTION = 18  # px of caption text above each band


def picture(source: Path, name: str) -> tuple[str, Image.Image]:
    """(name, picture) of the first picture of ``source`` whose name starts with ``name``."""
    found = pictures(source)
    for found_name, image in found:
        if found_name.casefold().startswith(name.casefold()):
            return found_name, image
    names = sorted({found_name for found_name, _ in found})
    raise SystemExit(f"error: {source} has no picture named {name!r}...; it has {names}")


def band(label: str, name: str, image: Image.Image, args: argparse.Namespace) -> Image.Image:
    """One source's band: caption, whole picture, crop."""
    m = artifact_measures(image)
    caption = (
        f"{label} ({name.split(',')[0]}): grid {m['grid_db']:.1f} dB, haze {m['haze']:.2f}, "
        f"contrast {m['rms_contrast']:.2f}"
    )
    side = min(args.crop, *image.size)
    top = round(args.at[0] * (image.height - side)) if args.at else (image.height - side) // 2
    left = round(args.at[1] * (image.width - side)) if args.at else (image.width - side) // 2
    crop = image.crop((left, top, left + side, top + side))
    crop = crop.resize((side * args.zoom,) * 2, Image.Resampling.NEAREST)
    whole = image.resize(
        (args.thumb, round(args.thumb * image.height / image.width)), Image.Resampling.LANCZOS
    )
    height = CAPTION + max(whole.height, crop.height)
    out = Image.new("RGB", (whole.width + GAP + crop.width, height), "white")
    ImageDraw.Draw(out).text((2, 3), caption, fill="black")
    out.paste(whole, (0, CAPTION))
    out.paste(crop, (whole.width + GAP, CAPTION))
    return out


def figure(runs: list[tuple[str, Path]], names: list[str], args: argparse.Namespace) -> Image.Image:
    bands = [band(label, *picture(source, name), args) for name in names for label, source in runs]
    width = max(b.width for b in bands)
    sheet = Image.new("RGB", (width, sum(b.height for b in bands) + GAP * (len(bands) - 1)), "white")
    y = 0
    for b in bands:
        sheet.paste(b, (0, y))
        y += b.height + GAP
    return sheet


def _run(text: str) -> tuple[str, Path]:
    label, sep, source = text.partition("=")
    if not sep or not label or not source:
        raise argparse.ArgumentTypeError(f"{text!r} must be LABEL=FOLDER, e.g. before=kept/0-shipped-seed0")
    return label, Path(source)


def _fractions(text: str) -> tuple[float, float]:
    try:
        top, left = (float(part) for part in text.split(","))
    except ValueError:
        top = left = -1.0
    if not (0 <= top <= 1 and 0 <= left <= 1):
        raise argparse.ArgumentTypeError(f"{text!r} must be TOP,LEFT with fractions of 0 to 1, e.g. 0.5,0.25")
    return top, left


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", type=_run, metavar="LABEL=SOURCE")
    parser.add_argument("--name", action="append", required=True, help="class to show (repeatable)")
    parser.add_argument("--out", required=True, type=Path, help="the PNG to write")
    parser.add_argument("--thumb", type=int, default=256, help="side of the whole picture, px (default 256)")
    parser.add_argument("--crop", type=int, default=256, help="side of the crop, canvas px (default 256)")
    parser.add_argument(
        "--zoom", type=int, default=1, choices=range(1, 9), help="crop magnification (default 1)"
    )
    parser.add_argument(
        "--at", type=_fractions, help="crop position TOP,LEFT (fractions; default the centre)"
    )
    args = parser.parse_args(argv)
    if len(args.runs) < 2:
        parser.error("give two or more LABEL=SOURCE to compare")
    if not (16 <= args.thumb <= 2048 and 16 <= args.crop <= 2048):
        parser.error("--thumb and --crop must be 16 to 2048 px")
    sheet = figure(args.runs, args.name, args)
    data = io.BytesIO()
    sheet.save(data, format="PNG", optimize=True)
    atomic_write(args.out, data.getvalue())
    print(
        f"wrote {args.out} ({sheet.width}x{sheet.height} px, {args.out.stat().st_size // 1024} KiB)",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
