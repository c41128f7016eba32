"""The ``maco-hub`` command line (:func:`main`); ``python -m maco_hub.cli`` runs it too."""

from .commands import main

__all__ = ["main"]
