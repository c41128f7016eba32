"""What a model offers to visualize: its hookable layers and its class labels, with filters.

Both verbs take a :class:`~maco_hub.models.loader.LoadedModel` or anything
:func:`~maco_hub.models.loader.load_model` accepts (then ``load_options`` go to it).

>>> import torch
>>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten())
>>> [(info.name, info.kind, info.shape) for info in layers(net, kind="conv")]
[('0', 'conv', (4, 222, 222)), ('1', 'conv', (4, 222, 222))]
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..errors import ConfigError
from .class_names import search
from .hooks import LayerInfo, layer_table
from .loader import LoadedModel, load_model

KINDS = ("conv", "tokens", "vector")


def layers(
    model: Any, *, grep: str | None = None, kind: str | None = None, **load_options: Any
) -> list[LayerInfo]:
    """Hookable layers of ``model`` in module order; ``grep`` keeps names containing it (case
    folded), ``kind`` keeps one of "conv", "tokens", "vector".

    >>> [info.name for info in layers("google/vit-base", grep="layers.1")][:2]  # doctest: +SKIP
    ['vit.layers.1', 'vit.layers.1.attention']
    """
    if kind is not None and kind not in KINDS:
        raise ConfigError(f"kind={kind!r} must be one of {', '.join(KINDS)}.")
    found = list(layer_table(_loaded(model, load_options)).values())
    if grep:
        found = [info for info in found if grep.lower() in info.name.lower()]
    return [info for info in found if kind is None or info.kind == kind]


def labels(model: Any, *, grep: str | None = None, **load_options: Any) -> list[tuple[int, str]]:
    """(index, label) of the model's classes; ``grep`` keeps labels holding that word or text
    (whole-word matches first). A backbone (no trained head) is an error; a head without names
    gives an empty list.

    >>> labels("google/vit-base", grep="cat")[:2]  # doctest: +SKIP
    [(281, 'tabby, tabby cat'), (282, 'tiger cat')]
    """
    loaded = _loaded(model, load_options)
    loaded.require_head()
    if not loaded.id2label:
        return []
    if grep:
        return search(loaded.id2label, grep)
    return sorted(loaded.id2label.items())


def _loaded(model: Any, load_options: dict) -> LoadedModel:
    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, nn.Module) and "preprocessing" not in load_options:
        size = getattr(getattr(model, "config", None), "image_size", None) or 224
        load_options["preprocessing"] = {"mean": (0.5,) * 3, "std": (0.5,) * 3, "size": size}
    return load_model(model, **load_options)
