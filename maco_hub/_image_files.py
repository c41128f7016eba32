"""Image files in a user's folder, listed and read in one way (the spectrum estimator's photos and
the reference sets of evaluate): regular files only, never blocking, known decoders only.

Only the standard library loads here (PIL when an image is read), so the CLI's parser stays fast.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
IMAGE_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "TIFF", "WEBP")  # the only PIL decoders tried
_log = logging.getLogger(__name__)


def image_files(folder: Path, *, recursive: bool = False) -> list[Path]:
    """The regular files named like images in ``folder`` (and its subfolders when ``recursive``),
    sorted; folders, FIFOs, devices and broken links named like images are left out."""
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if p.suffix.lower() in IMAGE_SUFFIXES and _is_regular_file(p))


def read_image_file(path: Path) -> Image.Image | None:
    """The RGB image in the file ``path``, or None (with a warning naming the file and why).

    The file is opened without blocking and must be a regular file before a byte is read (a
    FIFO or device named ``x.png`` cannot hang the reader); only the decoders of
    :data:`IMAGE_FORMATS` are tried (JPEG's covers MPO), with PIL's decompression-bomb limit on.
    """
    from PIL import Image

    Image.init()  # registers every decoder, so that ``formats`` below can name them
    formats = [name for name in IMAGE_FORMATS if name in Image.OPEN]  # WebP may be left out of a build
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as error:
        return _skipped(path, error.strerror or error)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return _skipped(path, "not a regular file")
    with os.fdopen(fd, "rb") as handle:
        try:
            with Image.open(handle, formats=formats) as image:
                return image.convert("RGB")
        except (
            OSError,
            ValueError,
            SyntaxError,
            EOFError,
            MemoryError,
            Image.DecompressionBombError,
        ) as error:
            return _skipped(path, error)


def _is_regular_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return False


def _skipped(path: Path, reason: object) -> None:
    _log.warning("Image %s skipped: %s", path, reason)
    return None
