"""Runs spread over processes started by ``torchrun``: who am I, which objectives are mine.

torchrun (PyTorch's own launcher and rendezvous) sets ``WORLD_SIZE``, ``RANK`` and
``LOCAL_RANK``; nothing here starts processes. Each rank takes a deterministic share of the
objectives still missing from the gallery folder and appends its batches through the folder's
inter-process lock; rank 0 writes the card and the page once every rank has finished.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import torch

from .errors import ConfigError

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """This process's place among the processes of one job."""

    rank: int = 0  # global rank, 0 … size-1
    local_rank: int = 0  # rank on this node: picks the GPU
    size: int = 1  # number of processes

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def current_world() -> World:
    """The world torchrun describes in the environment (one process when it does not)."""
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as error:
        raise ConfigError(
            f"WORLD_SIZE/RANK/LOCAL_RANK must be integers ({error}); start distributed runs with torchrun."
        ) from None
    if size < 1 or not 0 <= rank < size:
        raise ConfigError(
            f"RANK={rank} does not fit WORLD_SIZE={size}; start distributed runs with torchrun."
        )
    return World(rank=rank, local_rank=local_rank, size=size)


def rank_device(device: torch.device, world: World) -> torch.device:
    """A CUDA device without an index becomes this rank's GPU (``cuda:LOCAL_RANK``)."""
    if world.size > 1 and device.type == "cuda" and device.index is None:
        return torch.device("cuda", world.local_rank % max(torch.cuda.device_count(), 1))
    return device


def my_share(items: Sequence[T], keys: Sequence[str], world: World) -> list[T]:
    """Rank ``r``'s items: those at positions r, r+size, … once sorted by key, in their given order.

    Every rank computes the same order from the same pending list, so the shares are disjoint,
    cover everything and differ in size by at most one item.
    """
    order = sorted(range(len(items)), key=lambda i: keys[i])
    return [items[i] for i in sorted(order[world.rank :: world.size])]


@contextmanager
def process_group(world: World, device: torch.device) -> Iterator[None]:
    """Join torchrun's process group for the block (NCCL on GPUs, gloo on the CPU).

    A no-op for a single process or when the caller already joined one.
    """
    import torch.distributed as dist

    if world.size == 1 or dist.is_initialized():
        yield
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    # ranks wait at the end for the slowest one, which may be hours on a CPU
    dist.init_process_group(backend=backend, timeout=timedelta(days=7))
    logger.info("rank %d of %d joined the %s process group", world.rank, world.size, backend)
    try:
        yield
    finally:
        dist.destroy_process_group()


def barrier(world: World) -> None:
    """Wait for every rank (no-op for one process)."""
    if world.size > 1:
        import torch.distributed as dist

        dist.barrier()
