"""Small helpers several test files share (import with ``from helpers import ...``)."""

from __future__ import annotations

import os
import subprocess
import sys

import torch

QUICK = {"steps": 3, "canvas": 48, "progress": False, "device": "cpu"}
"""explain() settings that make a run take well under a second on a tiny model."""


def hook_count(module: torch.nn.Module) -> int:
    """Forward hooks attached anywhere in ``module`` (to check nothing is left behind)."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in module.modules())


def subprocess_cli(
    *args: str, timeout: float = 300, env: dict | None = None, **options
) -> subprocess.CompletedProcess:
    """Run ``maco-hub ARGS`` as users do, in a new process (``env`` adds to this environment).
    The ``maco_cli`` fixture runs it in this process, which is much faster."""
    return subprocess.run(
        [sys.executable, "-m", "maco_hub.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        **options,
    )


def minimal_record(seed: int = 0, *, canvas: int = 32, stored_key: str | None = None):
    """A RowRecord with only what a gallery needs (for rows made by hand, not by explain)."""
    from maco_hub.gallery.record import RowRecord

    objective = {"type": "ClassLogit", "class_id": 0}
    return RowRecord(
        model_id="m",
        model_revision=None,
        objective_record=objective,
        seed=seed,
        config={"steps": 1, "canvas": canvas},
        spectrum={"sha256": "0" * 64},
        stored_key=stored_key,
    )
