"""Magnitude spectra of natural images: the :class:`~maco_hub.spectra.spectrum.Spectrum` type and
its loading, the colour space it lives in, estimation from photographs and where the photos come from."""
