"""What a model expects of its pixels (size, mean, standard deviation), read from its checkpoint."""

from __future__ import annotations

import functools
import logging
import math
import numbers
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import ConfigError, ModelLoadError

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_PIL_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}
MAX_INPUT_SIZE = 4096  # pixels per side; the largest vision checkpoints take 1024-2048
_MIN_STD = 1e-6  # a smaller std turns every pixel into an overflow
_MAX_VALUE = 1e6  # mean and std beyond this are no pixel convention


@dataclass(frozen=True)
class Preprocessing:
    """The model's input convention; images in [0, 1] become ``(x - mean) / std``."""

    mean: tuple[float, float, float]  # per RGB channel, on the [0, 1] scale
    std: tuple[float, float, float]  # per RGB channel, on the [0, 1] scale
    size: tuple[int, int]  # model input (height, width) in pixels
    resample: str = "bicubic"  # how the checkpoint resizes photos (evaluate() resizes with it)

    def __post_init__(self) -> None:
        for name in ("mean", "std"):
            object.__setattr__(self, name, _channels(name, getattr(self, name)))
        if any(s < _MIN_STD for s in self.std):
            raise ConfigError(
                f"Preprocessing std={self.std!r} must be positive (at least "
                f"{_MIN_STD:g}): the spread of the model's pixels on the [0, 1] scale."
            )
        object.__setattr__(self, "size", _input_size(self.size))

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
        return {
            "mean": list(self.mean),
            "std": list(self.std),
            "size": list(self.size),
            "resample": self.resample,
        }


def _channels(name: str, value: Any) -> tuple[float, float, float]:
    """Three finite RGB values from three numbers (a list, tuple or array), or from one number
    for every channel."""
    values = (value,) * 3 if _is_real(value) else _as_list(value)
    if values is not None and len(values) == 3 and all(map(_is_real, values)):
        floats = tuple(float(v) for v in values)
        if all(math.isfinite(v) and abs(v) <= _MAX_VALUE for v in floats):
            return floats
        raise ConfigError(
            f"Preprocessing {name}={_shown(value)} must be finite numbers between "
            f"{-_MAX_VALUE:g} and {_MAX_VALUE:g} (R, G, B on the [0, 1] scale)."
        )
    raise ConfigError(
        f"Preprocessing {name}={_shown(value)} must be 3 numbers (R, G, B on the [0, 1] "
        "scale) or one number for all three."
    )


def _input_size(value: Any) -> tuple[int, int]:
    """(height, width) from one side or a pair of integers between 8 and MAX_INPUT_SIZE."""
    size = (value, value) if _is_integer(value) else value
    if (
        isinstance(size, (list, tuple))
        and len(size) == 2
        and all(map(_is_integer, size))
        and all(8 <= s <= MAX_INPUT_SIZE for s in size)
    ):
        return int(size[0]), int(size[1])
    raise ConfigError(
        f"Preprocessing size={_shown(value)} must be the model's input (height, width) in "
        f"pixels, integers from 8 to {MAX_INPUT_SIZE}."
    )


def _shown(value: Any) -> str:
    """``repr(value)``, shortened: values may come from a crafted file."""
    return reprlib.repr(value)


def _as_list(value: Any) -> list | None:
    """The items of a list, tuple or array (None for text, mappings and what is no sequence)."""
    if isinstance(value, (str, bytes, Mapping)):
        return None
    try:
        return list(value)
    except TypeError:
        return None


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def coerce_preprocessing(value: Preprocessing | Mapping[str, Any]) -> Preprocessing:
    """A Preprocessing from itself or a dict with mean, std, size (and resample)."""
    if isinstance(value, Preprocessing):
        return value
    if isinstance(value, Mapping):
        try:
            return Preprocessing(**value)
        except TypeError as exc:
            raise ConfigError(
                f"preprocessing={dict(value)!r} must have keys mean, std, size (and optionally resample)."
            ) from exc
    raise ConfigError(f"preprocessing={value!r} must be a Preprocessing or a dict with mean, std and size.")


def checkpoint_preprocessing(name: str, hub: dict, config: Any) -> Preprocessing:
    """Mean, std and input size from the checkpoint; checkpoint values beat class defaults.

    A value no model can have is a :class:`~maco_hub.errors.ModelLoadError` naming the file."""
    values = _processor_values(name, hub)
    timm = values.get("data_config") or _timm_config(config)
    where = "its config.json (image_size)"
    try:
        if values.get("image_mean") is not None and values.get("image_std") is not None:
            where = "its image processor config (preprocessor_config.json)"
            size = _processor_size(values)
            if size is None:
                where += " and config.json"
                size = _config_size(config)
            return Preprocessing(
                mean=values["image_mean"],
                std=values["image_std"],
                size=size,
                resample=_resample_name(values.get("resample")),
            )
        if timm:
            where = "its config.json (pretrained_cfg)"
            return _timm_preprocessing(timm)
        size = _config_size(config)
        logger.warning(
            "Model %r has no image processor config; assuming ImageNet mean/std and %sx%s input. "
            "Pass preprocessing=... if the model expects something else.",
            name,
            *size,
        )
        return Preprocessing(mean=IMAGENET_MEAN, std=IMAGENET_STD, size=size)
    except ConfigError as error:
        raise ModelLoadError(
            f"Model {name!r}: {where} gives no usable input convention: {error} Fix the file, or "
            "pass preprocessing={'mean': ..., 'std': ..., 'size': ...} to load_model."
        ) from None


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
            name, trust_remote_code=hub.get("trust_remote_code") is True, **options
        )
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


def _size_pair(value: Any) -> Any:
    """(height, width) from an int, a (h, w) pair, or a size dict / SizeDict; None when it names
    no fixed size; anything else unchanged (Preprocessing says what is wrong with it)."""
    if value is None or isinstance(value, (int, list, tuple)):
        return value if not isinstance(value, int) else (value, value)
    if not isinstance(value, Mapping) and not hasattr(value, "height"):
        return value
    get = value.get if isinstance(value, Mapping) else lambda k: getattr(value, k, None)
    if get("height") and get("width"):
        return get("height"), get("width")
    edge = get("shortest_edge") or get("longest_edge")
    return (edge, edge) if edge else None


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
    size = tuple(shape[-2:]) if isinstance(shape, (list, tuple)) and len(shape) >= 2 else shape
    return Preprocessing(
        mean=cfg.get("mean"), std=cfg.get("std"), size=size, resample=_resample_name(cfg.get("interpolation"))
    )


def _resample_name(value: Any) -> str:
    """A PIL filter name from a checkpoint's resample setting (bicubic when unknown)."""
    if isinstance(value, str) and value.lower() in _PIL_RESAMPLE.values():
        return value.lower()
    if _is_integer(value):
        return _PIL_RESAMPLE.get(int(value), "bicubic")
    return "bicubic"


@functools.lru_cache(maxsize=32)
def _on_device(mean: tuple, std: tuple, device: torch.device, dtype: torch.dtype) -> tuple:
    """``mean`` and ``std`` as (3, 1, 1) tensors, made once per device (no copy to it per step)."""
    return tuple(torch.tensor(v, device=device, dtype=dtype)[:, None, None] for v in (mean, std))
