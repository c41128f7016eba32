"""Where a module lives: the device and dtype of its parameters, and blank inputs made there."""

from __future__ import annotations

import torch
from torch import nn


def placement(module: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Device and dtype of the module's first parameter (the CPU and torch's default dtype for a
    module without parameters)."""
    param = next(module.parameters(), None)
    if param is None:
        return torch.device("cpu"), torch.get_default_dtype()
    return param.device, param.dtype


def blank_pixels(module: nn.Module, size: tuple[int, int], count: int = 2) -> torch.Tensor:
    """``count`` zero images (count, 3, height, width) on the module's device, in its dtype: the
    input of a dry forward pass."""
    device, dtype = placement(module)
    return torch.zeros(count, 3, *size, device=device, dtype=dtype)
