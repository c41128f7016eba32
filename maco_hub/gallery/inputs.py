"""The images rows were made from (a start image of feature accentuation, the image an Inversion
compares with), stored once per gallery as ``inputs/SHA.png``, SHA the sha256 of the pixels.

They are data, like the shards (``images/`` is the viewer's copy of the shards' pictures and can be
rebuilt from them; these cannot): written before the shard that names them, never rewritten while
they hold the right pixels, and checked whenever a gallery is read, downloaded ones too: a
regular file (or a link to the Hugging Face cache blob of a download) of at most
:data:`MAX_INPUT_BYTES`, a PNG (no other decoder is tried) whose header gives at most
:data:`~maco_hub._image_files.MAX_IMAGE_SIDE` px a side, and whose pixels hash to its name. A row
that names a missing or swapped input is one GalleryError naming the row and the file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from .._image_files import MAX_IMAGE_BYTES, MAX_IMAGE_SIDE, MIN_IMAGE_SIDE, InputImage, pixel_sha256
from ..errors import GalleryError
from .layout import INPUTS_DIR, entry_mode, gallery_path, is_regular, read_file
from .row_checks import PNG_DECODE_ERRORS, decoded_png, png_header_size
from .rows import png_bytes

MAX_INPUT_BYTES = MAX_IMAGE_BYTES
_NAME_RE = re.compile(r"^([0-9a-f]{64})\.png$")


def input_name(sha256: str) -> str:
    """``inputs/SHA.png``: the file of the image whose pixels hash to ``sha256`` (checked first, so a
    crafted record cannot name another file)."""
    if not isinstance(sha256, str) or not _NAME_RE.match(f"{sha256}.png"):
        raise GalleryError(
            f"A record names the input image {str(sha256)[:80]!r}, not a sha256 (64 hex digits) "
            "(crafted or damaged)"
        )
    return f"{INPUTS_DIR}/{sha256}.png"


def input_hash(file: Path) -> str | None:
    """The sha256 an input file's name claims, or None for a name maco_hub does not write."""
    found = _NAME_RE.match(file.name)
    return found.group(1) if found else None


def write_inputs(folder: Path, images: Iterable[InputImage]) -> None:
    """Write each image as ``inputs/SHA.png`` (atomically) unless it is there with the right pixels;
    a missing or swapped file is written again, from these checked images."""
    from .._files import atomic_write

    for image in {image.sha256: image for image in images}.values():
        path = gallery_path(folder, input_name(image.sha256))
        if is_regular(path):
            try:
                read_input(folder, image.sha256)
                continue
            except GalleryError:
                pass  # swapped or damaged: these pixels are the right ones
        atomic_write(path, png_bytes(image.image))


def read_input(folder: Path, sha256: str, *, links_within: Path | None = None, where: str = "") -> InputImage:
    """The checked input image ``sha256`` of the gallery ``folder`` (see the module docstring)."""
    name = input_name(sha256)
    what = f"{where}The input image {name} of the gallery {str(folder)!r}"
    fix = (
        "run the explain command again with the same image (it writes the file again), or "
        "`maco-hub gallery repair` to drop the rows made from it"
    )
    path = gallery_path(folder, name, links_within=links_within)
    if entry_mode(path) is None:
        raise GalleryError(f"{what} is missing; {fix}.")
    data = read_file(path, MAX_INPUT_BYTES, what, fix)
    size = png_header_size(data)
    if size is None:
        raise GalleryError(f"{what} is not a PNG file; {fix}.")
    width, height = size
    if not MIN_IMAGE_SIDE <= min(width, height) <= max(width, height) <= MAX_IMAGE_SIDE:
        raise GalleryError(
            f"{what} is {width}x{height} px, not {MIN_IMAGE_SIDE} to {MAX_IMAGE_SIDE} px a side; {fix}."
        )
    try:
        image = decoded_png(data, size, "RGB")
    except PNG_DECODE_ERRORS as error:
        raise GalleryError(f"{what} is not a readable PNG ({type(error).__name__}); {fix}.") from None
    if pixel_sha256(image) != sha256:
        raise GalleryError(f"{what} holds other pixels than its name says (swapped or edited); {fix}.")
    return InputImage(image, sha256)


def read_inputs(
    folder: Path, hashes: Iterable[str], cache: dict[str, InputImage], **options
) -> Mapping[str, InputImage]:
    """The checked input images ``hashes`` (each file read once per ``cache``)."""
    found = {}
    for sha256 in sorted(hashes):
        if sha256 not in cache:
            cache[sha256] = read_input(folder, sha256, **options)
        found[sha256] = cache[sha256]
    return found
