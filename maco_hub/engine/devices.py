"""Devices: which exist, how much memory a run needs there, and how many crops fit in one call.

Every device name a user gives goes through :func:`resolve_device`, so a device that does not exist
is one clear :class:`~maco_hub.errors.ConfigError` naming the value and the devices that do.
"""

from __future__ import annotations

import torch

from .._host import memory_available
from ..errors import ConfigError

_KINDS = ("cpu", "cuda", "mps")


def available_devices() -> list[str]:
    """Names of the devices torch can use here, e.g. ``["cpu", "cuda:0", "cuda:1"]``."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        names.append("mps")
    return names


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``device`` as a torch.device that exists here; None picks CUDA when available, else the CPU.

    Raises :class:`~maco_hub.errors.ConfigError` naming the value and the available devices.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    available = available_devices()
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        resolved = None
    if resolved is None or resolved.type not in _KINDS:
        raise ConfigError(
            f"device={str(device)!r} is not a device name; available here: "
            f"{', '.join(available)} (e.g. 'cuda', 'cuda:1' or 'cpu')."
        )
    if resolved.type == "cpu":
        return resolved
    if resolved.type == "cuda":
        ok = torch.cuda.is_available() and (resolved.index or 0) < torch.cuda.device_count()
    else:
        ok = "mps" in available and (resolved.index or 0) == 0
    if not ok:
        raise ConfigError(
            f"device={str(device)!r} does not exist on this machine; available here: {', '.join(available)}."
        )
    return resolved


def available_memory(device: torch.device) -> int | None:
    """Bytes a new allocation can still get on ``device``; None where it cannot be told.

    CUDA: free device memory (``torch.cuda.mem_get_info``); CPU: ``MemAvailable`` of /proc/meminfo.
    """
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type == "cpu":
        return memory_available()
    return None


def run_bytes(canvas: int, images: int, crops: int, size: tuple[int, int]) -> int:
    """Estimated peak bytes of one optimization, model activations excluded.

    Per image about 12.7 canvas-sized float32 tensors (phase, its gradient and NAdam state, the
    complex spectrum, the canvas through colour and sigmoid, their saved values for backward,
    attribution), plus about 1.7 once for resizing the spectrum (measured on the CPU: 14.4 units
    for one image, 27.1 for two, canvas 3072); each crop adds a few model-input-sized tensors.
    """
    unit = 3 * canvas * canvas * 4
    crop = 3 * size[0] * size[1] * 4
    return int(unit * (12.7 * images + 1.7) + 4 * crop * crops * images)


def check_memory(
    canvas: int,
    images: int,
    crops: int,
    size: tuple[int, int],
    device: torch.device,
    available: int | None = None,
) -> None:
    """Raise :class:`~maco_hub.errors.ConfigError` before allocating when a run cannot fit.

    ``available`` defaults to :func:`available_memory` of ``device`` (no check where unknown).
    """
    available = available_memory(device) if available is None else available
    need = run_bytes(canvas, images, crops, size)
    if available is None or need <= available:
        return
    fits = max(
        (c for c in range(16, canvas + 1, 16) if run_bytes(c, images, crops, size) <= available), default=None
    )
    hint = f"use canvas={fits} or less" if fits else "free memory or use another device"
    per_image = run_bytes(canvas, 1, crops, size) - run_bytes(canvas, 0, crops, size)
    if images > 1:
        hint += f", or fewer images per batch ({per_image / 2**30:.1f} GiB each)"
    raise ConfigError(
        f"canvas={canvas} with {images} image(s) needs about {need / 2**30:.1f} GiB on "
        f"{device}, but only {available / 2**30:.1f} GiB is available: {hint}."
    )


def crops_per_call(free_bytes: int, bytes_per_crop: int, total_crops: int, reserve: float = 0.25) -> int:
    """How many crops one model call may take: as many as fit in ``free_bytes`` less ``reserve``.

    ``bytes_per_crop`` is the measured peak growth of one crop's forward+backward. At least 1,
    at most ``total_crops``.
    """
    if bytes_per_crop <= 0:
        return total_crops
    return max(1, min(total_crops, int(free_bytes * (1 - reserve)) // bytes_per_crop))


def use_channels_last(module: torch.nn.Module, device: torch.device) -> bool:
    """Store a convolutional network's weights channels-last, where its convolutions run faster.

    On CUDA: any module with 2-D convolutions. On the CPU: conv nets only, i.e. modules with a
    convolution that is no patch embedding (kernel size equal to the stride, a ViT's only
    convolution); the results equal the contiguous ones up to float rounding (README, "Engine
    defaults"). Returns True when it converted ``module`` (in place); other modules and devices are
    left as they are.
    """
    convolutions = [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
    if device.type == "cpu":
        convolutions = [m for m in convolutions if tuple(m.kernel_size) != tuple(m.stride)]
    elif device.type != "cuda":
        return False
    if not convolutions:
        return False
    module.to(memory_format=torch.channels_last)
    return True


MEMORY_FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def memory_format(module: torch.nn.Module) -> str:
    """``"channels_last"`` when ``module``'s 2-D convolution weights are stored so, else ``"contiguous"``."""
    for m in module.modules():
        if isinstance(m, torch.nn.Conv2d) and not m.weight.is_contiguous():
            if m.weight.is_contiguous(memory_format=torch.channels_last):
                return "channels_last"
    return "contiguous"


def set_memory_format(module: torch.nn.Module, name: str) -> None:
    """Store ``module``'s weights in the memory format ``name`` (a key of :data:`MEMORY_FORMATS`)."""
    if memory_format(module) != name:
        module.to(memory_format=MEMORY_FORMATS[name])
