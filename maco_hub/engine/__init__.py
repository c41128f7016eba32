"""The batched MACO optimizer and what it needs: parametrization, crops, schedules, devices, threads.

``from maco_hub.engine import EngineConfig, optimize`` is the public path; :mod:`maco_hub.engine.config`
holds the settings, :mod:`maco_hub.engine.loop` the optimization loop.
"""

from .config import SHORT_RUN_CROPS, EngineConfig
from .loop import EngineResult, ScoreFn, optimize, resolve_device

__all__ = ["SHORT_RUN_CROPS", "EngineConfig", "EngineResult", "ScoreFn", "optimize", "resolve_device"]
