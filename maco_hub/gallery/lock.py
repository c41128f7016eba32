"""The inter-process lock of a gallery folder (every writer holds it while it changes the folder)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import GalleryError

LOCK_NAME = ".maco_hub.lock"
TIMEOUT_S = 600  # writers hold the lock for one batch's files, seconds at most


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold ``folder/.maco_hub.lock`` (re-entrant within a thread); GalleryError after TIMEOUT_S."""
    from filelock import FileLock, Timeout

    lock = FileLock(folder / LOCK_NAME, timeout=TIMEOUT_S, is_singleton=True, preserve_lock_file=True)
    try:
        lock.acquire()
    except Timeout:
        raise GalleryError(f"Another process has held the lock of the gallery {str(folder)!r} for "
                           f"{TIMEOUT_S} s; wait for it to finish, or delete {LOCK_NAME} there if no "
                           "maco_hub process is running.") from None
    try:
        yield
    finally:
        lock.release()
