"""Every error maco_hub raises on purpose. Each also inherits the matching built-in exception."""

from __future__ import annotations


class MacoHubError(Exception):
    """Base class: messages name the bad value and say how to fix it."""

    def __str__(self) -> str:  # KeyError would otherwise quote the whole message
        return str(self.args[0]) if self.args else ""


class ConfigError(MacoHubError, ValueError):
    """An option or a combination of options that cannot work."""


class NonFiniteError(MacoHubError, FloatingPointError):
    """A run whose scores or images became NaN or infinite: nothing of it is saved."""


class SpectrumError(MacoHubError, ValueError):
    """A spectrum file that is corrupted, mismatched or has missing metadata."""


class ModelLoadError(MacoHubError, ValueError):
    """A model that cannot be found or loaded."""


class NotAVisionModelError(ModelLoadError):
    """A model (text, audio, ...) that takes no images."""


class NoClassifierHeadError(MacoHubError, ValueError):
    """A class objective on a model whose checkpoint has no trained classification head."""


class NoTextTowerError(MacoHubError, ValueError):
    """A text objective on a model without a CLIP/SigLIP text tower."""


class LayerNotFoundError(MacoHubError, KeyError):
    """A layer name that is not a module path of the loaded model."""


class ClassNotFoundError(MacoHubError, KeyError):
    """A class name or index the model's labels do not contain."""


class UnitOutOfRangeError(MacoHubError, IndexError):
    """A channel, neuron or position index outside the layer's output."""


class ImageError(MacoHubError, ValueError):
    """An image given to start from or to invert that is missing, not an image, or too big."""


class GalleryError(MacoHubError, ValueError):
    """A gallery folder or dataset that is damaged, crafted or not a maco_hub gallery."""


class HubError(MacoHubError, RuntimeError):
    """A Hub operation that failed (network, permissions, wrong repo type); local files are intact."""
