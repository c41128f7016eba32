"""Magnitude spectra shipped inside the package (installed as ``maco_hub._spectra``)."""
