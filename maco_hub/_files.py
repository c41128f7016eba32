"""Atomic file writes (readers see the old file or the new one, never half of one), and the
named kill points the crash tests use.
"""

from __future__ import annotations

import os
import re
import signal
import tempfile
from pathlib import Path

TEMP_SUFFIX = ".maco_hub.tmp"  # temporary files of atomic_write end with this, and only they
_TEMP_RE = re.compile(r"^\..+\.[A-Za-z0-9_]{8}" + re.escape(TEMP_SUFFIX) + "$")
KILL_ENV = "MACO_HUB_TEST_KILL_AFTER"  # "<point>" or "<point>:<n>": SIGKILL at the n-th pass
KILL_RANK_ENV = "MACO_HUB_TEST_KILL_RANK"  # only in this torchrun rank (default: every process)
_passes: dict[str, int] = {}


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename it.

    The file is flushed to disk before the rename and gets the usual 0644 permissions.
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
