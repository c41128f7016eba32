"""Load any Hugging Face vision model (or a plain ``nn.Module``) ready for feature visualization.

``load_model`` returns a :class:`LoadedModel`: the module in eval mode with frozen parameters, its
pixel convention (:class:`~maco_hub.preprocessing.Preprocessing`), its labels and whether the
checkpoint really contains a trained classification head.

Choices:

* Image classifiers load through their ``*ForImageClassification`` class. When the checkpoint lacks
  the head (its config names no such class, or loading reports missing head weights) the model is a
  backbone (``has_classifier=False``) and only its trained base model is kept.
* CLIP/SigLIP-style dual models (a config with ``vision_config``) keep their vision tower only
  (``CLIPVisionModel``, ``SiglipVisionModel``...), without the projection into the joint space:
  layer names are then the tower's own (``encoder.layers.3``), as for a vision-only checkpoint.
* Weights load as float32 unless ``dtype`` says otherwise.
"""

from __future__ import annotations

import difflib
import importlib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import (
    ClassNotFoundError,
    ConfigError,
    ModelLoadError,
    NoClassifierHeadError,
    NotAVisionModelError,
)
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


_BUILTIN_MODEL_TYPES = {"maco_efficientnet_lite": "maco_hub.efficientnet_lite"}
_SUPPORTED = (
    "image classifiers and image backbones (ViT, DeiT, Swin, ConvNeXt, ResNet, RegNet, "
    "MobileNet, EfficientNet, DINOv2, ...) and the vision tower of CLIP/SigLIP-style models"
)


