"""Layers of a loaded model, by their real dotted path, and scoped forward hooks on them.

:func:`layer_table` runs one dry forward pass (batch of 2 zero images at the model's input size, under
``torch.no_grad()``) and lists every module, in ``named_modules()`` order, whose output is

* ``"conv"``: a channels-first map (N, C, H, W), ``units`` = C;
* ``"tokens"``: a token sequence (N, T, D), ``units`` = D;
* ``"vector"``: a vector (N, D), ``units`` = D.

A module returning a tuple or a ``ModelOutput`` counts by its first tensor (the hidden state).
Not listed: the root module, dropout / drop-path / identity modules and any module that returns
its input unchanged (a clone of another layer; an in-place activation still counts), outputs
without the batch dimension (embedding tables), channels-last 4-D maps (ConvNeXt's inner linear
layers: an ``nn.Linear``, or a map whose dimensions 1, 2 have the input's aspect ratio while
dimensions 2, 3 do not), (N, C, 1) pooling outputs, and modules that never run. A module called
several times in one forward counts by its first call, in :func:`layer_table` and in
:func:`capture` alike. Loading a model is not this module's job: it takes a loaded model
(:func:`maco_hub.layers` loads and lists).

Token layers record ``prefix_tokens``, the tokens before the patch grid (CLS, distillation and
register tokens). Rule: with a ``config.patch_size`` p and input H x W, the grid holds
(H // p)(W // p) tokens and the rest (0 to 16) are prefix; otherwise the prefix is the smallest
k <= 16 leaving a square grid (T - k = r²). ViT/DeiT/DINOv2/CLIP have prefixes; SigLIP and Swin
have none.
"""

from __future__ import annotations

import contextlib
import difflib
import math
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..errors import LayerNotFoundError
from .placement import blank_pixels

if TYPE_CHECKING:
    from .loader import LoadedModel

_MAX_PREFIX = 16
_SKIPPED_TYPES = ("Dropout", "DropPath", "Identity", "StochasticDepth")
_TABLES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class LayerInfo:
    """One hookable layer of a loaded model."""

    name: str  # dotted path in module.named_modules()
    module_type: str  # class name of the module
    kind: str  # "conv" (N, C, H, W), "tokens" (N, T, D) or "vector" (N, D)
    shape: tuple[int, ...]  # output shape without the batch dimension
    units: int  # channels (conv) or features (tokens, vector)
    prefix_tokens: int = 0  # tokens before the patch grid (CLS, registers); 0 unless "tokens"


def layer_table(loaded: LoadedModel) -> dict[str, LayerInfo]:
    """Name -> LayerInfo of ``loaded``, computed once per module and input size."""
    per_module = _TABLES.setdefault(loaded.module, {})
    key = loaded.preprocessing.size
    if key not in per_module:
        per_module[key] = _probe(loaded)
    return per_module[key]


class Captured:
    """Outputs of hooked layers during one forward; :meth:`take` reads and clears them."""

    def __init__(self) -> None:
        self._outputs: dict[str, torch.Tensor] = {}

    def take(self) -> dict[str, torch.Tensor]:
        """The outputs captured since the last call (name -> first tensor), then forget them."""
        outputs, self._outputs = self._outputs, {}
        return outputs

    def clear(self) -> None:
        self._outputs = {}

    def _hook(self, name: str):
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if name not in self._outputs:
                tensor = first_tensor(output)
                if tensor is not None:
                    self._outputs[name] = tensor

        return hook


@contextlib.contextmanager
def capture(model: nn.Module | LoadedModel, layer_names: Sequence[str]) -> Iterator[Captured]:
    """Hook only ``layer_names`` of ``model`` while the block runs; hooks removed on exit.

    >>> with capture(loaded, ["vit.layers.6"]) as store:  # doctest: +SKIP
    ...     loaded.forward(pixels)
    ...     activation = store.take()["vit.layers.6"]
    """
    module = getattr(model, "module", model)
    modules = dict(module.named_modules())
    names = list(dict.fromkeys(layer_names))
    for name in names:
        if name not in modules or name == "":
            raise LayerNotFoundError(unknown_layer_message(name, list(modules)))
    store = Captured()
    handles = []
    try:
        for name in names:
            handles.append(modules[name].register_forward_hook(store._hook(name)))
        yield store
    finally:
        for handle in handles:
            handle.remove()
        store.clear()


