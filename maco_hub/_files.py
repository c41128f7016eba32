"""Atomic file writes (readers see the old file or the new one, never half of one), reads of
untrusted paths that neither follow a link nor block, and the named kill points the crash tests use.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import stat
import tempfile
from pathlib import Path

TEMP_SUFFIX = ".maco_hub.tmp"  # temporary files of atomic_write end with this, and only they
_TEMP_RE = re.compile(r"^\..+\.[A-Za-z0-9_]{8}" + re.escape(TEMP_SUFFIX) + "$")
KILL_ENV = "MACO_HUB_TEST_KILL_AFTER"  # "<point>" or "<point>:<n>": SIGKILL at the n-th pass
KILL_RANK_ENV = "MACO_HUB_TEST_KILL_RANK"  # only in this torchrun rank (default: every process)
_passes: dict[str, int] = {}
_SAFE_READ = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)
_KINDS = (
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a device"),
    (stat.S_ISBLK, "a device"),
)


class UnsafeFileError(OSError):
    """A path that is not a regular file, or is one over the size limit (the message says which)."""


def file_kind(mode: int) -> str:
    """What an ``lstat`` mode is, for messages: 'a symbolic link', 'a folder', 'a FIFO', ... or
    'a file' (a regular file)."""
    return next((name for test, name in _KINDS if test(mode)), "a file")


def read_regular(path: str | os.PathLike, limit: int) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes.

    A symbolic link (even to a regular file), FIFO, socket, device or folder is refused with
    :class:`UnsafeFileError` before anything is read: the path is checked with ``lstat`` and
    opened with ``O_NOFOLLOW | O_NONBLOCK``, then checked again on the open descriptor. Other
    failures are the usual OSError.
    """
    mode = os.lstat(path).st_mode
    if not stat.S_ISREG(mode):
        raise UnsafeFileError(f"is {file_kind(mode)}, not a regular file")
    try:
        fd = os.open(path, _SAFE_READ)
    except OSError as error:
        if error.errno == errno.ELOOP:  # replaced by a link since the lstat
            raise UnsafeFileError("is a symbolic link, not a regular file") from None
        raise
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeFileError(f"is {file_kind(info.st_mode)}, not a regular file")
        if info.st_size > limit:
            raise UnsafeFileError(f"is {info.st_size} bytes (limit {limit})")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise UnsafeFileError(f"grew over the limit of {limit} bytes while it was read")
    return data


def atomic_write(path: str | os.PathLike, data: bytes | str, *, durable: bool = True) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename it.

    The file is flushed to disk before the rename (``durable``; derived files that are made again
    when lost skip that wait) and gets the usual 0644 permissions.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        tmp.chmod(0o644)  # mkstemp creates 0600
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def is_own_temp_file(path: Path) -> bool:
    """Whether ``path`` is named like a temporary file of :func:`atomic_write`."""
    return bool(_TEMP_RE.match(path.name))


def kill_point(name: str) -> None:
    """Crash-test hook: SIGKILL this process when ``$MACO_HUB_TEST_KILL_AFTER`` names this point.

    ``after-images:2`` kills on the second pass through ``after-images``. Unset: does nothing.
    """
    wanted = os.environ.get(KILL_ENV)
    if not wanted:
        return
    point, _, count = wanted.partition(":")
    rank = os.environ.get("RANK", "0")
    if point != name or os.environ.get(KILL_RANK_ENV, rank) != rank:
        return
    _passes[name] = _passes.get(name, 0) + 1
    if _passes[name] >= int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
