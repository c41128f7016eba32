"""How many CPU threads torch may use for one optimization: chosen from the CPUs that are idle.

torch starts one intra-op thread per core. On a machine where other processes keep cores busy,
those threads wait on each other (measured on 2 cores with one busy: one EfficientNet-Lite0
forward+backward took 4.6 s with 2 threads against 0.3 s with 1), so :func:`auto_threads` counts
the idle CPUs this process may run on and :func:`intra_op_threads` applies a count for one block.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from ..errors import ConfigError


def allowed_cpus() -> list[int]:
    """The CPUs this process may run on (its affinity mask; all CPUs where there is none)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


def _cpu_times(cpus: list[int]) -> tuple[float, float] | None:
    """(idle, total) jiffies summed over ``cpus`` from /proc/stat; None where it cannot be read."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    wanted = {f"cpu{c}" for c in cpus}
    idle = total = 0.0
    for line in lines:
        name, *fields = line.split()
        if name in wanted:
            values = [float(v) for v in fields[:8]]
            idle += values[3] + values[4]  # idle + iowait
            total += sum(values)
    return (idle, total) if total else None


def idle_cpus(interval: float = 0.2) -> float:
    """How many of :func:`allowed_cpus` were idle, on average, over the next ``interval`` seconds.

    Read from /proc/stat; elsewhere estimated from the 1-minute load average.
    """
    cpus = allowed_cpus()
    before = _cpu_times(cpus)
    if before is not None:
        time.sleep(interval)
        after = _cpu_times(cpus)
        if after is not None and after[1] > before[1]:
            return len(cpus) * (after[0] - before[0]) / (after[1] - before[1])
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return float(len(cpus))
    return min(float(len(cpus)), max(0.0, (os.cpu_count() or len(cpus)) - load))


def threads_for(idle: float, allowed: int, configured: int) -> int:
    """The thread count for ``idle`` idle CPUs: at least 1, at most ``allowed`` and ``configured``.

    ``configured`` is torch's own setting (OMP_NUM_THREADS or ``torch.set_num_threads``), which
    is never exceeded. A CPU counts as idle from half idle up (2 cores, one busy: 1 thread).
    """
    return max(1, min(int(idle + 0.5), allowed, configured))


def auto_threads(interval: float = 0.2) -> int:
    """The intra-op thread count for a run starting now (see :func:`threads_for`)."""
    return threads_for(idle_cpus(interval), len(allowed_cpus()), torch.get_num_threads())


def check_threads(threads: int | None) -> None:
    """Raise :class:`~maco_hub.errors.ConfigError` unless ``threads`` is None or a positive int."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(
            f"threads={threads!r} is invalid: use a positive number of CPU threads, "
            "or None to choose from the idle CPUs."
        )


@contextlib.contextmanager
def intra_op_threads(threads: int | None) -> Iterator[int]:
    """Run the block with ``threads`` intra-op threads (None: :func:`auto_threads`), then restore.

    Yields the count in use. The count changes results on the CPU (reduction order), so callers
    record it.
    """
    check_threads(threads)
    previous = torch.get_num_threads()
    chosen = threads if threads is not None else auto_threads()
    if chosen != previous:
        torch.set_num_threads(chosen)
    try:
        yield chosen
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)
