"""Hugging Face checkpoints (Hub repo ids or local folders) loaded as vision modules.

:func:`load_checkpoint` returns ``(module, config, has_head)``:

* Image classifiers load through their ``*ForImageClassification`` class. When the checkpoint lacks
  the head (its config names no such class, or loading reports missing head weights) the model is a
  backbone (``has_head=False``) and only its trained base model is kept.
* CLIP/SigLIP-style dual models (a config with ``vision_config``) keep their vision tower only
  (``CLIPVisionModel``, ``SiglipVisionModel``...), without the projection into the joint space:
  layer names are then the tower's own (``encoder.layers.3``), as for a vision-only checkpoint.

Every failure is a :class:`~maco_hub.errors.ModelLoadError` that says which of these it is: a
missing local folder, an unreachable Hub, an unknown repo id, unreadable weights, weights that do
not fit the config.

Unless the caller trusts remote code, no code from the checkpoint ever runs: before transformers
builds anything, every configuration file of the checkpoint (config.json, preprocessor_config.json,
processor_config.json, tokenizer_config.json, ...) is checked for what would make transformers
import code from the checkpoint or the Hub (:func:`remote_code_pointer`), and every transformers
call gets ``trust_remote_code`` explicitly, so transformers never asks on stdin.
"""

from __future__ import annotations

import importlib
import json
import logging
import re
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ModelLoadError, NotAVisionModelError

logger = logging.getLogger(__name__)

_BUILTIN_MODEL_TYPES = {"maco_efficientnet_lite": "maco_hub.models.efficientnet_lite.modeling"}
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt", ".ckpt")
_CONFIG_FILES = (
    "config.json",
    "preprocessor_config.json",
    "processor_config.json",
    "video_preprocessor_config.json",
    "tokenizer_config.json",
    "feature_extractor_config.json",
    "image_processor_config.json",
)
"""Configuration files transformers may read from a Hub repo (a folder: every *config.json)."""
_CODE_KEYS = frozenset({"auto_map", "custom_pipelines"})  # classes/pipelines from repo code
_KERNEL_KEYS = frozenset({"attn_implementation", "_attn_implementation", "_attn_implementation_internal"})
_MAX_CONFIG_BYTES = 64 << 20  # a large tokenizer_config.json has a few MiB
SUPPORTED = (
    "image classifiers and image backbones (ViT, DeiT, Swin, ConvNeXt, ResNet, RegNet, "
    "MobileNet, EfficientNet, DINOv2, ...) and the vision tower of CLIP/SigLIP-style models"
)


@dataclass(frozen=True)
class CheckpointSource:
    """Where a loaded model came from, to load more of the same checkpoint later."""

    name: str  # what from_pretrained was given: a Hub repo id or a folder
    hub: Mapping[str, Any] = field(repr=False)  # from_pretrained options, revision resolved to a commit
    trust_remote_code: bool = False
    fingerprint: str | None = None  # a folder's fingerprint when it was loaded (None: a Hub repo)


def is_path(name: str) -> bool:
    """Whether ``name`` can only be a folder (./x, ../x, /x, ~/x, a\\b, a/b/c), not a Hub repo id."""
    return name.startswith((".", "/", "~", "\\")) or "\\" in name or name.count("/") > 1


def load_checkpoint(
    name: str, hub: dict, trust: bool, dtype: torch.dtype | None
) -> tuple[nn.Module, Any, bool]:
    """(module, config, has_head) for a Hub id or folder; ``hub`` holds from_pretrained options."""
    import transformers
    from transformers import AutoConfig, AutoModel, AutoModelForImageClassification

    raw = _raw_config(name, hub)  # reads config.json only: no code runs
    if not trust:
        refuse_remote_code(name, hub)
    model_type = raw.get("model_type")
    if model_type in _BUILTIN_MODEL_TYPES:
        importlib.import_module(_BUILTIN_MODEL_TYPES[model_type])
    hub = {**hub, "trust_remote_code": bool(trust)}  # explicit: transformers never prompts
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
        not architectures
        and not _is_dual(config)
        and type(config) in AutoModelForImageClassification._model_mapping
    )
    if wants_head:
        cls = _named_class(architectures) or AutoModelForImageClassification
        module, info = _from_pretrained(cls, name, load, config)
        lost = _lost_head_keys(module, info)
        if not lost:
            return module, config, True
        logger.warning(
            "Checkpoint %r has no trained classification head (missing: %s); using it as a backbone.",
            name,
            ", ".join(sorted(lost)[:4]),
        )
        return module.base_model, config, False
    module, _ = _from_pretrained(AutoModel, name, load, config)
    if _is_dual(config):
        tower = getattr(module, "vision_model", None) or getattr(module, "vision_tower", None)
        if not isinstance(tower, nn.Module):
            raise NotAVisionModelError(
                f"Model {name!r} ({config.model_type}) has a vision_config but no vision tower "
                f"this library can use. Supported: {SUPPORTED}."
            )
        module = tower
        config = getattr(tower, "config", config)
    return module, config, False


