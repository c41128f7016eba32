"""The documented path of the engine's schedules: this name is :mod:`maco_hub.engine.schedules` itself."""

import sys

from .engine import schedules as _schedules

sys.modules[__name__] = _schedules
