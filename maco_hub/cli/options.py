"""What every ``maco-hub`` command shares: option groups defined once, table output, logging.

CLI-only (the library never imports it); only the standard library (and :mod:`maco_hub.gallery.keys`, which
needs nothing else) loads here, so building the parser stays fast. Each ``add_*`` function adds one
group of options to a parser. Everything printed from data (tables, messages, logs) goes through
:func:`maco_hub._text.visible`, so a label holding terminal escapes (``\x1b]0;...\x07``) is shown as
text instead of run.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from .._numbers import MAX_SEED
from .._text import visible

DEMO_MODEL = "efficientnet-lite0"  # the demo model's short name, accepted by every command


def common_options() -> argparse.ArgumentParser:
    """Parent parser of every command: --debug and --quiet, also accepted after the command.

    ``SUPPRESS`` defaults keep a value given before the command (on the main parser) when the
    command's own parser does not see the option again.
    """
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks and debug logs"
    )
    common.add_argument(
        "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bars or info messages"
    )
    return common


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    """MODEL plus where to load it from (--revision, --trust-remote-code)."""
    parser.add_argument("model", help=f"Hub repo id, local folder, or {DEMO_MODEL} (the offline demo model)")
    parser.add_argument("--revision", help="model revision: branch, tag or commit (default: main)")
    parser.add_argument(
        "--trust-remote-code", action="store_true", help="allow the model repo's own Python code to run"
    )


def add_explain_options(
    parser: argparse.ArgumentParser, *, steps: int | None = None, canvas: int | None = None, default_out: str
) -> None:
    """Every option of ``explain`` and ``demo`` besides what to visualize, in one place."""
    parser.add_argument(
        "--steps",
        type=int,
        default=steps,
        help="optimization steps (default: %s)" % (steps or "engine default, 256"),
    )
    parser.add_argument(
        "--canvas",
        type=int,
        default=canvas,
        help="canvas side in px (default: %s)" % (canvas or "engine default, 512"),
    )
    parser.add_argument("--batch-size", type=int, default=8, help="images optimized at once")
    parser.add_argument("--seed", type=int, default=0, help=f"base seed, 0 to {MAX_SEED} (default: 0)")
    parser.add_argument("--device", help="torch device, e.g. cpu or cuda (default: cuda if present)")
    parser.add_argument("--spectrum", help="spectrum file or Hub repo id (default: shipped one)")
    parser.add_argument(
        "--threads",
        type=int,
        help="CPU threads (default: as many as CPUs are idle; 1 on a busy shared machine)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        default=None,
        help="torch.compile the model's score function (pays off on long GPU runs)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(default_out),
        help="gallery folder, created or extended (default: %(default)s)",
    )
    parser.add_argument("--push", metavar="REPO_ID", help="also push the gallery to this dataset repo")
    add_push_options(parser, revision="--hub-revision")
    add_method_options(parser)


def add_method_options(parser: argparse.ArgumentParser) -> None:
    """The parameterization, feature accentuation and variants (README "Methods")."""
    group = parser.add_argument_group("methods", "the Fourier baseline, accentuation, variants")
    group.add_argument(
        "--method", help="image parameterization: maco (default) or fourier (the classic baseline)"
    )
    group.add_argument(
        "--image", metavar="PATH", help="accentuate: start from this image and stay close to it"
    )
    group.add_argument(
        "--image-layer", metavar="LAYER", help="measure closeness to --image in this layer (default: pixels)"
    )
    group.add_argument("--image-weight", type=float, metavar="W", help="weight of the closeness to --image")
    group.add_argument(
        "--variants", type=int, default=1, metavar="N", help="images per objective (default: 1)"
    )
    group.add_argument(
        "--diversity", type=float, metavar="W", help="weight of the penalty between variants (0: independent)"
    )
    group.add_argument(
        "--diversity-layer", metavar="LAYER", help="layer of the diversity penalty (default: the objective's)"
    )


def explain_arguments(args: argparse.Namespace) -> dict:
    """The keyword arguments of ``maco_hub.explain`` that :func:`add_explain_options` holds."""
    return {
        "steps": args.steps,
        "canvas": args.canvas,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "device": args.device,
        "spectrum": args.spectrum,
        "out": args.out,
        "threads": args.threads,
        "compile": args.compile,
        "progress": show_progress(args),
        "method": args.method,
        "image": args.image,
        "image_layer": args.image_layer,
        "image_weight": args.image_weight,
        "variants": args.variants,
        "diversity": args.diversity,
        "diversity_layer": args.diversity_layer,
    }


def unit_choice(text: str) -> int | str:
    """A ``--channels`` value: a unit index, or ``all``."""
    if text == "all":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{visible(repr(text))} is not a unit index: give integers such as 0 1 2, or all"
        ) from None


def add_push_options(
    parser: argparse.ArgumentParser, *, revision: str | None = "--revision", private: bool = True
) -> None:
    """--token, the branch to push to (named ``revision``), and --private."""
    if private:
        parser.add_argument("--private", action="store_true", help="create the Hub repo as private")
    if revision:
        parser.add_argument(
            revision,
            dest="hub_revision",
            metavar="BRANCH",
            help="branch to push to, created if missing (default: main)",
        )
    parser.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or login)")


def push_arguments(args: argparse.Namespace) -> dict:
    """The keyword arguments of the library's push functions that :func:`add_push_options` holds."""
    return {"private": args.private, "token": args.token, "revision": args.hub_revision}


def show_progress(args: argparse.Namespace) -> bool:
    return not args.quiet and sys.stderr.isatty()


def print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """Left-aligned columns, two spaces apart; control, bidi and zero-width characters of a cell
    (newlines and tabs too) are printed as visible escapes."""
    cells = [[visible(str(cell)) for cell in row] for row in [header, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for row in cells:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def print_text(text: object, **options) -> None:
    """``print`` of text that may come from data: each line with visible escapes."""
    print(visible(str(text), keep="\n"), **options)


class _VisibleFormatter(logging.Formatter):
    """Log lines with control, bidi and zero-width characters (newlines aside) as visible escapes."""

    def format(self, record: logging.LogRecord) -> str:
        return visible(super().format(record), keep="\n")


def configure_output(*, debug: bool, quiet: bool, progress: bool) -> None:
    """maco_hub's own messages to stderr (INFO, DEBUG with --debug, warnings only with --quiet);
    other libraries keep their own logging setup, their load-time bars off unless useful."""
    logger = logging.getLogger("maco_hub")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(_VisibleFormatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO)
    if not progress:
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
        os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
    if not debug:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