def unknown_layer_message(name: str, valid: Sequence[str]) -> str:
    """The error text for a layer name that is not a module path, with the closest ones."""
    close = close_names(name, valid)
    hint = f" Closest: {', '.join(close)}." if close else ""
    return (
        f"Layer {name!r} is not a hookable module of this model.{hint} List all layers with "
        "maco_hub.layers(model) or `maco-hub layers MODEL`."
    )


def close_names(name: str, valid: Sequence[str], count: int = 5) -> list[str]:
    """Valid names ending with or containing ``name``, then close spellings (:mod:`difflib`)."""
    valid = [v for v in valid if v]
    found = [v for v in valid if name and (v.endswith("." + name) or v == name)]
    found += [v for v in valid if name and name in v and v not in found]
    for close in difflib.get_close_matches(name, valid, n=count, cutoff=0.5):
        if close not in found:
            found.append(close)
    return found[:count]


def first_tensor(output: Any) -> torch.Tensor | None:
    """The tensor a layer output stands for: itself, or the first tensor of a tuple/ModelOutput."""
    if torch.is_tensor(output):
        return output
    if isinstance(output, dict):  # ModelOutput is an OrderedDict
        output = tuple(output.values())
    if isinstance(output, (tuple, list)):
        for item in output:
            if torch.is_tensor(item):
                return item
    return None


def _probe(loaded: LoadedModel) -> dict[str, LayerInfo]:
    module = loaded.module
    seen: dict[str, tuple[nn.Module, torch.Tensor]] = {}

    def record(name: str):
        def hook(mod: nn.Module, inputs: Any, output: Any) -> None:
            tensor = first_tensor(output)
            if name in seen or tensor is None:
                return
            inplace = getattr(mod, "inplace", False)
            if not inplace and any(tensor is item for item in inputs if torch.is_tensor(item)):
                return  # returns its input: a clone of the previous layer
            seen[name] = (mod, tensor)

        return hook

    named = [(n, m) for n, m in module.named_modules() if n]
    handles = [m.register_forward_hook(record(n)) for n, m in named]
    pixels = blank_pixels(module, loaded.preprocessing.size)
    try:
        with torch.no_grad():
            loaded.forward(pixels)
    finally:
        for handle in handles:
            handle.remove()
    patch_tokens = _patch_count(module, loaded.preprocessing.size)
    table = {}
    for name, _ in named:
        if name in seen:
            info = _describe(name, *seen[name], patch_tokens, loaded.preprocessing.size)
            if info is not None:
                table[name] = info
    return table


def _describe(name: str, mod: nn.Module, out: torch.Tensor, patch_tokens: int | None, size: tuple[int, int]):
    cls_name = type(mod).__name__
    if any(s in cls_name for s in _SKIPPED_TYPES) or out.ndim not in (2, 3, 4):
        return None
    if out.shape[0] != 2 or not out.is_floating_point():
        return None
    shape = tuple(int(s) for s in out.shape[1:])
    if out.ndim == 4:
        if isinstance(mod, nn.Linear) or _channels_last(shape, size):
            return None
        return LayerInfo(name, cls_name, "conv", shape, shape[0])
    if out.ndim == 3:
        if shape[1] == 1:
            return None
        prefix = _prefix_tokens(shape[0], patch_tokens)
        return LayerInfo(name, cls_name, "tokens", shape, shape[1], prefix)
    return LayerInfo(name, cls_name, "vector", shape, shape[0])


def _channels_last(shape: tuple[int, ...], size: tuple[int, int]) -> bool:
    """Whether (A, B, C) is (H, W, C) rather than (C, H, W): the pair closer to the input's
    aspect ratio is the spatial one (channels-first on a tie)."""

    def off(height: int, width: int) -> float:
        return abs(math.log((height / width) / (size[0] / size[1])))

    return off(shape[0], shape[1]) < off(shape[1], shape[2])


def _patch_count(module: nn.Module, size: tuple[int, int]) -> int | None:
    patch = getattr(getattr(module, "config", None), "patch_size", None)
    if isinstance(patch, int) and patch > 0:
        patch = (patch, patch)
    if isinstance(patch, (tuple, list)) and len(patch) == 2 and all(int(p) > 0 for p in patch):
        return (size[0] // int(patch[0])) * (size[1] // int(patch[1]))
    return None


def _prefix_tokens(tokens: int, patch_tokens: int | None) -> int:
    if patch_tokens is not None and 0 <= tokens - patch_tokens <= _MAX_PREFIX:
        return tokens - patch_tokens
    for k in range(min(_MAX_PREFIX, tokens - 1) + 1):
        if math.isqrt(tokens - k) ** 2 == tokens - k:
            return k
    return 0
