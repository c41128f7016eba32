"""The inter-process lock of a gallery folder (every writer holds it while it changes the folder)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .._files import file_kind
from ..errors import GalleryError

LOCK_NAME = ".maco_hub.lock"
TIMEOUT_S = 600  # writers hold the lock for one batch's files, seconds at most


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold ``folder/.maco_hub.lock`` (re-entrant within a thread); GalleryError after TIMEOUT_S,
    or when the lock file is a link, FIFO or anything but a regular file (it is never opened then)."""
    from filelock import FileLock, Timeout

    path = folder / LOCK_NAME
    check_lock_file(folder)
    lock = FileLock(path, timeout=TIMEOUT_S, is_singleton=True, preserve_lock_file=True)
    try:
        lock.acquire()
    except Timeout:
        raise GalleryError(
            f"Another process has held the lock of the gallery {str(folder)!r} for "
            f"{TIMEOUT_S} s; wait for it to finish, or delete {LOCK_NAME} there if no "
            "maco_hub process is running."
        ) from None
    try:
        yield
    finally:
        lock.release()


def check_lock_file(folder: Path) -> None:
    """GalleryError unless the lock file of ``folder`` is absent or a regular file (not a link)."""
    try:
        mode = os.lstat(folder / LOCK_NAME).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        raise GalleryError(
            f"{LOCK_NAME!r} in the gallery {str(folder)!r} is {file_kind(mode)}, not a "
            "regular file; maco_hub never opens its lock through a link: remove it (when "
            "no maco_hub process is running on this folder), then run the command again."
        )