@dataclass(frozen=True)
class LoadedModel:
    """A vision model ready for optimization, with what objectives need to know about it."""

    module: nn.Module  # eval mode, parameters frozen
    preprocessing: Preprocessing  # the checkpoint's pixel convention and input size
    model_id: str  # resolved Hub id, local folder, or a description of a user module
    revision: str | None  # resolved commit hash for Hub repos, else None
    id2label: dict[int, str] | None  # class names, None when there is no trained head
    has_classifier: bool  # whether the checkpoint holds a trained classification head
    family: str  # config.model_type, or the module's class name
    num_labels: int | None = None  # outputs of the trained head (None without one)

    def forward(self, pixel_values: torch.Tensor) -> Any:
        """Run the model on normalized pixels (N, 3, H, W); returns its raw output."""
        if _is_hf_model(self.module):
            return self.module(pixel_values=pixel_values)
        return self.module(pixel_values)

    def logits(self, outputs: Any) -> torch.Tensor:
        """Class logits (N, num_classes) from the output of :meth:`forward`."""
        self._require_head()
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
        """Class index from an index or a name ("tabby cat" matches "tabby, tabby cat")."""
        self._require_head()
        if isinstance(cls, str):
            found = self._class_by_name(cls)
            if found is not None:
                return found
            if not cls.strip().isdigit():
                raise ClassNotFoundError(self._unknown_name_message(cls))
            cls = int(cls.strip())
        if isinstance(cls, bool) or not isinstance(cls, int):
            try:
                cls = int(cls.__index__())  # numpy and torch integers
            except AttributeError:
                raise ClassNotFoundError(
                    f"Class {cls!r} must be an integer index or a class name."
                ) from None
        count = self.num_classes
        if cls < 0 or (count is not None and cls >= count):
            limit = f"0..{count - 1}" if count else "non-negative"
            raise ClassNotFoundError(
                f"Class index {cls} is out of range for {self.model_id!r}: valid indices are "
                f"{limit}."
            )
        return cls

    def label(self, class_id: int) -> str | None:
        """The name of class ``class_id`` (None when the model has no names)."""
        return (self.id2label or {}).get(class_id)

    def _require_head(self) -> None:
        if not self.has_classifier:
            raise NoClassifierHeadError(
                f"Model {self.model_id!r} ({self.family}) is a backbone: its checkpoint has no "
                "trained classification head, so class objectives are meaningless. Use channel, "
                "neuron or layer objectives instead (list layers with maco_hub.layers(model) or "
                "`maco-hub layers MODEL`)."
            )

    def _class_by_name(self, name: str) -> int | None:
        key = _label_key(name)
        if not key or not self.id2label:
            return None
        for whole_label_only in (True, False):
            hits = sorted(
                index for index, label in self.id2label.items()
                if key in _label_keys(label, whole_label_only)
            )
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1:
                names = ", ".join(f"{i} {self.id2label[i]!r}" for i in hits)
                raise ClassNotFoundError(
                    f"Class name {name!r} is ambiguous for {self.model_id!r}: it matches {names}. "
                    "Pass the class index instead."
                )
        return None

    def _unknown_name_message(self, name: str) -> str:
        if not self.id2label:
            return (f"Class name {name!r} cannot be looked up: {self.model_id!r} has no class "
                    "names. Pass the class index instead.")
        synonyms = {}
        for index, label in self.id2label.items():
            for part in [label, *label.split(",")]:
                synonyms.setdefault(part.strip().lower(), index)
        close = difflib.get_close_matches(name.strip().lower(), list(synonyms), n=5, cutoff=0.5)
        hint = ", ".join(f"{synonyms[c]} {self.id2label[synonyms[c]]!r}" for c in close)
        return (f"Class name {name!r} is not a label of {self.model_id!r}"
                + (f"; closest: {hint}." if hint else ".")
                + " Pass a class index or an exact label (see LoadedModel.id2label).")


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
    """Load a Hub repo id, a local folder or an ``nn.Module`` for visualization.

    >>> loaded = load_model("google/vit-base")  # doctest: +SKIP
    >>> loaded.resolve_class("tabby cat")  # doctest: +SKIP
    281
    """
    if isinstance(model, nn.Module):
        return _from_module(model, preprocessing=preprocessing, device=device, dtype=dtype)
    if not isinstance(model, (str, Path)):
        raise ConfigError(
            f"model={model!r} must be a Hub repo id, a local folder or a torch nn.Module."
        )
    name = str(model)
    is_local = Path(name).is_dir()
    if not is_local and name in ALIASES:
        logger.info("Model alias %r resolved to %r.", name, ALIASES[name])
        name = ALIASES[name]
    hub = {"cache_dir": cache_dir, "revision": revision, "token": token}
    if local_files_only is not None:
        hub["local_files_only"] = local_files_only
    if trust_remote_code:
        hub["trust_remote_code"] = True
    module, config, has_head = _load_hf(name, hub, trust_remote_code, dtype)
    module.eval().requires_grad_(False)
    if device is not None:
        module.to(device)
    prep = coerce_preprocessing(preprocessing) if preprocessing is not None else None
    if prep is None:
        prep = checkpoint_preprocessing(name, hub, config)
    labels = getattr(config, "id2label", None) if has_head else None
    return LoadedModel(
        module=module,
        preprocessing=prep,
        model_id=name,
        revision=None if is_local else _cached_commit(name, revision, cache_dir),
        id2label={int(k): str(v) for k, v in labels.items()} if labels else None,
        has_classifier=has_head,
        family=str(getattr(config, "model_type", None) or type(module).__name__),
        num_labels=getattr(config, "num_labels", None) if has_head else None,
    )


# ---------------------------------------------------------------- Hugging Face checkpoints


def _load_hf(name: str, hub: dict, trust: bool, dtype: torch.dtype | None):
    """(module, config, has_head) for a Hub id or folder."""
    import transformers
    from transformers import AutoConfig, AutoModel, AutoModelForImageClassification

    raw = _raw_config(name, hub)
    model_type = raw.get("model_type")
    if model_type in _BUILTIN_MODEL_TYPES:
        importlib.import_module(_BUILTIN_MODEL_TYPES[model_type])
    if raw.get("auto_map") and not trust:
        raise ModelLoadError(
            f"Model {name!r} ships its own code (config.json has auto_map). Pass "
            "trust_remote_code=True if you trust that repository's code."
        )
    try:
        config = AutoConfig.from_pretrained(name, **hub)
    except (OSError, ValueError, KeyError) as exc:
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING

        if model_type in CONFIG_MAPPING:
            raise ModelLoadError(f"Could not read the config of {name!r}: {exc}") from exc
        raise ModelLoadError(
            f"Model {name!r} has model_type={model_type!r}, which this transformers "
            f"{transformers.__version__} does not know. Upgrade transformers, or pass "
            "trust_remote_code=True for a repository with its own code."
        ) from exc
    _check_vision(name, config)
    load = {**hub, "dtype": dtype or torch.float32}
    architectures = list(getattr(config, "architectures", None) or [])
    wants_head = any("ForImageClassification" in a for a in architectures) or (
        not architectures and not _is_dual(config)
        and type(config) in AutoModelForImageClassification._model_mapping
    )
    try:
        if wants_head:
            cls = _named_class(architectures) or AutoModelForImageClassification
            module, info = cls.from_pretrained(name, output_loading_info=True, **load)
            lost = _lost_head_keys(module, info)
            if not lost:
                return module, config, True
            logger.warning(
                "Checkpoint %r has no trained classification head (missing: %s); using it as a "
                "backbone.", name, ", ".join(sorted(lost)[:4]))
            return module.base_model, config, False
        module = AutoModel.from_pretrained(name, **load)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"Could not load the weights of {name!r}: {exc}") from exc
    if _is_dual(config):
        tower = getattr(module, "vision_model", None) or getattr(module, "vision_tower", None)
        if not isinstance(tower, nn.Module):
            raise NotAVisionModelError(
                f"Model {name!r} ({config.model_type}) has a vision_config but no vision tower "
                f"this library can use. Supported: {_SUPPORTED}.")
        module = tower
        config = getattr(tower, "config", config)
    return module, config, False


