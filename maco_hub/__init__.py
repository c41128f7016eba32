"""maco_hub: MACO feature visualizations of Hugging Face vision models.

Heavy modules (torch models, transformers, datasets) load on first use of a name below, so
``import maco_hub`` and ``maco-hub --help`` stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

__all__ = [
    "EngineConfig", "Gallery", "Preprocessing", "Spectrum", "Visualization", "__version__",
    "explain", "layers", "load_gallery", "load_model", "load_spectrum", "objectives", "optimize",
    "push_gallery", "push_spectrum", "regenerate", "repair_gallery", "save_gallery",
]

_LAZY = {
    "EngineConfig": "maco_hub.engine",
    "optimize": "maco_hub.engine",
    "Preprocessing": "maco_hub.preprocessing",
    "Spectrum": "maco_hub.spectra",
    "load_spectrum": "maco_hub.spectra",
    "load_model": "maco_hub.models",
    "layers": "maco_hub.hooks",
    "Gallery": "maco_hub.gallery",
    "Visualization": "maco_hub.gallery",
    "explain": "maco_hub.explainer",
    "regenerate": "maco_hub.explainer",
    "save_gallery": "maco_hub.store",
    "repair_gallery": "maco_hub.store",
    "load_gallery": "maco_hub.hub",
    "push_gallery": "maco_hub.hub",
    "push_spectrum": "maco_hub.hub",
}


def __getattr__(name: str) -> Any:
    if name == "objectives":
        return importlib.import_module("maco_hub.objectives")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'maco_hub' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # pragma: no cover
    from . import objectives
    from .engine import EngineConfig, optimize
    from .explainer import explain, regenerate
    from .gallery import Gallery, Visualization
    from .hooks import layers
    from .hub import load_gallery, push_gallery, push_spectrum
    from .models import load_model
    from .preprocessing import Preprocessing
    from .spectra import Spectrum, load_spectrum
    from .store import repair_gallery, save_gallery
