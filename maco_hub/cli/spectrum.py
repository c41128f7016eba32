"""``maco-hub spectrum estimate | push | show``: make, share and inspect magnitude spectra.

Only argparse loads at parser-build time; torch, huggingface_hub and the photo packages load
when a command runs. The image-source options map one to one onto
:func:`maco_hub.spectra.sources.select_images`, which checks them.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..spectra.sources import DEFAULT_SCALES, PHOTOS_EXTRA
from .options import add_push_options, print_table, push_arguments, show_progress

__all__ = ["add_spectrum_commands"]

_ESTIMATE_EXAMPLES = """\
examples:
  maco-hub spectrum estimate --builtin-photos --out spectra/default.safetensors
  maco-hub spectrum estimate --dataset ORG/NAME --count 5000 --out s.safetensors
  maco-hub spectrum estimate --folder photos/ --push me/my-spectrum --name photos.safetensors
"""


def add_spectrum_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``spectrum`` with its subcommands to ``commands`` (the CLI's subparsers action)."""
    spectrum = commands.add_parser(
        "spectrum",
        help="estimate, push or show a magnitude spectrum",
        description="Magnitude spectra: estimate one from photographs, "
        "push one to the Hub, show one's provenance.",
    )
    actions = spectrum.add_subparsers(title="spectrum commands", required=True, metavar="ACTION")

    estimate = actions.add_parser(
        "estimate",
        parents=[common],
        help="estimate a spectrum from photographs",
        description="Average the decorrelated Fourier magnitude of photographs; save it (--out), "
        "push it (--push) or both.",
        epilog=_ESTIMATE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_source_options(estimate)
    estimate.add_argument(
        "--resolution", type=int, default=512, help="image side the spectrum describes (default: %(default)s)"
    )
    estimate.add_argument(
        "--boundary",
        choices=("periodic", "plain"),
        default="periodic",
        help="transform each view's periodic component (no border cross), or the view as it is "
        "(plain: estimator version 1, the previous default); default: %(default)s",
    )
    estimate.add_argument("--out", type=Path, metavar="FILE", help="write a .safetensors file")
    estimate.add_argument("--push", metavar="REPO_ID", help="also upload to this Hub model repo")
    _name_option(estimate)
    add_push_options(estimate)
    estimate.set_defaults(run=_run_estimate)

    push = actions.add_parser(
        "push",
        parents=[common],
        help="upload a spectrum file to the Hub",
        description="Upload a spectrum file to a Hub model repo, with a provenance card, in one commit.",
    )
    push.add_argument("file", type=Path, help="a .safetensors spectrum file")
    push.add_argument("repo_id", metavar="REPO_ID", help="Hub model repo, e.g. me/my-spectrum")
    _name_option(push)
    add_push_options(push)
    push.set_defaults(run=_run_push)

    show = actions.add_parser(
        "show",
        parents=[common],
        help="print a spectrum's shape, sha256, metadata",
        description="Load a spectrum (checksum verified) and print its shape, sha256 and metadata.",
    )
    show.add_argument(
        "source",
        nargs="?",
        metavar="SOURCE",
        help="file, folder or Hub repo id (default: the shipped spectrum)",
    )
    show.add_argument("--name", help="file inside a folder or repo (default: spectrum.safetensors)")
    show.add_argument("--revision", help="Hub branch, tag or commit (default: main)")
    show.set_defaults(run=_run_show)


def _name_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", default=None, help="file name in the repo (default: spectrum.safetensors)")


def _add_source_options(parser: argparse.ArgumentParser) -> None:
    """One of --dataset/--folder/--builtin-photos, and their settings."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", metavar="ID", help="Hugging Face dataset id, streamed")
    source.add_argument("--folder", metavar="DIR", type=Path, help="folder of images (recursive)")
    source.add_argument(
        "--builtin-photos",
        action="store_true",
        help=f"photos shipped in scikit-image/scikit-learn/matplotlib ({PHOTOS_EXTRA})",
    )
    parser.add_argument("--split", default="train", help="dataset split (default: %(default)s)")
    parser.add_argument(
        "--dataset-revision", metavar="REV", help="dataset revision: branch, tag or commit (default: main)"
    )
    parser.add_argument("--image-column", help="dataset column holding images (default: first Image)")
    parser.add_argument("--count", type=int, help="use this many images (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="shuffle/crop seed (default: %(default)s)")
    parser.add_argument(
        "--buffer-size",
        type=int,
        default=10_000,
        help="shuffle buffer of a streamed dataset (default: %(default)s)",
    )
    parser.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="square crops at --scales (+ flips); default: on for --builtin-photos",
    )
    parser.add_argument(
        "--scales",
        type=_fractions,
        default=",".join(map(str, DEFAULT_SCALES)),
        help="crop sides as fractions of the short side (default: %(default)s)",
    )
    parser.add_argument(
        "--crops-per-scale",
        type=int,
        default=3,
        help="random crop positions per scale (default: %(default)s)",
    )
    parser.add_argument(
        "--flip",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also use each crop mirrored left-right (default: on)",
    )


def _fractions(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not comma-separated numbers, e.g. 0.9,0.7,0.5"
        ) from None


def _source_arguments(args: argparse.Namespace) -> dict:
    return {
        "dataset": args.dataset,
        "folder": args.folder,
        "builtin": args.builtin_photos,
        "split": args.split,
        "dataset_revision": args.dataset_revision,
        "image_column": args.image_column,
        "count": args.count,
        "seed": args.seed,
        "buffer_size": args.buffer_size,
        "augment": args.augment,
        "scales": args.scales,
        "crops_per_scale": args.crops_per_scale,
        "flip": args.flip,
    }


def _run_estimate(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..spectra.estimation import estimate_spectrum
    from ..spectra.sources import select_images

    if args.out is None and args.push is None:
        raise ConfigError("Nothing would be kept: pass --out FILE, --push REPO_ID, or both.")
    if args.push is None:
        for option, value in (
            ("--name", args.name),
            ("--revision", args.hub_revision),
            ("--private", args.private or None),
            ("--token", args.token and "..."),
        ):
            if value is not None:
                raise ConfigError(
                    f"{option} {value!r} only applies with --push REPO_ID "
                    "(for a dataset's revision use --dataset-revision)."
                )
    else:
        _check_push_target(args.push, args.name)
    images, metadata = select_images(**_source_arguments(args))
    spectrum = estimate_spectrum(
        images,
        resolution=args.resolution,
        metadata=metadata,
        progress=show_progress(args),
        boundary=args.boundary,
    )
    if args.out is not None:
        path = spectrum.save(args.out)
        print(
            f"{path}: {spectrum.metadata['num_images']} images, {spectrum.metadata['resolution']},"
            f" sha256 {spectrum.sha256}"
        )
    if args.push is not None:
        _push(spectrum, args.push, args)
    return 0


def _run_push(args: argparse.Namespace) -> int:
    from ..spectra.spectrum import Spectrum

    _check_push_target(args.repo_id, args.name)
    _push(Spectrum.load(args.file), args.repo_id, args)
    return 0


def _run_show(args: argparse.Namespace) -> int:
    from ..spectra.loading import load_spectrum

    spectrum = load_spectrum(args.source, name=args.name, revision=args.revision)
    meta = dict(spectrum.metadata)
    rows = [
        ("source", meta.pop("source", "-")),
        ("revision", meta.pop("revision", "-")),
        ("shape", "x".join(map(str, spectrum.magnitude.shape))),
        ("sha256", meta.pop("sha256")),
    ]
    if "filename" in meta:
        rows.insert(1, ("name", meta.pop("filename")))
    rows += sorted(meta.items())
    print_table(("key", "value"), [(key, " ".join(str(value).split())) for key, value in rows])
    return 0


def _check_push_target(repo_id: str, name: str | None) -> None:
    """Fail before any long work: a malformed repo id, a bad file name, or offline mode."""
    from huggingface_hub import constants

    from .._hub import check_repo_id
    from ..errors import HubError
    from ..spectra.spectrum import check_spectrum_name

    check_repo_id(repo_id)
    if name is not None:
        check_spectrum_name(name)
    if constants.HF_HUB_OFFLINE:
        raise HubError(
            f"Cannot push to {repo_id!r}: HF_HUB_OFFLINE is set. Unset it (or set it to "
            "0) and run again; the Hub must be reachable."
        )


def _push(spectrum: Any, repo_id: str, args: argparse.Namespace) -> None:
    from ..spectra.hub import push_spectrum
    from ..spectra.spectrum import DEFAULT_FILENAME

    name = args.name or DEFAULT_FILENAME
    url = push_spectrum(spectrum, repo_id, name=name, **push_arguments(args))
    print(f"pushed {name} (sha256 {spectrum.sha256}) to {repo_id}: {url}")
