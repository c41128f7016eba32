"""What a gallery folder holds, by name, and how its files are reached: never through a link.

Layout of a gallery folder::

    manifest.json                 the finished shards, in order, with their row keys and sha256
    data/train-HASH.parquet       the shards: `image`/`alpha` columns + metadata (maco_hub.gallery.format)
    images/KEY.png                the image, and KEY-transparent.png with attribution as alpha
    thumbs/KEY.webp               small copies of both for the viewer (maco_hub.gallery.thumbnails)
    inputs/SHA.png                images rows were made from (maco_hub.gallery.inputs), if any
    README.md                     dataset card (YAML header tells `datasets` where the data is)
    index.html                    static viewer (search, transparency toggle, records)
    evaluation.json               legibility results (maco_hub.gallery.evaluation_store), if evaluated
    .maco_hub.lock                the inter-process lock every writer takes

The folder itself may be reached through a link the user named, but nothing inside it is a link:
``data/``, ``images/``, ``thumbs/`` and every file above must be a real folder or a regular file, or the
operation stops with a GalleryError before it reads, writes or deletes anything there (two galleries
whose ``images/`` link to one folder would otherwise delete each other's images). A downloaded
gallery's files may link to its blobs in the Hugging Face cache, nowhere else. Files are read
without following a link or waiting (:func:`maco_hub._files.read_regular`), so a FIFO is refused.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .._files import UnsafeFileError, file_kind, read_regular
from ..errors import GalleryError
from .lock import LOCK_NAME

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
EVALUATION_NAME = "evaluation.json"
CARD_NAME = "README.md"
INDEX_NAME = "index.html"
DATA_DIR = "data"
IMAGES_DIR = "images"
THUMBS_DIR = "thumbs"
INPUTS_DIR = "inputs"
MAX_SHARD_BYTES = 2 << 30  # a shard is read whole (sha256, then parquet): 8x what maco_hub writes
OWN_FOLDERS = (DATA_DIR, IMAGES_DIR, THUMBS_DIR, INPUTS_DIR)
OWN_FILES = (MANIFEST_NAME, CARD_NAME, INDEX_NAME, EVALUATION_NAME, LOCK_NAME)
KNOWN_TOP = {*OWN_FOLDERS, *OWN_FILES, ".gitattributes"}  # what a gallery folder's top level holds


def gallery_path(folder: Path, name: str, *, links_within: Path | None = None) -> Path:
    """The path of the gallery's own file ``name`` (e.g. ``data/train-HASH.parquet``), to read or
    write: GalleryError when a folder on the way is not a real folder (a link, a file) or when
    the file exists as anything but a regular file. With ``links_within`` (the Hugging Face cache
    folder of a downloaded gallery) a link to a regular file inside it is allowed: its target is
    returned."""
    *folders, last = name.split("/")
    current = folder
    for part in folders:
        current = current / part
        _check_folder(folder, current)
    path = current / last
    mode = entry_mode(path)
    if mode is None or stat.S_ISREG(mode):
        return path
    if stat.S_ISLNK(mode) and links_within is not None:
        target = path.resolve()
        if target.is_relative_to(links_within.resolve()) and stat.S_ISREG(entry_mode(target) or 0):
            return target
    raise _not_ours(folder, path, mode, "a regular file")


def check_layout(folder: Path, *, links_within: Path | None = None) -> None:
    """GalleryError unless the gallery's own folders and files (those present) are real folders
    and regular files (see :func:`gallery_path`); nothing is opened."""
    for name in OWN_FOLDERS:
        _check_folder(folder, folder / name)
    for name in OWN_FILES:
        gallery_path(folder, name, links_within=links_within)


def entry_mode(path: Path) -> int | None:
    """``lstat`` mode of ``path`` (None if it does not exist): a link is not followed."""
    try:
        return os.lstat(path).st_mode
    except FileNotFoundError:
        return None


def _check_folder(folder: Path, path: Path) -> None:
    mode = entry_mode(path)
    if mode is not None and not stat.S_ISDIR(mode):
        raise _not_ours(folder, path, mode, "a folder")


def _not_ours(folder: Path, path: Path, mode: int, expected: str) -> GalleryError:
    """The error for a gallery entry that is not the real folder or regular file maco_hub writes."""
    name = path.relative_to(folder).as_posix()
    if stat.S_ISLNK(mode):
        fix = (
            "maco_hub never reads, writes or deletes through a link inside a gallery (galleries "
            "sharing a linked folder would delete each other's files): replace the link by a copy "
            "of what it points to, or remove it"
        )
    else:
        fix = "maco_hub did not make it: move it out of the gallery folder"
    return GalleryError(
        f"{name!r} in the gallery {str(folder)!r} is {file_kind(mode)}, not {expected}; "
        f"{fix}, then run the command again."
    )


def read_file(path: Path, limit: int, what: str, fix: str | None = None) -> bytes:
    """The bytes of a gallery file (a path from :func:`gallery_path`), read without following a
    link or blocking: GalleryError '{what} is missing / is a FIFO, not a regular file / is N bytes
    (limit L)' (with '; {fix}.')."""
    end = f"; {fix}." if fix else ""
    try:
        return read_regular(path, limit)
    except FileNotFoundError:
        raise GalleryError(f"{what} is missing{end}") from None
    except UnsafeFileError as error:
        raise GalleryError(f"{what} {error}{end}") from None
    except OSError as error:
        raise GalleryError(f"{what} is unreadable ({error.strerror or type(error).__name__}){end}") from None


def entries(folder: Path) -> list[Path]:
    """The entries of a real folder of the gallery, sorted (none if it is absent)."""
    return sorted(folder.iterdir()) if stat.S_ISDIR(entry_mode(folder) or 0) else []


def is_regular(path: Path) -> bool:
    """Whether ``path`` is a regular file (a link to one is not)."""
    return stat.S_ISREG(entry_mode(path) or 0)


def file_digest(path: Path) -> str | None:
    """sha256 of a regular file of at most :data:`MAX_SHARD_BYTES` (None for anything else)."""
    try:
        return hashlib.sha256(read_regular(path, MAX_SHARD_BYTES)).hexdigest()
    except OSError:
        return None


_NO_SPACE = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}
_NOT_WRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM}


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn a failed file operation on the gallery ``path`` (read-only folder, full disk, ...)
    into one GalleryError; atomic writes leave the gallery as it was before the failed batch."""
    try:
        yield
    except OSError as error:
        name = error.filename if isinstance(error.filename, str) else None
        if name is not None and Path(name).is_relative_to(path):
            name = Path(name).relative_to(path).as_posix()
        cause = f"{error.strerror or type(error).__name__}" + (f" ({name})" if name else "")
        if error.errno in _NO_SPACE:
            fix = (
                "free disk space (or raise the file size limit) and run the same command again: the "
                "gallery keeps every row finished before the failure, and the rerun completes it"
            )
        elif error.errno in _NOT_WRITABLE:
            fix = "it cannot be written here: choose a folder you can write to (e.g. --out DIR)"
        else:
            fix = "check the folder, then run the same command again"
        raise GalleryError(f"Could not update the gallery {str(path)!r}: {cause}; {fix}.") from None