def refuse_remote_code(name: str, hub: dict) -> None:
    """Raise :class:`ModelLoadError` when a configuration file of checkpoint ``name`` (a folder
    or a Hub repo) would make transformers run code that is not installed here."""
    for path in _config_files(name, hub):
        pointer = remote_code_pointer(_read_config_file(name, path))
        if pointer is not None:
            file = path.name if path.name.isprintable() else repr(path.name)
            raise ModelLoadError(
                f"Model {name!r} ships its own code ({file} has {pointer}). maco_hub never "
                "runs a checkpoint's code unless asked: pass trust_remote_code=True "
                "(--trust-remote-code) only if you trust that repository's code."
            )


def remote_code_pointer(data: Any) -> str | None:
    """What in a parsed configuration file makes transformers import code from the checkpoint
    or the Hub (``auto_map``, ``custom_pipelines``, an attention kernel), or None."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        where, value = stack.pop()
        items = (
            value.items()
            if isinstance(value, dict)
            else (enumerate(value) if isinstance(value, list) else ())
        )
        for key, item in items:
            path = f"{where}.{key}" if where else str(key)
            if key in _CODE_KEYS and item:
                return reprlib.repr(path)[1:-1]
            if key in _KERNEL_KEYS and _names_kernel(item):
                return (
                    f"{reprlib.repr(path)[1:-1]}={reprlib.repr(item)}, an attention kernel "
                    "transformers may fetch from the Hub"
                )
            stack.append((path, item))
    return None


def _names_kernel(value: Any) -> bool:
    """Whether an attention setting names Hub code: a repo (``org/name``) or flash attention,
    which transformers replaces by a Hub kernel when the flash-attn package is missing."""
    values = value.values() if isinstance(value, dict) else [value]
    return any(isinstance(v, str) and ("/" in v or "flash" in v.lower()) for v in values)


def _config_files(name: str, hub: dict) -> list[Path]:
    """The configuration files of a folder (every ``*config.json``) or of a Hub repo (those
    transformers reads, downloaded if needed)."""
    folder = Path(name).expanduser()
    if folder.is_dir():
        return sorted(folder.glob("*config.json"))
    from transformers.utils import cached_file

    options = {key: hub.get(key) for key in ("cache_dir", "revision", "token")}
    found = []
    for filename in _CONFIG_FILES:
        try:
            path = cached_file(
                name,
                filename,
                local_files_only=bool(hub.get("local_files_only")),
                _raise_exceptions_for_missing_entries=False,
                **options,
            )
        except (OSError, ValueError):  # unreachable now: transformers cannot read the rest either,
            return found  # and is told not to trust what it reads
        if path:
            found.append(Path(path))
    return found


def _read_config_file(name: str, path: Path) -> Any:
    """A configuration file's JSON (None when it is not JSON: transformers cannot read it either)."""
    if not path.is_file():  # a FIFO would hang every reader, a folder is no config
        raise ModelLoadError(
            f"{str(path)!r} of model {name!r} is not a regular file; replace it "
            "with the JSON file it should be."
        )
    size = path.stat().st_size
    if size > _MAX_CONFIG_BYTES:
        raise ModelLoadError(
            f"{str(path)!r} of model {name!r} is {size / 2**20:.0f} MiB, more than the "
            f"{_MAX_CONFIG_BYTES >> 20} MiB a configuration file may have; it is not a checkpoint "
            "file transformers wrote: replace it."
        )
    try:
        return json.loads(path.read_bytes())
    except (ValueError, RecursionError):
        return None


def cached_commit(repo_id: str, revision: str | None, cache_dir: Any) -> str | None:
    """The commit the cache resolved ``revision`` to (works offline)."""
    from huggingface_hub import try_to_load_from_cache

    path = try_to_load_from_cache(repo_id, "config.json", cache_dir=cache_dir, revision=revision)
    if isinstance(path, str) and Path(path).parent.parent.name == "snapshots":
        return Path(path).parent.name
    return None


