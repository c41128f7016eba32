"""Images from users, read in one way: the files of a folder (the spectrum estimator's photos, the
reference sets of evaluate), skipped with a warning when unreadable, and single images given to
start from or to invert (:func:`read_image`: a path, a PIL image or an array), refused with one
:class:`~maco_hub.errors.ImageError` when unusable. Regular files only, opened without blocking;
known decoders only, chosen by the content (not the name); sizes checked before anything is decoded
(a file's bytes, then the side lengths its header gives); transparency composited on white.

Only the standard library loads here (PIL and numpy when an image is read), so the CLI's parser
stays fast.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._files import UnsafeFileError, file_kind
from .errors import ImageError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
IMAGE_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "TIFF", "WEBP")  # the only PIL decoders tried
MAX_IMAGE_BYTES = 64 << 20  # a given image file (a 4096 px photo is well under 30 MB)
MAX_IMAGE_SIDE = 4096  # px a side of a given image, what a gallery stores (its MAX_CANVAS)
MIN_IMAGE_SIDE = 8  # px a side: anything smaller shows nothing to start from
_FIX = "pass a PNG, JPEG, BMP, GIF, TIFF or WebP file, a PIL image or an (H, W[, 3|4]) array"
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
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as error:
        return _skipped(path, error.strerror or error)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return _skipped(path, "not a regular file")
    with os.fdopen(fd, "rb") as handle:
        try:
            return _decoded(handle)
        except _decode_errors() as error:
            return _skipped(path, error)


@dataclass(frozen=True, eq=False)
class InputImage:
    """A checked RGB image a run starts from or inverts, named by the sha256 of its pixels."""

    image: Image.Image  # RGB, MIN_IMAGE_SIDE to MAX_IMAGE_SIDE px a side
    sha256: str  # :func:`pixel_sha256` of ``image``

    def __eq__(self, other: object) -> bool:
        return isinstance(other, InputImage) and other.sha256 == self.sha256

    def __hash__(self) -> int:
        return hash(self.sha256)

    def at_canvas(self, side: int) -> Any:
        """The image as the canvas sees it: centre square, resized to ``side`` px (bicubic,
        antialiased): a uint8 array (side, side, 3)."""
        import numpy as np
        from PIL import Image

        width, height = self.image.size
        short = min(width, height)
        left, top = (width - short) // 2, (height - short) // 2
        square = self.image.crop((left, top, left + short, top + short))
        if short != side:
            square = square.resize((side, side), Image.Resampling.BICUBIC, reducing_gap=None)
        return np.asarray(square, dtype=np.uint8)


def read_image(source: Any, what: str = "image") -> InputImage:
    """``source`` (a path, a PIL image, a numpy array (H, W), (H, W, 1|3|4) of uint8 or of floats in
    [0, 1], or a torch tensor (C, H, W) of floats in [0, 1]) as a checked :class:`InputImage`.

    Files must be regular files of at most :data:`MAX_IMAGE_BYTES` whose content one of
    :data:`IMAGE_FORMATS` decodes; every image is :data:`MIN_IMAGE_SIDE` to :data:`MAX_IMAGE_SIDE`
    px a side (checked from a file's header, before decoding). Grayscale, palette and RGBA images
    are converted to RGB (transparency composited on white). Anything else is one ImageError
    naming ``what`` and the value.
    """
    from PIL import Image

    if isinstance(source, InputImage):
        return source
    if isinstance(source, (str, os.PathLike)):
        image = _read_path(Path(source), what)
    elif isinstance(source, Image.Image):
        _check_size(source.size, what, f"{source.size[0]}x{source.size[1]} PIL image")
        image = _rgb(source)
    elif type(source).__module__.startswith(("numpy", "torch")):
        image = _from_array(source, what)
    else:
        raise ImageError(f"{what} {type(source).__name__} {str(source)[:60]!r} is not an image: {_FIX}.")
    return InputImage(image, pixel_sha256(image))


def pixel_sha256(image: Image.Image) -> str:
    """sha256 of an RGB image's size and 8-bit pixels (so two encodings of one picture agree)."""
    header = f"{image.size[0]}x{image.size[1]}\n".encode()
    return hashlib.sha256(header + image.convert("RGB").tobytes()).hexdigest()


def _read_path(path: Path, what: str) -> Image.Image:
    name = f"{what} {str(path)!r}"
    try:
        mode = path.stat().st_mode  # a link the user names is followed: it is their path
        if not stat.S_ISREG(mode):
            raise UnsafeFileError(f"is {file_kind(mode)}, not a regular file")
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise ImageError(f"{name} does not exist; check the path.") from None
    except OSError as error:
        raise ImageError(f"{name} cannot be read ({error.strerror or error}): {_FIX}.") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ImageError(f"{name} is {file_kind(info.st_mode)}, not a regular file: {_FIX}.")
        if info.st_size > MAX_IMAGE_BYTES:
            raise ImageError(
                f"{name} is {info.st_size} bytes, over the limit of {MAX_IMAGE_BYTES}: "
                f"resize it to at most {MAX_IMAGE_SIDE} px a side."
            )
        try:
            return _decoded(handle, lambda image: _check_size(image.size, what, str(path)))
        except ImageError:
            raise
        except _decode_errors() as error:
            if "DecompressionBomb" in type(error).__name__:
                raise ImageError(
                    f"{name} has more pixels than PIL decodes safely (a decompression bomb?): "
                    f"use at most {MAX_IMAGE_SIDE} px a side."
                ) from None
            raise ImageError(f"{name} is not a readable image ({type(error).__name__}): {_FIX}.") from None


def _from_array(source: Any, what: str) -> Image.Image:
    import numpy as np
    from PIL import Image

    is_torch = type(source).__module__.startswith("torch")
    try:
        array = np.asarray(source.detach().cpu() if is_torch else source)
    except (TypeError, ValueError, AttributeError, RuntimeError):
        raise ImageError(f"{what} {type(source).__name__} is not an array of pixels: {_FIX}.") from None
    shape = tuple(array.shape)
    if is_torch and array.ndim == 3:
        array = np.moveaxis(array, 0, -1)  # torch's (C, H, W)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        layout = "(C, H, W) with C 1, 3 or 4" if is_torch else "(H, W), (H, W, 1), (H, W, 3) or (H, W, 4)"
        raise ImageError(f"{what} is an array of shape {shape}, not an image {layout}.")
    _check_size((array.shape[1], array.shape[0]), what, f"array of shape {shape}")
    if array.dtype == np.uint8:
        pixels = array
    elif array.dtype.kind in "fiu" and array.size:
        values = array.astype(np.float64)
        if array.dtype.kind != "f":
            values = values / 255
        if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
            raise ImageError(
                f"{what} has values outside [0, 1] (or non-finite): pass floats in [0, 1] or uint8 pixels."
            )
        pixels = np.round(values * 255).astype(np.uint8)
    else:
        raise ImageError(f"{what} is an array of {array.dtype}, not pixels: use uint8 or floats in [0, 1].")
    mode = "L" if pixels.ndim == 2 else ("RGB" if pixels.shape[-1] == 3 else "RGBA")
    return _rgb(Image.fromarray(np.ascontiguousarray(pixels), mode=mode))


def _check_size(size: tuple[int, int], what: str, name: str) -> None:
    width, height = size
    if max(width, height) > MAX_IMAGE_SIDE or min(width, height) < MIN_IMAGE_SIDE:
        raise ImageError(
            f"{what} {name!r} is {width}x{height} px; use {MIN_IMAGE_SIDE} to {MAX_IMAGE_SIDE} "
            "px a side (resize it first)."
        )


def _decoded(handle, check=None) -> Image.Image:
    """The RGB image of an open file, by the decoders of :data:`IMAGE_FORMATS` only (chosen by
    content); ``check(image)`` sees the header (size, mode) before anything is decoded."""
    from PIL import Image

    Image.init()  # registers every decoder, so that ``formats`` below can name them
    formats = [name for name in IMAGE_FORMATS if name in Image.OPEN]  # WebP may be left out of a build
    with Image.open(handle, formats=formats) as image:
        if check is not None:
            check(image)
        return _rgb(image)


def _rgb(image: Image.Image) -> Image.Image:
    """An RGB copy; images with transparency are composited on white (what a viewer shows)."""
    from PIL import Image

    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def _decode_errors() -> tuple[type[BaseException], ...]:
    from PIL import Image

    return (OSError, ValueError, SyntaxError, EOFError, MemoryError, Image.DecompressionBombError)


def _is_regular_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return False


def _skipped(path: Path, reason: object) -> None:
    _log.warning("Image %s skipped: %s", path, reason)
    return None
