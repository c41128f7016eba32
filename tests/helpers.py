"""Small helpers several test files share (import with ``from helpers import ...``)."""

from __future__ import annotations

import torch

QUICK = {"steps": 3, "canvas": 48, "progress": False, "device": "cpu"}
"""explain() settings that make a run take well under a second on a tiny model."""


def hook_count(module: torch.nn.Module) -> int:
    """Forward hooks attached anywhere in ``module`` (to check nothing is left behind)."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in module.modules())
