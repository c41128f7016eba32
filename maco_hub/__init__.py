"""maco_hub: MACO feature visualizations of Hugging Face vision models.

Heavy modules (torch models, transformers, datasets) load on first use of a name below, so
``import maco_hub`` and ``maco-hub --help`` stay fast. :data:`_EXPORTS` is the one list of the
public names; ``__all__`` and the lazy lookup come from it, and a test checks that the
``TYPE_CHECKING`` imports (for type checkers and editors) say the same.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

_EXPORTS = {  # public name -> the module defining it ("" for a subpackage)
    "explain": "explainer",
    "evaluate": "legibility",
    "regenerate": "reproduction",
    "load_model": "models.loader",
    "layers": "models.inspection",
    "labels": "models.inspection",
    "objectives": "",
    "EngineConfig": "engine",
    "optimize": "engine",
    "Preprocessing": "models.preprocessing",
    "Spectrum": "spectra.spectrum",
    "load_spectrum": "spectra.loading",
    "push_spectrum": "spectra.hub",
    "Gallery": "gallery.rows",
    "Visualization": "gallery.rows",
    "save_gallery": "gallery.storage",
    "repair_gallery": "gallery.storage",
    "save_evaluation": "gallery.storage",
    "load_gallery": "gallery.storage",
    "push_gallery": "gallery.storage",
}

__all__ = sorted(["__version__", *_EXPORTS])


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'maco_hub' has no attribute {name!r}")
    if not _EXPORTS[name]:
        return importlib.import_module(f"{__name__}.{name}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return list(__all__)


if TYPE_CHECKING:  # pragma: no cover
    from . import objectives
    from .engine import EngineConfig, optimize
    from .explainer import explain
    from .gallery.rows import Gallery, Visualization
    from .gallery.storage import load_gallery, push_gallery, repair_gallery, save_evaluation, save_gallery
    from .legibility import evaluate
    from .models.inspection import labels, layers
    from .models.loader import load_model
    from .models.preprocessing import Preprocessing
    from .reproduction import regenerate
    from .spectra.hub import push_spectrum
    from .spectra.loading import load_spectrum
    from .spectra.spectrum import Spectrum