def _raw_config(name: str, hub: dict) -> dict:
    from transformers import PretrainedConfig

    options = {k: v for k, v in hub.items() if k != "trust_remote_code"}
    try:
        raw, _ = PretrainedConfig.get_config_dict(name, **options)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"Could not find model {name!r} on the Hugging Face Hub or in the local cache. "
            "Check the spelling of the repo id (org/name) and the revision; when offline "
            "(HF_HUB_OFFLINE=1) the model must already be in the cache; or pass a local folder "
            "that holds config.json."
        ) from exc
    return raw


def _check_vision(name: str, config: Any) -> None:
    from transformers import AutoModelForImageClassification
    from transformers.models.auto import modeling_auto as auto

    vision_types = (
        set(auto.MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES)
        | set(auto.MODEL_FOR_IMAGE_MAPPING_NAMES)
        | set(auto.MODEL_FOR_ZERO_SHOT_IMAGE_CLASSIFICATION_MAPPING_NAMES)
    )
    model_type = str(config.model_type)
    image_like = hasattr(config, "num_channels") and hasattr(config, "image_size")
    if (model_type in vision_types or _is_dual(config) or image_like
            or model_type.endswith("_vision_model")
            or type(config) in AutoModelForImageClassification._model_mapping):
        return
    raise NotAVisionModelError(
        f"Model {name!r} is a {config.model_type!r} model, which takes no images. "
        f"Supported: {_SUPPORTED}."
    )


def _is_dual(config: Any) -> bool:
    return getattr(config, "vision_config", None) is not None


def _named_class(architectures: list[str]) -> type | None:
    import transformers

    for arch in architectures:
        if "ForImageClassification" in arch:
            cls = getattr(transformers, arch, None)
            if isinstance(cls, type):
                return cls
    return None


def _lost_head_keys(module: nn.Module, info: dict) -> set[str]:
    """Weights outside the base model that loading had to initialize at random."""
    prefix = getattr(module, "base_model_prefix", "") + "."
    lost = set(info.get("missing_keys") or ())
    for item in info.get("mismatched_keys") or ():
        lost.add(item[0] if isinstance(item, tuple) else str(item))
    return {k for k in lost if not k.startswith(prefix)}


def _cached_commit(repo_id: str, revision: str | None, cache_dir: Any) -> str | None:
    """The commit the cache resolved ``revision`` to (works offline)."""
    from huggingface_hub import try_to_load_from_cache

    path = try_to_load_from_cache(repo_id, "config.json", cache_dir=cache_dir, revision=revision)
    if isinstance(path, str) and Path(path).parent.parent.name == "snapshots":
        return Path(path).parent.name
    return None


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
    probe = next(module.parameters(), None)
    pixels = torch.zeros(2, 3, *prep.size, device=probe.device if probe is not None else None,
                         dtype=probe.dtype if probe is not None else None)
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


def _label_key(text: str) -> str:
    """Case, spacing and punctuation folded away: "Tabby-Cat" -> "tabbycat"."""
    return re.sub(r"[^0-9a-z]+", "", text.lower())


def _label_keys(label: str, whole_only: bool) -> set[str]:
    keys = {_label_key(label)}
    if not whole_only:
        keys |= {_label_key(part) for part in label.split(",")}
    return keys - {""}
