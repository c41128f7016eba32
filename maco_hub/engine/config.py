"""The engine's settings: :class:`EngineConfig` (validated where it is built, recorded in every row)
and the crop settings that suit short runs."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .._numbers import as_finite, as_integer
from ..errors import ConfigError
from . import schedules
from .threads import check_threads

METHODS = ("maco", "fourier")  # the image parameterizations (README "Methods")
_PRECISIONS = ("fp32", "bf16")
_RESAMPLERS = ("batched", "per_crop")
MAX_STEPS = 100_000  # 390 times the default; a longer run is almost surely a typo
MAX_CANVAS = 16_384  # px; one image of that side needs about 45 GiB besides the model
MAX_GAIN = 10  # phase_std and contrast: beyond it the canvas is noise or saturated (default 2.5 / 2.0)
# Fields added after rows were first written, with the value every earlier row was made with: recorded
# only when a config differs from it (so older rows keep their keys), and read back as it when absent.
_EARLIER_VALUES = {
    "threads": None,
    "compile": False,
    "resample": None,
    "method": "maco",
    "phase_std": 1.0,
    "contrast": 1.0,
}
_FOURIER_FIELDS = ("fourier_decay", "fourier_init_std")  # recorded with method="fourier" only


@dataclass(frozen=True)
class EngineConfig:
    """Optimization settings. Defaults and their reasons are in the README ("Engine defaults")."""

    steps: int = 256  # optimization steps (paper and Xplique: 256; Horama: 1000)
    learning_rate: float = 1.0  # NAdam step size on the phase (all reference implementations)
    canvas: int = 512  # side of the square canvas in pixels (Xplique 512; Horama 1280)
    crops: int = 6  # random crops per image and step (Horama 6; Xplique 32)
    # crop side / canvas: 25–30 % on two steps, 60–100 % on the third (scripts/benchmark_quality.py)
    crop_scale: schedules.Schedule = field(
        default_factory=functools.partial(schedules.Alternating, small_steps=2)
    )
    crop_centre_std: float = 0.30  # crop centres 0.5 + N(0, std) of the canvas (Horama: 0.15)
    noise: schedules.Schedule = 0.05  # std of gaussian noise (plus uniform of the same width), [0, 1] scale
    crops_per_forward: int | None = None  # crops per model call; None: what fits on CUDA, 4 on the CPU
    precision: str = "fp32"  # "fp32" or "bf16" (autocast around the model)
    threads: int | None = None  # CPU intra-op threads; None: from the idle CPUs (maco_hub.engine.threads)
    compile: bool = False  # torch.compile the score function (the model and the objective)
    resample: str | None = None  # "batched", "per_crop"; None: per_crop on the CPU, batched elsewhere
    method: str = "maco"  # "maco" (phase under a fixed magnitude) or "fourier" (the full spectrum, Lucid)
    fourier_decay: float = 1.0  # method="fourier": spectrum scale 1 / f ** decay (README "Methods")
    fourier_init_std: float = 1.0  # method="fourier": std of the initial spectrum (only lr / std matters)
    # MACO from random phases (not "fourier", not a start image): README "Engine defaults"
    phase_std: float = 2.5  # the standardized phase is scaled to this std (1: the reference implementations)
    contrast: float = 2.0  # the standardized canvas is scaled by this before the sigmoid (1: as before)

    def __post_init__(self) -> None:
        self._integer("steps", 1, MAX_STEPS, f"use an integer from 1 to {MAX_STEPS} (default 256)")
        self._number("learning_rate", 0, "use a finite positive number (default 1.0)", strict=True)
        self._integer("canvas", 16, MAX_CANVAS, f"use an integer number of pixels from 16 to {MAX_CANVAS}")
        self._integer("crops", 1, None, "use an integer number of crops per step, 1 or more")
        self._number("crop_centre_std", 0, "use a finite number >= 0 (default 0.30)")
        for name, default in (("phase_std", 2.5), ("contrast", 2.0)):
            fix = f"use a finite number above 0 and at most {MAX_GAIN} (default {default}; 1 as before)"
            self._number(name, 0, fix, strict=True, high=MAX_GAIN)
        if self.crops_per_forward is not None:
            self._integer("crops_per_forward", 1, None, "use None or a positive integer")
        _check(self.precision in _PRECISIONS, "precision", self.precision, f"use one of {_PRECISIONS}")
        _check(
            self.resample is None or self.resample in _RESAMPLERS,
            "resample",
            self.resample,
            f"use None or one of {_RESAMPLERS}",
        )
        _check(isinstance(self.compile, bool), "compile", self.compile, "use True or False")
        self._method()
        if as_integer(self.threads) is not None:
            object.__setattr__(self, "threads", as_integer(self.threads))
        check_threads(self.threads)
        if not callable(self.crop_scale):
            object.__setattr__(self, "crop_scale", check_crop_range(self.crop_scale))
        if not callable(self.noise):
            object.__setattr__(self, "noise", check_noise(self.noise))

    def _integer(self, name: str, low: int, high: int | None, fix: str) -> None:
        """Field ``name`` as an int in low..high (numpy integers too; bools and floats refused)."""
        value = getattr(self, name)
        number = as_integer(value)
        _check(number is not None and number >= low and (high is None or number <= high), name, value, fix)
        object.__setattr__(self, name, number)

    def _number(
        self, name: str, low: float, fix: str, *, strict: bool = False, high: float | None = None
    ) -> None:
        """Field ``name`` as a finite number >= ``low`` (> with ``strict``) and <= ``high``; ints and
        floats kept."""
        value = getattr(self, name)
        number = as_finite(value)
        ok = number is not None and (number > low if strict else number >= low)
        _check(ok and (high is None or number <= high), name, value, fix)
        object.__setattr__(self, name, number)

    def _method(self) -> None:
        """``method`` is known; the Fourier settings are valid, and left at their defaults by MACO."""
        _check(
            isinstance(self.method, str) and self.method in METHODS,
            "method",
            self.method,
            f"use one of {METHODS} (README, 'Methods')",
        )
        self._number("fourier_decay", 0, "use a finite number >= 0 (Lucid 1.0, Horama 1.5)")
        self._number(
            "fourier_init_std", 0, "use a finite positive number (Lucid 0.01, Horama 1.0)", strict=True
        )
        for name in _FOURIER_FIELDS:
            default = next(f.default for f in dataclasses.fields(self) if f.name == name)
            if self.method != "fourier" and getattr(self, name) != default:
                raise ConfigError(
                    f"{name}={getattr(self, name)!r} applies to method='fourier', not "
                    f"method={self.method!r}: pass method='fourier' or leave {name} out."
                )

    @property
    def reproducible(self) -> bool:
        """False when a schedule is a plain callable, which :meth:`from_record` cannot rebuild."""
        return all(schedules.is_reproducible(schedules.to_record(s)) for s in (self.crop_scale, self.noise))

    def to_record(self) -> dict[str, Any]:
        """A JSON-able record that :meth:`from_record` turns back into an equal config."""
        record = dataclasses.asdict(self)
        record["crop_scale"] = schedules.to_record(self.crop_scale)
        record["noise"] = schedules.to_record(self.noise)
        for name, earlier in _EARLIER_VALUES.items():
            if record[name] == earlier:
                del record[name]
        if self.method != "fourier":
            for name in _FOURIER_FIELDS:
                del record[name]
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> EngineConfig:
        """The config a :meth:`to_record` record describes; unknown fields are a ConfigError, absent
        fields added later take the value rows were made with before they existed."""
        values = {**_EARLIER_VALUES, **record}
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(
                f"engine config record has unknown fields {unknown}; it was written by "
                "another maco_hub version: upgrade maco_hub."
            )
        for name in ("crop_scale", "noise"):
            if name in values:
                values[name] = schedules.from_record(values[name])
        return cls(**values)


SHORT_RUN_CROPS = MappingProxyType({"crop_scale": schedules.Alternating(), "crop_centre_std": 0.15})
"""Crop settings for short runs (about 100 steps): small and large crops alternating 1:1, centred
(the defaults before the quality table), e.g. ``EngineConfig(steps=96, **SHORT_RUN_CROPS)``. At
phase_std = contrast = 1 the default 2:1 schedule gives the large crops too few steps there; at the
current defaults the demo (128 steps) did better with the 2:1 schedule (README, "Quickstart")."""


def _check(ok: bool, name: str, value: Any, fix: str) -> None:
    if not ok:
        raise ConfigError(f"{name}={value!r} is invalid: {fix}.")


def check_crop_range(value: Any) -> tuple[float, float]:
    """A (low, high) crop side fraction pair, as given (numpy scalars as Python numbers)."""
    try:
        low, high = (as_finite(v) for v in value)
    except (TypeError, ValueError):
        low = high = None
    if low is None or high is None:
        raise ConfigError(
            f"crop_scale={value!r} is invalid: use a (low, high) pair of canvas "
            "fractions, e.g. (0.25, 0.3), or a schedule"
        )
    _check(0 < low <= high <= 1, "crop_scale", value, "use 0 < low <= high <= 1")
    return low, high


def check_noise(value: Any) -> float:
    """A noise std in [0, 1] (pixels are in [0, 1]), as given (a numpy scalar as a Python number)."""
    std = as_finite(value)
    if std is None:
        raise ConfigError(
            f"noise={value!r} is invalid: use a finite number (std on [0, 1] pixels) or a "
            "schedule returning one"
        )
    _check(0 <= std <= 1, "noise", value, "use a std from 0 to 1 (pixels are in [0, 1]; default 0.05)")
    return std
