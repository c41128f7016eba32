"""Seconds per image of MACO on the real EfficientNet-Lite0, for several batch sizes, in one run.

    python scripts/benchmark.py --steps 4 --batch-sizes 1 8 32 [--crops-per-forward 0 12]
                                [--device cuda] [--precision bf16]

Each batch size runs ``--steps`` steps after one warm-up step (model load and conversion are not
timed); the table gives seconds per image for those steps, per image-step, and the speed-up
relative to the first row, all measured in the same process. ``--crops-per-forward`` lists
micro-batch sizes to try (0: the engine's default, all crops in one call on CUDA, 4 on the CPU).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import platform
import time

import torch

from maco_hub import objectives
from maco_hub.demo_model import demo_model_path
from maco_hub.engine import EngineConfig, optimize, resolve_device
from maco_hub.models import load_model
from maco_hub.scoring import scoring
from maco_hub.spectra import load_spectrum


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--canvas", type=int, default=EngineConfig.canvas)
    parser.add_argument("--crops", type=int, default=EngineConfig.crops)
    parser.add_argument("--device", default=None)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--crops-per-forward", type=int, nargs="+", default=[0])
    args = parser.parse_args()

    device = resolve_device(args.device)
    loaded = load_model(str(demo_model_path()), device=device)
    spectrum = load_spectrum()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"device: {device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"model: EfficientNet-Lite0, canvas {args.canvas}, {args.crops} crops/image/step, "
          f"{args.steps} timed steps, {args.precision}\n")
    print("| batch | crops per forward | s/image | s/image-step | speed-up |")
    print("|---:|---:|---:|---:|---:|")
    baseline = None
    for batch, chunk in itertools.product(args.batch_sizes, args.crops_per_forward):
        config = EngineConfig(steps=args.steps, canvas=args.canvas, crops=args.crops,
                              precision=args.precision, crops_per_forward=chunk or None)
        warmup = dataclasses.replace(config, steps=1)
        wanted = [objectives.ClassLogit(c) for c in range(batch)]
        seeds = list(range(batch))
        with scoring(loaded, wanted) as score_fn:
            optimize(score_fn, loaded.preprocessing, seeds=seeds, config=warmup, spectrum=spectrum,
                     device=device)
            _synchronize(device)
            start = time.perf_counter()
            optimize(score_fn, loaded.preprocessing, seeds=seeds, config=config, spectrum=spectrum,
                     device=device)
            _synchronize(device)
            elapsed = time.perf_counter() - start
        per_image = elapsed / batch
        baseline = baseline or per_image
        chunk_text = chunk or "default"
        print(f"| {batch} | {chunk_text} | {per_image:.3f} | {per_image / args.steps:.4f} | "
              f"{baseline / per_image:.2f}x |", flush=True)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


if __name__ == "__main__":
    main()
