"""Where a spectrum comes from: the shipped default, a file, a folder or a Hub model repo."""

from __future__ import annotations

import os
import re
from pathlib import Path

from .._version import __version__
from ..errors import ConfigError, SpectrumError
from .hub import download_spectrum
from .spectrum import DEFAULT_FILENAME, DEFAULT_SPECTRUM_ID, Spectrum, _read_file, check_spectrum_name

_REPO_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def load_spectrum(
    source: str | os.PathLike | None = None,
    *,
    name: str | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    token: str | bool | None = None,
    local_files_only: bool | None = None,
) -> Spectrum:
    """Load a verified spectrum.

    ``source`` is ``None`` (the default spectrum shipped with maco_hub; earlier defaults are shipped
    too, for the rows made with them: :func:`shipped_spectrum`), a ``.safetensors`` file, a
    folder (with ``name``, default ``spectrum.safetensors``) or a Hub model repo id
    ``"org/name"`` (file ``name``, default ``spectrum.safetensors``, at ``revision``). The
    resolved Hub commit is recorded as ``metadata["revision"]``.
    """
    if source is None:
        if name is not None or revision is not None:
            raise ConfigError(
                f"name={name!r}/revision={revision!r} need a source (a folder or a Hub repo id); "
                "load_spectrum() alone loads the shipped default."
            )
        return _read_file(_default_path(), fix="reinstall maco_hub")._with(
            source=DEFAULT_SPECTRUM_ID, revision=__version__
        )
    if name is not None:
        check_spectrum_name(name)
    path = Path(source)
    if path.is_dir():
        return Spectrum.load(path / (name or DEFAULT_FILENAME))
    if path.is_file():
        if name is not None:
            raise ConfigError(
                f"name={name!r} only applies to a folder or a Hub repo, but {str(source)!r} is a "
                "file; drop name= or pass the folder."
            )
        return Spectrum.load(path)
    if isinstance(source, str) and looks_like_repo_id(source):
        return download_spectrum(
            source,
            filename=name or DEFAULT_FILENAME,
            revision=revision,
            cache_dir=cache_dir,
            token=token,
            local_files_only=local_files_only,
        )
    raise SpectrumError(
        f"Spectrum source {str(source)!r} is neither an existing file or folder nor a Hub repo id "
        "('org/name'); check the path, or pass None for the shipped default."
    )


def shipped_spectrum(sha256: object) -> Spectrum:
    """The shipped default spectrum whose tensor has ``sha256``: today's default, or an earlier one
    kept under ``previous/`` (named by the first 12 hex digits) so rows made with it regenerate.

    A ConfigError for a sha256 that maco_hub does not ship (or is no sha256 at all).
    """
    current = load_spectrum()
    if sha256 == current.sha256:
        return current
    if isinstance(sha256, str) and _SHA256_RE.match(sha256):
        path = _default_path().parent / "previous" / f"{sha256[:12]}.safetensors"
        if path.is_file():
            spectrum = _read_file(path, fix="reinstall maco_hub")
            if spectrum.sha256 == sha256:
                return spectrum._with(source=DEFAULT_SPECTRUM_ID, revision=__version__)
    shown = f"{sha256[:12]}…" if isinstance(sha256, str) and _SHA256_RE.match(sha256) else repr(sha256)
    raise ConfigError(
        f"The shipped default spectrum with sha256 {shown[:80]} is not part of maco_hub {__version__} "
        f"(it ships {current.sha256[:12]}… and the earlier defaults {', '.join(_previous()) or 'none'}): "
        "pass that spectrum's file (spectrum=...)."
    )


def _previous() -> list[str]:
    """The sha256 prefixes (12 hex digits) of the earlier defaults shipped under ``previous/``."""
    folder = _default_path().parent / "previous"
    return sorted(p.stem + "…" for p in folder.glob("*.safetensors")) if folder.is_dir() else []


def looks_like_repo_id(value: str) -> bool:
    """Whether ``value`` has the form of a Hub repo id (``org/name``), not of a path."""
    return (
        bool(_REPO_ID_RE.match(value))
        and ".." not in value
        and "--" not in value
        and not value.endswith((".safetensors", ".npy", ".git"))
        and len(value) <= 96
    )


def _default_path() -> Path:
    from importlib.resources import files

    try:
        return Path(str(files("maco_hub._spectra") / "default.safetensors"))
    except ModuleNotFoundError:  # a source checkout that is not installed
        return Path(__file__).resolve().parents[2] / "spectra" / "default.safetensors"
