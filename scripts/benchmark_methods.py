"""Measurements of the methods beyond plain MACO rows, on EfficientNet-Lite0 judged by Lite1/Lite2.

    python scripts/benchmark_methods.py accentuation --json acc.json > acc.md
    python scripts/benchmark_methods.py inversion --json inv.json > inv.md
    python scripts/benchmark_methods.py diversity --json div.json > div.md
    python scripts/benchmark_methods.py cost --json cost.json > cost.md

* ``accentuation``: photos shipped with scikit-image/scikit-learn, each accentuated towards classes
  the held-out judges do not see in it; per setting (``--weights``, ``--layers``, ``--steps``): the
  judges' p(target) on the photo and on the result (whole canvas), how often the result's top-1 is
  the target, and the similarity to the photo (correlation of luminance at the canvas size).
* ``inversion``: photos inverted at ``--layers``; the judges' top-1/top-5 on the result contain the
  photo's own class (the class Lite0 gives the photo); luminance correlation to the photo.
* ``diversity``: ``--variants`` images per class with each ``--diversity`` weight; the mean Gram
  similarity between variants (Lite0 at the penalty layer, and Lite1 at its last block: a network
  that never saw the penalty) and the judges' top-1 on the whole canvas.
* ``cost``: seconds per image of a plain MACO row and of each method, one after the other in one
  process (same steps, canvas, batch and thread count); ratios to the MACO row.

Markdown goes to stdout, progress to stderr. Run with OMP_NUM_THREADS=1 on a shared CPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import maco_hub
from maco_hub import objectives as obj
from maco_hub._image_files import read_image
from maco_hub.engine import SHORT_RUN_CROPS, EngineConfig
from maco_hub.legibility.judging import judge_views
from maco_hub.models.efficientnet_lite.conversion import demo_model_path
from maco_hub.objectives.defaults import last_block
from maco_hub.objectives.guided import mean_gram_similarity
from maco_hub.spectra.sources import builtin_photos

JUDGES = ("lite1", "lite2")
# photo -> classes to accentuate: things that could be in the picture but that the judges do not
# see there (p < 0.05 for both on the photo, checked in the output's "photo p" column)
ACCENT_TARGETS = {
    "coffee": ["lemon", "chocolate sauce, chocolate syrup"],
    "chelsea": ["tiger, Panthera tigris", "lynx, catamount"],
    "astronaut": ["space shuttle", "bow tie, bow-tie, bowtie"],
    "flower": ["bee", "pot, flowerpot"],
}
INVERT_PHOTOS = ("coffee", "chelsea", "flower", "china")
DIVERSITY_CLASSES = ("goldfish", "monarch", "daisy", "espresso")


def main() -> None:
    args = _arguments()
    torch.manual_seed(0)
    models = {
        name: maco_hub.load_model(str(demo_model_path(name)), device="cpu") for name in ("lite0", *JUDGES)
    }
    photos = {photo.name: photo.pixels for photo in builtin_photos()}
    run = {"what": args.what, "threads": torch.get_num_threads(), "canvas": args.canvas, "results": []}
    rows = {
        "accentuation": _accentuation,
        "inversion": _inversion,
        "diversity": _diversity,
        "cost": _cost,
    }[args.what](args, models, photos, run["results"])
    print(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(run, indent=1, default=str), encoding="utf-8")


# ------------------------------------------------------------------------------- accentuation


def _accentuation(args, models, photos, results) -> str:
    lite0 = models["lite0"]
    for steps in args.steps:
        for layer in args.layers:
            for weight in args.weights:
                config = _config(args, steps)
                rows, seconds = [], 0.0
                for name, targets in ACCENT_TARGETS.items():
                    start = time.perf_counter()
                    gallery = maco_hub.explain(
                        lite0,
                        classes=targets,
                        image=photos[name],
                        image_layer=layer,
                        image_weight=weight,
                        config=config,
                        progress=False,
                        device="cpu",
                        batch_size=len(targets),
                    )
                    seconds += time.perf_counter() - start
                    seed = Image.fromarray(read_image(photos[name]).at_canvas(args.canvas))
                    for item in gallery:
                        rows.append(
                            {
                                "photo": name,
                                "target": item.label,
                                "photo_p": _probs(models, seed, item.label),
                                "result_p": _probs(models, item.image, item.label),
                                "luminance_correlation": _luminance_correlation(seed, item.image),
                            }
                        )
                        _save(args, f"acc-{steps}-{layer}-{weight}-{name}-{item.class_id}", item.image)
                results.append(
                    {
                        "steps": steps,
                        "layer": layer,
                        "weight": weight,
                        "rows": rows,
                        "seconds_per_image": seconds / len(rows),
                    }
                )
                _log(f"accentuation {steps} steps, layer {layer}, weight {weight}: " + _acc_cells(rows)[-1])
    head = (
        "| steps | closeness in | weight | photo p(target) | result p(target) | result top-1 "
        "| luminance corr. | s / image |"
    )
    lines = [head, "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        cells = _acc_cells(r["rows"])
        lines.append(
            f"| {r['steps']} | {r['layer'] or 'pixels'} | {r['weight']:g} | {' | '.join(cells[:-1])} | "
            f"{r['seconds_per_image']:.0f} |"
        )
    return "\n".join(lines)


def _acc_cells(rows) -> list[str]:
    photo = np.mean([np.mean(list(r["photo_p"]["p"].values())) for r in rows])
    result = np.mean([np.mean(list(r["result_p"]["p"].values())) for r in rows])
    top1 = np.mean([np.mean(list(r["result_p"]["top1"].values())) for r in rows])
    corr = np.mean([r["luminance_correlation"] for r in rows])
    return [
        f"{photo:.3f}",
        f"{result:.3f}",
        f"{top1:.2f}",
        f"{corr:.2f}",
        f"p {photo:.3f} -> {result:.3f}, top-1 {top1:.2f}, luminance corr. {corr:.2f}",
    ]


# ------------------------------------------------------------------------------- inversion


def _inversion(args, models, photos, results) -> str:
    lite0 = models["lite0"]
    for steps in args.steps:
        for layer in args.layers:
            rows, seconds = [], 0.0
            objectives = [obj.Inversion(photos[name], layer) for name in INVERT_PHOTOS]
            start = time.perf_counter()
            gallery = maco_hub.explain(
                lite0,
                objectives=objectives,
                config=_config(args, steps),
                progress=False,
                device="cpu",
                batch_size=len(objectives),
            )
            seconds = time.perf_counter() - start
            for name, item in zip(INVERT_PHOTOS, gallery, strict=True):
                seed = Image.fromarray(read_image(photos[name]).at_canvas(args.canvas))
                label = lite0.label(int(_logits(lite0, seed).argmax()))  # the photo's class, for Lite0
                rows.append(
                    {
                        "photo": name,
                        "class": label,
                        "photo_p": _probs(models, seed, label),
                        "result_p": _probs(models, item.image, label),
                        "luminance_correlation": _luminance_correlation(seed, item.image),
                    }
                )
                _save(args, f"inv-{steps}-{layer}-{name}", item.image)
            results.append(
                {"steps": steps, "layer": layer, "rows": rows, "seconds_per_image": seconds / len(rows)}
            )
            _log(f"inversion {steps} steps at {layer}: " + json.dumps(_inv_cells(rows)))
    lines = [
        "| steps | layer | judges' top-1 | top-5 | p(class) on the result (photo) | luminance corr. "
        "| s / image |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        c = _inv_cells(r["rows"])
        lines.append(
            f"| {r['steps']} | {r['layer']} | {c['top1']:.2f} | {c['top5']:.2f} "
            f"| {c['p']:.2f} ({c['photo_p']:.2f}) "
            f"| {c['corr']:.2f} | {r['seconds_per_image']:.0f} |"
        )
    return "\n".join(lines)


def _inv_cells(rows) -> dict:
    mean = lambda key, field: float(np.mean([np.mean(list(r[key][field].values())) for r in rows]))  # noqa: E731
    return {
        "top1": mean("result_p", "top1"),
        "top5": mean("result_p", "top5"),
        "p": mean("result_p", "p"),
        "photo_p": mean("photo_p", "p"),
        "corr": float(np.mean([r["luminance_correlation"] for r in rows])),
    }


# ------------------------------------------------------------------------------- diversity


def _diversity(args, models, photos, results) -> str:
    lite0, lite1 = models["lite0"], models["lite1"]
    judge_layer = last_block(lite1)
    for steps in args.steps:
        for weight in args.diversity:
            start = time.perf_counter()
            gallery = maco_hub.explain(
                lite0,
                classes=list(DIVERSITY_CLASSES),
                variants=args.variants,
                diversity=weight,
                config=_config(args, steps),
                progress=False,
                device="cpu",
                batch_size=args.variants * args.groups_per_batch,
            )
            seconds = time.perf_counter() - start
            rows = []
            for c in range(len(DIVERSITY_CLASSES)):
                items = list(gallery)[c * args.variants : (c + 1) * args.variants]
                layer = items[0].record.diversity["layer"]
                rows.append(
                    {
                        "class": items[0].label,
                        "gram_lite0": _similarity(lite0, layer, [i.image for i in items]),
                        "gram_lite1": _similarity(lite1, judge_layer.name, [i.image for i in items]),
                        "top1": [_probs(models, i.image, i.label)["top1"] for i in items],
                    }
                )
                for v, item in enumerate(items):
                    _save(args, f"div-{steps}-{weight}-{item.class_id}-{v}", item.image)
            results.append(
                {
                    "steps": steps,
                    "diversity": weight,
                    "layer": rows[0] and layer,
                    "rows": rows,
                    "seconds_per_image": seconds / len(gallery),
                }
            )
            _log(f"diversity {weight}: " + json.dumps(_div_cells(rows)))
    lines = [
        "| steps | diversity | Gram similarity (Lite0, penalty layer) "
        "| Gram similarity (Lite1, last block) | "
        "judges' top-1 | s / image |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        c = _div_cells(r["rows"])
        lines.append(
            f"| {r['steps']} | {r['diversity']:g} | {c['lite0']:.3f} | {c['lite1']:.3f} | {c['top1']:.2f} | "
            f"{r['seconds_per_image']:.0f} |"
        )
    return "\n".join(lines)


def _div_cells(rows) -> dict:
    top1 = [np.mean(list(t.values())) for r in rows for t in r["top1"]]
    return {
        "lite0": float(np.mean([r["gram_lite0"] for r in rows])),
        "lite1": float(np.mean([r["gram_lite1"] for r in rows])),
        "top1": float(np.mean(top1)),
    }


def _similarity(model, layer: str, images) -> float:
    from maco_hub.models.hooks import capture, layer_table

    pixels = torch.cat([judge_views(model, image, []) for image in images])
    with capture(model, [layer]) as store, torch.no_grad():
        model.forward(pixels)
        acts = store.take()[layer]
    return mean_gram_similarity(acts, layer_table(model)[layer])


# ------------------------------------------------------------------------------- cost


def _cost(args, models, photos, results) -> str:
    lite0 = models["lite0"]
    steps = args.steps[0]
    config = _config(args, steps)
    classes = list(DIVERSITY_CLASSES)
    layer = args.layers[0] if args.layers and args.layers[0] else "efficientnet_lite.stages.3"
    runs = {
        "MACO row": {"classes": classes},
        "Fourier row": {"classes": classes, "method": "fourier"},
        "accentuation, pixels": {"classes": classes, "image": photos["coffee"]},
        f"accentuation, {layer}": {"classes": classes, "image": photos["coffee"], "image_layer": layer},
        "inversion": {
            "objectives": [obj.Inversion(photos[n], "efficientnet_lite.stages.5") for n in INVERT_PHOTOS]
        },
        f"{len(classes)} variants with diversity": {"classes": classes[:1], "variants": len(classes)},
    }
    for name, options in runs.items():
        start = time.perf_counter()
        gallery = maco_hub.explain(
            lite0, config=config, progress=False, device="cpu", batch_size=4, **options
        )
        seconds = (time.perf_counter() - start) / len(gallery)
        results.append({"run": name, "seconds_per_image": seconds, "images": len(gallery)})
        _log(f"{name}: {seconds:.1f} s / image")
    base = results[0]["seconds_per_image"]
    lines = ["| run (batch of 4 images) | s / image | ÷ MACO row |", "|---|---:|---:|"]
    lines += [
        f"| {r['run']} | {r['seconds_per_image']:.1f} | {r['seconds_per_image'] / base:.2f}× |"
        for r in results
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------- shared


def _config(args, steps: int) -> EngineConfig:
    crops = dict(SHORT_RUN_CROPS) if args.short_run_crops else {}
    if args.crop_scale:
        crops["crop_scale"] = tuple(args.crop_scale)
    return dataclasses.replace(
        EngineConfig(),
        steps=steps,
        canvas=args.canvas,
        threads=1,
        learning_rate=args.learning_rate,
        method=args.method,
        **crops,
    )


def _logits(model, image: Image.Image) -> torch.Tensor:
    with torch.no_grad():
        return model.module(judge_views(model, image, [])).logits[0].float()


def _probs(models, image: Image.Image, label: str) -> dict:
    """Per judge: p(label), whether it is top-1 and in the top-5 (the whole image at the judge's input)."""
    out = {"p": {}, "top1": {}, "top5": {}}
    for name in JUDGES:
        judge = models[name]
        probs = _logits(judge, image).softmax(-1)
        index = judge.resolve_class(label)
        out["p"][name] = float(probs[index])
        out["top1"][name] = bool(probs.argmax() == index)
        out["top5"][name] = bool(index in probs.topk(5).indices.tolist())
    return out


def _luminance_correlation(a: Image.Image, b: Image.Image) -> float:
    weights = np.array([0.299, 0.587, 0.114])
    la = (np.asarray(a.convert("RGB").resize(b.size), dtype=np.float64) @ weights).ravel()
    lb = (np.asarray(b.convert("RGB"), dtype=np.float64) @ weights).ravel()
    return float(np.corrcoef(la, lb)[0, 1])


def _save(args, name: str, image: Image.Image) -> None:
    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
        image.save(Path(args.keep) / f"{name.replace('/', '_').replace(' ', '_')}.png")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=["accentuation", "inversion", "diversity", "cost"])
    numbers = lambda kind: lambda text: [kind(v) for v in text.split(",")]  # noqa: E731
    parser.add_argument("--steps", type=numbers(int), default=[128], help="comma-separated (default: 128)")
    parser.add_argument("--canvas", type=int, default=384)
    parser.add_argument("--weights", type=numbers(float), default=[1.0], help="accentuation image weights")
    parser.add_argument(
        "--layers",
        type=lambda t: [None if v in ("", "none") else v for v in t.split(",")],
        default=[None],
        help="accentuation closeness layers ('none': pixels) / inversion layers",
    )
    parser.add_argument("--diversity", type=numbers(float), default=[0.0, 1.0], help="diversity weights")
    parser.add_argument("--variants", type=int, default=4)
    parser.add_argument("--groups-per-batch", type=int, default=1)
    parser.add_argument("--learning-rate", type=float, default=1.0)
    parser.add_argument("--method", default="maco")
    parser.add_argument("--short-run-crops", action="store_true", help="SHORT_RUN_CROPS (1:1 alternation)")
    parser.add_argument("--crop-scale", type=numbers(float), help="fixed crop side range LOW,HIGH")
    parser.add_argument("--json")
    parser.add_argument("--keep", metavar="DIR", help="also save every result image under DIR")
    return parser.parse_args()


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
