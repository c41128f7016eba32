"""The Fourier baseline's rows of the quality table (scripts/benchmark_quality.py --settings ...).

``fourier`` is the baseline as ``EngineConfig(method="fourier")`` makes it (decay and init std at
their defaults, chosen by the screening rows below); everything but the parameterization (crops,
noise, NAdam and its learning rate, canvas, colour matrix) is the default MACO setting. With the
per-image standardization only learning rate / init std matters, so the screening varies the
init std at MACO's learning rate 1.0: std 1.0 is Horama's ratio (NAdam 1.0, init 1.0), std 0.2
Lucid's (Adam 0.05, init 0.01), std 5.0 smaller steps still.
"""

from __future__ import annotations

from maco_hub.engine import EngineConfig

_DEFAULT = EngineConfig(method="fourier")


def _fourier(decay: float, std: float, why: str) -> tuple[str, dict]:
    return (
        f"Fourier baseline, decay {decay:g}, init std {std:g} ({why}); crops, noise, NAdam lr 1.0 as default",
        {"method": "fourier", "fourier_decay": decay, "fourier_init_std": std},
    )


METHOD_SETTINGS = {
    "fourier": (
        f"Fourier baseline (the default: decay {_DEFAULT.fourier_decay:g}, init std "
        f"{_DEFAULT.fourier_init_std:g}); crops, noise, NAdam lr 1.0 as default",
        {"method": "fourier"},
    ),
    "fourier-d1.0-i1.0": _fourier(1.0, 1.0, "Lucid's decay, Horama's step"),
    "fourier-d1.5-i1.0": _fourier(1.5, 1.0, "Horama's decay and step"),
    "fourier-d1.0-i0.2": _fourier(1.0, 0.2, "Lucid's decay and step"),
    "fourier-d1.5-i0.2": _fourier(1.5, 0.2, "Horama's decay, Lucid's step"),
    "fourier-d0.85-i1.0": _fourier(0.85, 1.0, "Xplique's decay, Horama's step"),
    "fourier-d1.0-i5.0": _fourier(1.0, 5.0, "Lucid's decay, smaller steps"),
}