def _raw_config(name: str, hub: dict) -> dict:
    from huggingface_hub import constants
    from transformers import PretrainedConfig

    path = Path(name).expanduser()
    if is_path(name) and not path.is_dir():
        raise ModelLoadError(_missing_folder(name))
    options = {k: v for k, v in hub.items() if k != "trust_remote_code"}
    try:
        raw, _ = PretrainedConfig.get_config_dict(name, **options)
    except (OSError, ValueError) as exc:
        if path.is_dir():
            raise ModelLoadError(
                f"Folder {name!r} holds no readable config.json ({exc}); pass the "
                "folder a model was saved to with save_pretrained."
            ) from exc
        if path.exists() or (len(path.parts) > 1 and path.parent.is_dir()):
            raise ModelLoadError(_missing_folder(name, " (nor is it a Hub repo id)")) from exc
        if not constants.HF_HUB_OFFLINE and not hub.get("local_files_only") and _unreachable(exc):
            raise ModelLoadError(
                f"Could not reach the Hugging Face Hub ({constants.ENDPOINT}) to download {name!r}, "
                "and it is not in the local cache. Check the network connection (or proxy), or set "
                "HF_HUB_OFFLINE=1 to use cached models only."
            ) from exc
        raise ModelLoadError(
            f"Could not find model {name!r} on the Hugging Face Hub or in the local cache. "
            "Check the spelling of the repo id (org/name) and the revision; when offline "
            "(HF_HUB_OFFLINE=1) the model must already be in the cache; or pass a local folder "
            "that holds config.json."
        ) from exc
    return raw


def _missing_folder(name: str, extra: str = "") -> str:
    kind = " (it is a file)" if Path(name).expanduser().exists() else ""
    return (
        f"Model folder {name!r} does not exist{kind}{extra}. Pass a folder that holds config.json "
        "and the weights, or a Hub repo id (org/name)."
    )


def _unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is a failed connection rather than a missing repo."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        kind = f"{type(exc).__module__}.{type(exc).__name__}"
        if isinstance(exc, (ConnectionError, TimeoutError)) or any(
            word in kind
            for word in ("ConnectError", "ConnectTimeout", "NetworkError", "OfflineModeIsEnabled")
        ):
            return True
        if "couldn't connect" in str(exc).lower():
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _from_pretrained(cls: Any, name: str, load: dict, config: Any) -> tuple[nn.Module, dict]:
    """``cls.from_pretrained(name)`` and its loading info; every failure a ModelLoadError."""
    try:
        return cls.from_pretrained(name, output_loading_info=True, **load)
    except Exception as exc:  # safetensors, pickle and torch each raise their own kinds
        if "ignore_mismatched_sizes" in str(exc):  # transformers' words for weights of other shapes
            raise ModelLoadError(_mismatch_message(cls, name, load, config)) from exc
        raise ModelLoadError(_weights_message(name, load, exc)) from exc


def _mismatch_message(cls: Any, name: str, load: dict, config: Any) -> str:
    """Which weights have other shapes than the config gives them (loaded again to find out)."""
    try:
        _, info = cls.from_pretrained(name, output_loading_info=True, ignore_mismatched_sizes=True, **load)
        found = sorted(
            item for item in info.get("mismatched_keys") or () if isinstance(item, tuple) and len(item) == 3
        )
    except Exception:  # the message below still names the cause
        found = []
    shapes = "; ".join(
        f"{key!r} is {tuple(weights)} in the weights, {tuple(wanted)} by the config"
        for key, weights, wanted in found[:3]
    )
    return (
        f"The weights of {name!r} do not fit its config.json{': ' + shapes if shapes else ''}. "
        f"When the classifier differs, config.json's id2label/num_labels "
        f"({getattr(config, 'num_labels', '?')} classes) disagrees with the checkpoint's head: "
        "fix config.json, or re-save the model with save_pretrained."
    )


def _weights_message(name: str, hub: dict, exc: Exception) -> str:
    files = _weight_files(name, hub)
    where = ", ".join(repr(str(f)) for f in files) if files else f"the weights of {name!r}"
    first_line = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip().split("\n")[0][:160]
    return (
        f"Could not read {where} ({type(exc).__name__}: {first_line}). The file is "
        "truncated, corrupted or not a format transformers loads safely (pickled .bin weights "
        "are refused): download the checkpoint again, or re-save it as model.safetensors with "
        "save_pretrained."
    )


def _weight_files(name: str, hub: dict) -> list[Path]:
    folder = Path(name).expanduser()
    if folder.is_dir():
        return sorted(p for p in folder.iterdir() if p.suffix in _WEIGHT_SUFFIXES)
    from huggingface_hub import try_to_load_from_cache

    found = []
    for filename in ("model.safetensors", "pytorch_model.bin"):
        path = try_to_load_from_cache(
            name, filename, cache_dir=hub.get("cache_dir"), revision=hub.get("revision")
        )
        if isinstance(path, str):
            found.append(Path(path))
    return found


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
    if (
        model_type in vision_types
        or _is_dual(config)
        or image_like
        or model_type.endswith("_vision_model")
        or type(config) in AutoModelForImageClassification._model_mapping
    ):
        return
    raise NotAVisionModelError(
        f"Model {name!r} is a {config.model_type!r} model, which takes no images. Supported: {SUPPORTED}."
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
