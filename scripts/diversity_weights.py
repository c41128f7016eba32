"""How alike diversity variants are per penalty weight, judged by a network that never saw it.

    OMP_NUM_THREADS=1 python scripts/diversity_weights.py 0 1 4 16

Four goldfish variants on EfficientNet-Lite0 (96 steps, canvas 256, one thread) per weight; prints
the mean cosine between their normalized Gram matrices at EfficientNet-Lite1's last block and
whether each variant is in Lite1's top-5 for goldfish (README "Methods": diversity).
"""

from __future__ import annotations

import argparse
import time

import torch

import maco_hub
from maco_hub.legibility.judging import judge_views
from maco_hub.models.efficientnet_lite.conversion import demo_model_path
from maco_hub.models.hooks import capture, layer_table
from maco_hub.objectives.defaults import last_block
from maco_hub.objectives.guided import mean_gram_similarity


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("weights", type=float, nargs="+", help="diversity weights (0: independent seeds)")
    parser.add_argument("--steps", type=int, default=96)
    parser.add_argument("--canvas", type=int, default=256)
    args = parser.parse_args()
    lite0, lite1 = (maco_hub.load_model(str(demo_model_path(n)), device="cpu") for n in ("lite0", "lite1"))
    layer, goldfish = last_block(lite1).name, lite1.resolve_class("goldfish")
    for weight in args.weights:
        start = time.perf_counter()
        gallery = maco_hub.explain(
            lite0, classes=["goldfish"], variants=4, diversity=weight, steps=args.steps,
            canvas=args.canvas, threads=1, progress=False, device="cpu",
        )  # fmt: skip
        views = [judge_views(lite1, item.image, []) for item in gallery]
        with capture(lite1, [layer]) as store, torch.no_grad():
            lite1.forward(torch.cat(views))
            similarity = mean_gram_similarity(store.take()[layer], layer_table(lite1)[layer])
            top5 = [goldfish in lite1.module(v).logits[0].topk(5).indices.tolist() for v in views]
        print(
            f"weight {weight:g}: similarity {float(similarity):.3f}, in Lite1's top-5 {sum(top5)} of 4, "
            f"{time.perf_counter() - start:.0f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
