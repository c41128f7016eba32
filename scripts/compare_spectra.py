"""Compare a spectrum file with a reference magnitude (.npy or .safetensors), print a table.

Usage: python scripts/compare_spectra.py SPECTRUM.safetensors REFERENCE.npy

Both must describe the same canvas (the reference is resized to the spectrum's size if not).
See maco_hub.spectra.estimation.compare_magnitudes for what each number means.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

from maco_hub.spectra.estimation import compare_magnitudes
from maco_hub.spectra.loading import load_spectrum
from maco_hub.spectra.spectrum import Spectrum


def _load(path: str) -> Spectrum:
    if path.endswith(".npy"):
        return Spectrum(torch.from_numpy(np.load(path)).float(), {"source": Path(path).name})
    return load_spectrum(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spectrum", help="spectrum file (.safetensors or .npy)")
    parser.add_argument("reference", help="reference magnitude (.npy or .safetensors)")
    args = parser.parse_args(argv)
    ours, reference = _load(args.spectrum), _load(args.reference)
    reference = reference.resized(ours.height, ours.width)
    numbers = compare_magnitudes(ours.magnitude, reference.magnitude)
    rows = [
        ("Pearson r of log-magnitude, channel 0 (no DC)", numbers["corr_c0"], None),
        ("Pearson r of log-magnitude, channel 1 (no DC)", numbers["corr_c1"], None),
        ("Pearson r of log-magnitude, channel 2 (no DC)", numbers["corr_c2"], None),
        ("Pearson r of log-magnitude, all channels", numbers["corr_all"], None),
        ("same, only up to 128 cycles/image", numbers["corr_all_128"], None),
        ("radial slope, 2-32 cycles/image", numbers["slope_2_32_ours"], numbers["slope_2_32_ref"]),
        ("radial slope, 2-128 cycles/image", numbers["slope_2_128_ours"], numbers["slope_2_128_ref"]),
        (
            "axis / diagonal magnitude, 8-128 cycles/image",
            numbers["axis_diag_ours"],
            numbers["axis_diag_ref"],
        ),
        ("mean magnitude ratio ours/ref (no DC)", numbers["scale_ratio"], None),
        ("median per-bin ratio ours/ref (no DC)", numbers["median_ratio"], None),
    ]
    print(f"| {'quantity':<46} | {'ours':>7} | {'reference':>9} |")
    print(f"|{'-' * 48}|{'-' * 9}|{'-' * 11}|")
    for label, value, ref in rows:
        ref_text = f"{ref:9.3f}" if ref is not None else " " * 9
        print(f"| {label:<46} | {value:7.3f} | {ref_text} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
