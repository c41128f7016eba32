"""Text objectives, cosine against dot × cos^p: which form gives pictures the model sees as the prompt.

    OMP_NUM_THREADS=1 python scripts/benchmark_text.py openai/clip-vit-base-patch32 \\
        google/siglip-base-patch16-224 --steps 256 --seeds 0 1 > text.md

For every model, prompt, seed and form of :class:`maco_hub.objectives.Text` (``cosine``, and
``dot × cos^p`` for each ``--powers`` p) the prompt is optimized with :func:`maco_hub.explain`, and
each picture is judged by the plain cosine between its image embedding and the prompt's text
embedding (the checkpoint's own, :func:`maco_hub.models.joint.joint_space`): on the whole canvas
resized to the model input (what a thumbnail shows), on ``--crops`` random crops of 25–60 % of the
canvas (what a zoomed-in reader sees), and as a margin: the whole canvas' cosine to its prompt minus
its mean cosine to the other prompts (a picture of *its* prompt, not of text in general). The
image embedding's norm is listed too (dot × cos^p also rewards a longer embedding). Cells are means
over prompts and seeds; the Markdown table goes to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

import maco_hub
from maco_hub import objectives as obj
from maco_hub.models.hooks import capture
from maco_hub.models.joint import joint_space

PROMPTS = (
    "a red car",
    "a dog",
    "a bowl of fruit",
    "a lighthouse at sunset",
    "a snowy mountain",
    "a cup of coffee",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", help="CLIP or SigLIP checkpoints (Hub ids or folders)")
    parser.add_argument("--prompts", nargs="+", default=list(PROMPTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--powers", nargs="+", type=float, default=[1.0, 2.0])
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--canvas", type=int, default=512)
    parser.add_argument("--crops", type=int, default=16)
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    forms = [None, *args.powers]
    print("| model | objective | whole canvas cos | crops cos | margin over other prompts | norm | s/image |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name in args.models:
        loaded = maco_hub.load_model(name, device=args.device)
        for power in forms:
            cells, started = [], time.perf_counter()
            for seed in args.seeds:
                texts = [obj.Text(p, cosine_power=power) for p in args.prompts]
                gallery = maco_hub.explain(
                    loaded, objectives=texts, steps=args.steps, canvas=args.canvas, seed=seed,
                    batch_size=len(texts), progress=False,
                )  # fmt: skip
                for index, item in enumerate(gallery):
                    cells.append(judge(loaded, item.image, args.prompts, index, args.crops, seed))
            seconds = (time.perf_counter() - started) / len(cells)
            means = np.mean(np.array(cells), axis=0)
            label = texts[0].description.split("(")[-1].rstrip(")")
            values = " | ".join(f"{v:.3f}" for v in means)
            print(f"| {loaded.model_id} | {label} | {values} | {seconds:.1f} |")
            print(f"{loaded.model_id} {label}: done", file=sys.stderr)
    return 0


def judge(loaded, image, prompts: list[str], index: int, crops: int, seed: int) -> list[float]:
    """[whole canvas cosine, mean crop cosine, margin over the other prompts, embedding norm]."""
    space = joint_space(loaded)
    pixels = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float() / 255
    size = loaded.preprocessing.size
    views = [_resized(pixels, size)] + [_resized(crop, size) for crop in _crops(pixels, crops, seed)]
    device = next(loaded.module.parameters()).device
    batch = loaded.preprocessing.normalize(torch.stack(views).to(device))
    with torch.no_grad(), capture(loaded, [space.pooled_layer]) as store:
        loaded.forward(batch)
        embeddings = space.image_embeddings(store.take()[space.pooled_layer])
    texts = torch.stack([space.embed_text(p) for p in prompts]).to(embeddings.device)
    cosines = F.normalize(embeddings, dim=-1) @ texts.T  # (views, prompts)
    whole = cosines[0]
    others = torch.cat([whole[:index], whole[index + 1 :]])
    return [
        float(whole[index]),
        float(cosines[1:, index].mean()),
        float(whole[index] - others.mean()),
        float(embeddings[0].norm()),
    ]


def _crops(pixels: torch.Tensor, count: int, seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    side = pixels.shape[-1]
    out = []
    for _ in range(count):
        length = int(side * (0.25 + 0.35 * torch.rand((), generator=generator)))
        y, x = (int(torch.randint(0, side - length + 1, (), generator=generator)) for _ in range(2))
        out.append(pixels[:, y : y + length, x : x + length])
    return out


def _resized(pixels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(pixels[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]


if __name__ == "__main__":
    sys.exit(main())
