"""The README's "Methods" figures: one small contact sheet per method, made on the demo model.

    OMP_NUM_THREADS=1 python scripts/method_figures.py --out docs/

Writes ``methods-fourier.png`` (MACO and the Fourier baseline, same classes and seeds),
``methods-inversion.png`` (photos and what two layers keep of them), ``methods-accentuation.png``
(photos and the photos accentuated towards other classes) and ``methods-diversity.png`` (variants
of one class without and with the diversity penalty). Every tile is a real run of EfficientNet-Lite0
at the library's defaults except the steps and canvas given here; thumbnails are palette PNGs so
the four files stay small. What the held-out judges (EfficientNet-Lite1/-Lite2) say of the tiles
is printed as JSON (``--json`` writes it too): the rank of each photo's class in the inversions,
p(target) on each photo and its accentuation with their luminance correlation, and the variants'
mean Gram similarity at Lite1's last block with their top-1.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from benchmark_methods import _luminance_correlation, _probs, _similarity
from PIL import Image, ImageDraw

import maco_hub
from maco_hub import objectives as obj
from maco_hub._image_files import read_image
from maco_hub.legibility.judging import judge_views
from maco_hub.models.efficientnet_lite.conversion import demo_model_path
from maco_hub.objectives.defaults import last_block
from maco_hub.spectra.sources import builtin_photos

THUMB = 128
LABEL = 14  # px of caption under each tile


def main() -> None:
    args = _arguments()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    models = {
        n: maco_hub.load_model(str(demo_model_path(n)), device="cpu") for n in ("lite0", "lite1", "lite2")
    }
    model, measured = models["lite0"], {"steps": args.steps, "canvas": args.canvas}
    photos = {photo.name: photo.pixels for photo in builtin_photos()}
    common = {"steps": args.steps, "canvas": args.canvas, "threads": 1, "progress": False, "device": "cpu"}
    classes = ["espresso", "goldfish", "daisy", "monarch"]

    maco = maco_hub.explain(model, classes=classes, batch_size=4, **common)
    fourier = maco_hub.explain(model, classes=classes, method="fourier", batch_size=4, **common)
    _sheet(
        out / "methods-fourier.png",
        [
            [(i.image, f"MACO {i.label.split(',')[0]}") for i in maco],
            [(i.image, f"Fourier {i.label.split(',')[0]}") for i in fourier],
        ],
    )

    names = ["coffee", "chelsea"]
    layers = ["efficientnet_lite.stages.4", "efficientnet_lite.stages.6"]
    inverted = {
        layer: maco_hub.explain(
            model, objectives=[obj.Inversion(photos[n], layer) for n in names], batch_size=2, **common
        )
        for layer in layers
    }
    _sheet(
        out / "methods-inversion.png",
        [
            [
                (_photo(photos[n], args.canvas), n),
                *[(inverted[layer][k].image, layer.split(".")[-1]) for layer in layers],
            ]
            for k, n in enumerate(names)
        ],
    )
    photo_class = {"coffee": "espresso", "chelsea": "tabby, tabby cat"}
    measured["inversion"] = {
        f"{n} @ {layer}": _ranks(models, inverted[layer][k].image, photo_class[n])
        for layer in layers
        for k, n in enumerate(names)
    }

    targets = {"coffee": "lemon", "chelsea": "tiger, Panthera tigris", "flower": "bee"}
    accented = [
        (n, maco_hub.explain(model, classes=[t], image=photos[n], **common)[0]) for n, t in targets.items()
    ]
    measured["accentuation"] = {
        f"{n} -> {item.label}": {
            "photo": _probs(models, _photo(photos[n], args.canvas), item.label)["p"],
            "result": _probs(models, item.image, item.label)["p"],
            "luminance_correlation": _luminance_correlation(_photo(photos[n], args.canvas), item.image),
        }
        for n, item in accented
    }
    _sheet(
        out / "methods-accentuation.png",
        [
            [(_photo(photos[n], args.canvas), n) for n, _ in accented],
            [(item.image, f"+ {item.label.split(',')[0]}") for _, item in accented],
        ],
    )

    rows = []
    for weight in (0.0, None):
        gallery = maco_hub.explain(
            model, classes=["monarch"], variants=4, diversity=weight, batch_size=4, **common
        )
        name = "independent" if weight == 0 else f"diversity {gallery[0].record.diversity['weight']:g}"
        rows.append([(item.image, f"{name} #{item.record.variant + 1}") for item in gallery])
        measured[name] = {
            "gram_similarity_lite1": _similarity(
                models["lite1"], last_block(models["lite1"]).name, [i.image for i in gallery]
            ),
            "top1": [_probs(models, item.image, item.label)["top1"] for item in gallery],
        }
    _sheet(out / "methods-diversity.png", rows)
    for path in sorted(out.glob("methods-*.png")):
        print(f"{path}: {path.stat().st_size // 1024} KB")
    print(json.dumps(measured, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(measured, indent=1), encoding="utf-8")


def _ranks(models, image: Image.Image, label: str) -> dict[str, int]:
    """Per judge, the rank of ``label`` among its classes on ``image`` (0: top-1)."""
    ranks = {}
    for name in ("lite1", "lite2"):
        judge = models[name]
        with torch.no_grad():
            probs = judge.module(judge_views(judge, image, [])).logits[0].softmax(-1)
        ranks[name] = int((probs > probs[judge.resolve_class(label)]).sum())
    return ranks


def _photo(pixels, canvas: int) -> Image.Image:
    return Image.fromarray(read_image(pixels).at_canvas(canvas))


def _sheet(path: Path, rows) -> None:
    """A grid of captioned thumbnails, saved as a palette PNG."""
    columns = max(len(row) for row in rows)
    sheet = Image.new("RGB", (columns * THUMB, len(rows) * (THUMB + LABEL)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, row in enumerate(rows):
        for c, (image, caption) in enumerate(row):
            x, y = c * THUMB, r * (THUMB + LABEL)
            sheet.paste(image.convert("RGB").resize((THUMB, THUMB), Image.Resampling.LANCZOS), (x, y))
            draw.text((x + 3, y + THUMB + 1), caption[:22], fill="black")
    sheet.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="docs")
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument("--canvas", type=int, default=256)
    parser.add_argument("--json", help="also write the judges' measurements here")
    return parser.parse_args()


if __name__ == "__main__":
    main()
