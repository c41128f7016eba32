"""What a model expects of its pixels (size, mean, standard deviation), read from its checkpoint."""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from .errors import ConfigError

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_PIL_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}


@dataclass(frozen=True)
class Preprocessing:
    """The model's input convention; images in [0, 1] become ``(x - mean) / std``."""

    mean: tuple[float, float, float]  # per RGB channel, on the [0, 1] scale
    std: tuple[float, float, float]  # per RGB channel, on the [0, 1] scale
    size: tuple[int, int]  # model input (height, width) in pixels
    resample: str = "bicubic"  # how the checkpoint resizes photos (evaluate() resizes with it)

    def __post_init__(self) -> None:
        for name in ("mean", "std"):
            value = getattr(self, name)
            if len(value) != 3:
                raise ConfigError(f"Preprocessing {name}={value!r} must have 3 values (RGB).")
            object.__setattr__(self, name, tuple(float(v) for v in value))
        if any(s <= 0 for s in self.std):
            raise ConfigError(f"Preprocessing std={self.std!r} must be positive.")
        size = (self.size, self.size) if isinstance(self.size, int) else tuple(self.size)
        if len(size) != 2 or any(int(s) < 8 for s in size):
            raise ConfigError(f"Preprocessing size={self.size!r} must be (height, width) >= 8.")
        object.__setattr__(self, "size", (int(size[0]), int(size[1])))

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Map images (N, 3, H, W) in [0, 1] to the model's pixel space."""
        mean, std = _on_device(self.mean, self.std, images.device, images.dtype)
        return (images - mean) / std

    def value_range(self) -> tuple[float, float]:
        """Lowest and highest value a model input can take under this convention."""
        low = min((0.0 - m) / s for m, s in zip(self.mean, self.std, strict=True))
        high = max((1.0 - m) / s for m, s in zip(self.mean, self.std, strict=True))
        return low, high

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std), "size": list(self.size),
                "resample": self.resample}


def coerce_preprocessing(value: Preprocessing | Mapping[str, Any]) -> Preprocessing:
    """A Preprocessing from itself or a dict with mean, std, size (and resample)."""
    if isinstance(value, Preprocessing):
        return value
    if isinstance(value, Mapping):
        try:
            return Preprocessing(**value)
        except TypeError as exc:
            raise ConfigError(
                f"preprocessing={dict(value)!r} must have keys mean, std, size (and optionally "
                "resample)."
            ) from exc
    raise ConfigError(
        f"preprocessing={value!r} must be a Preprocessing or a dict with mean, std and size."
    )


def checkpoint_preprocessing(name: str, hub: dict, config: Any) -> Preprocessing:
    """Mean, std and input size from the checkpoint; checkpoint values beat class defaults."""
    values = _processor_values(name, hub)
    timm = values.get("data_config") or _timm_config(config)
    if values.get("image_mean") is not None and values.get("image_std") is not None:
        size = _processor_size(values)
        if size is None:
            size = _config_size(config)
        return Preprocessing(
            mean=tuple(values["image_mean"]), std=tuple(values["image_std"]), size=size,
            resample=_resample_name(values.get("resample")))
    if timm:
        return _timm_preprocessing(timm)
    size = _config_size(config)
    logger.warning(
        "Model %r has no image processor config; assuming ImageNet mean/std and %sx%s input. "
        "Pass preprocessing=... if the model expects something else.", name, *size)
    return Preprocessing(mean=IMAGENET_MEAN, std=IMAGENET_STD, size=size)


def _processor_values(name: str, hub: dict) -> dict:
    """The checkpoint's processor settings, completed by its processor class's defaults."""
    from transformers import AutoImageProcessor
    from transformers.image_processing_base import ImageProcessingMixin

    options = {k: v for k, v in hub.items() if k != "trust_remote_code"}
    try:
        raw, _ = ImageProcessingMixin.get_image_processor_dict(name, **options)
    except (OSError, ValueError):
        return {}
    values: dict = {}
    try:  # trust_remote_code given explicitly, so transformers never asks on stdin
        processor = AutoImageProcessor.from_pretrained(
            name, trust_remote_code=hub.get("trust_remote_code") is True, **options)
        for key in ("image_mean", "image_std", "size", "crop_size", "do_center_crop", "resample"):
            values[key] = getattr(processor, key, None)
    except Exception as exc:  # processor classes fail in many ways; the raw json rules
        logger.debug("AutoImageProcessor failed for %r (%s); using the raw json.", name, exc)
    values.update({k: v for k, v in raw.items() if v is not None})
    return values


def _processor_size(values: Mapping[str, Any]) -> tuple[int, int] | None:
    if values.get("do_center_crop") and values.get("crop_size") is not None:
        size = _size_pair(values["crop_size"])
        if size is not None:
            return size
    return _size_pair(values.get("size"))


def _size_pair(value: Any) -> tuple[int, int] | None:
    """(height, width) from an int, a (h, w) pair, or a size dict / SizeDict."""
    if value is None:
        return None
    if isinstance(value, int):
        return value, value
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return int(value[0]), int(value[1])
    get = value.get if isinstance(value, Mapping) else lambda k: getattr(value, k, None)
    if get("height") and get("width"):
        return int(get("height")), int(get("width"))
    edge = get("shortest_edge") or get("longest_edge")
    return (int(edge), int(edge)) if edge else None


def _config_size(config: Any) -> tuple[int, int]:
    size = _size_pair(getattr(config, "image_size", None))
    return size or (224, 224)


def _timm_config(config: Any) -> dict | None:
    for key in ("pretrained_cfg", "data_config"):
        value = getattr(config, key, None)
        if isinstance(value, Mapping) and value.get("mean") is not None:
            return dict(value)
    return None


def _timm_preprocessing(cfg: Mapping[str, Any]) -> Preprocessing:
    shape = cfg.get("input_size") or cfg.get("test_input_size") or (3, 224, 224)
    return Preprocessing(
        mean=tuple(cfg["mean"]), std=tuple(cfg["std"]), size=(int(shape[-2]), int(shape[-1])),
        resample=_resample_name(cfg.get("interpolation")))


def _resample_name(value: Any) -> str:
    if value is None:
        return "bicubic"
    if isinstance(value, str):
        return value.lower()
    return _PIL_RESAMPLE.get(int(value), "bicubic")


@functools.lru_cache(maxsize=32)
def _on_device(mean: tuple, std: tuple, device: torch.device, dtype: torch.dtype) -> tuple:
    """``mean`` and ``std`` as (3, 1, 1) tensors, made once per device (no copy to it per step)."""
    return tuple(torch.tensor(v, device=device, dtype=dtype)[:, None, None] for v in (mean, std))
