"""What the host machine has free: memory a new allocation can still get (for checks before work)."""

from __future__ import annotations

from pathlib import Path


def memory_available() -> int | None:
    """``MemAvailable`` of /proc/meminfo in bytes; None where it cannot be told."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
