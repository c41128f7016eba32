"""What a model expects of its pixels: size, mean and standard deviation."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import ConfigError


@dataclass(frozen=True)
class Preprocessing:
    """The model's input convention; images in [0, 1] become ``(x - mean) / std``."""

    mean: tuple[float, float, float]  # per RGB channel, on the [0, 1] scale
    std: tuple[float, float, float]  # per RGB channel, on the [0, 1] scale
    size: tuple[int, int]  # model input (height, width) in pixels
    resample: str = "bicubic"  # how the checkpoint resizes photos (used for real photos only)

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
        mean = torch.tensor(self.mean, device=images.device, dtype=images.dtype)
        std = torch.tensor(self.std, device=images.device, dtype=images.dtype)
        return (images - mean[:, None, None]) / std[:, None, None]

    def value_range(self) -> tuple[float, float]:
        """Lowest and highest value a model input can take under this convention."""
        low = min((0.0 - m) / s for m, s in zip(self.mean, self.std, strict=True))
        high = max((1.0 - m) / s for m, s in zip(self.mean, self.std, strict=True))
        return low, high

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std), "size": list(self.size),
                "resample": self.resample}
