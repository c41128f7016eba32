"""``regenerate()``: a gallery row made again from its reproducibility record, trusting nothing it
reads (see its docstring and README "Safety")."""

from __future__ import annotations

import logging
import os
from typing import Any

import torch

from .engine import EngineConfig, resolve_device
from .engine.devices import MEMORY_FORMATS, available_devices, set_memory_format
from .errors import ConfigError, GalleryError
from .explainer import as_spectrum, run_batch
from .gallery.rows import Visualization
from .guidance import from_record as guidance_of
from .models.loader import SHORT_NAMES, LoadedModel, load_model, names_local_path, recorded_model_is_local
from .objectives.guided import bind_images
from .objectives.records import objective_from_record
from .objectives.scoring import validated
from .spectra.loading import load_spectrum, looks_like_repo_id, shipped_spectrum
from .spectra.spectrum import DEFAULT_SPECTRUM_ID, Spectrum, check_spectrum_name

logger = logging.getLogger(__name__)


def regenerate(
    item: Visualization,
    *,
    model: Any = None,
    spectrum: Spectrum | str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    trust_remote_code: bool = False,
) -> Visualization:
    """Make one gallery row again from its reproducibility record.

    The row's whole batch is re-run (batch members share forward passes, whose rounding depends on
    the batch), from the recorded model revision, spectrum, seeds and engine settings. On the same
    device type the pixels match the original up to float rounding; when the recorded device type
    is not available here, the default device is used and a message says so.

    What it trusts: the record is data from whoever made the gallery (a downloaded one too), and
    it names the model and the spectrum this function loads. Without ``model`` it loads the Hub
    repo or demo short name (``efficientnet-lite0``) the record names, at the recorded revision,
    with ``trust_remote_code`` off unless passed (a checkpoint with its own code is refused); the
    spectrum likewise comes from the Hub repo it names, or is the shipped default. It never loads
    a model or spectrum from this machine's disk because a record says so: a record naming a local
    folder or file (a path, a name that is a folder here, a ``local-`` folder revision, an
    in-memory module or spectrum) is a :class:`~maco_hub.errors.ConfigError` asking for ``model``
    (a folder, Hub id or loaded model) or ``spectrum`` (a file, folder, Hub id or
    :class:`~maco_hub.spectra.spectrum.Spectrum`), which replace the recorded ones. The spectrum used must
    have the recorded sha256.

    Rows of every method are made again the same way: the parameterization is part of the engine
    settings, and a row started from an image (accentuation) or comparing with one (Inversion)
    uses the image its gallery stores (``item.inputs``, checked by sha256 when the gallery was
    read); a row without it is a ConfigError. Variants are re-run with their whole group.
    """
    record = item.record
    if record is None or not record.batch:
        raise ConfigError(
            f"Row {item.objective!r} has no reproducibility record with its batch; it cannot be regenerated."
        )
    try:
        batch_records = [
            (bind_images(objective_from_record(dict(m.objective_record)), item.inputs), m.seed)
            for m in record.batch
        ]
        position = [
            m.seed == record.seed and m.objective_record == record.objective_record for m in record.batch
        ].index(True)
        reference = dict(record.spectrum)
        config = EngineConfig.from_record(dict(record.config))
        guidance = guidance_of(record, item.inputs)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        if isinstance(error, ConfigError):
            raise
        raise _malformed(item, error) from None
    if model is None:
        model_id, revision = _recorded_model(item)
    spectrum = as_spectrum(spectrum) if spectrum is not None else _recorded_spectrum(item, reference)
    used = spectrum.reference()
    if used["sha256"] != reference.get("sha256"):
        raise ConfigError(
            f"Spectrum {used['id']!r} has sha256 {str(used['sha256'])[:12]}…, but the row "
            f"was made with {str(reference.get('sha256'))[:12]}…; pass the original "
            "spectrum (spectrum=...)."
        )
    device = resolve_device(device if device is not None else _available(record.device))
    if isinstance(model, LoadedModel):
        model.module.to(device)
        loaded = model
    elif model is not None:
        loaded = load_model(model, trust_remote_code=trust_remote_code, device=device)
    else:
        loaded = load_model(model_id, revision=revision, trust_remote_code=trust_remote_code, device=device)
        if loaded.revision != record.model_revision:
            logger.warning(
                "The row was made from %s at revision %s; here it has %s, so the result may differ.",
                model_id,
                record.model_revision,
                loaded.revision,
            )
    _recorded_layout(item, loaded)
    checked = validated(loaded, [objective for objective, _ in batch_records])
    batch = list(zip(checked, [seed for _, seed in batch_records], strict=True))
    return run_batch(loaded, batch, spectrum=spectrum, config=config, device=device, guidance=guidance)[
        position
    ]


def _recorded_layout(item: Visualization, loaded: LoadedModel) -> None:
    """Store the weights as the row's were (``engine_settings["memory_format"]``; contiguous for rows
    made before it was recorded): the layout changes the last bits, which NAdam amplifies."""
    name = item.record.engine_settings.get("memory_format", "contiguous")
    if not isinstance(name, str) or name not in MEMORY_FORMATS:
        raise _malformed(item, ValueError(f"engine_settings memory_format={name!r}"))
    set_memory_format(loaded.module, name)


def _recorded_model(item: Visualization) -> tuple[str, str | None]:
    """The Hub repo id or demo short name the record names, and the revision to load it at;
    a ConfigError for anything on this machine's disk (``model=`` must name it)."""
    model_id, revision = item.record.model_id, item.record.model_revision
    if not isinstance(model_id, str) or not isinstance(revision, (str, type(None))):
        raise _malformed(item, TypeError(f"model_id={model_id!r}, model_revision={revision!r}"))
    if recorded_model_is_local(model_id, revision):
        raise ConfigError(
            f"Row {item.objective!r} was made from {model_id!r} (revision {revision}), a local folder "
            "or in-memory model, and regenerate never loads a model from this machine's disk because "
            "a record names it: pass model=... (the folder, a Hub id or a loaded model)."
        )
    return model_id, None if model_id in SHORT_NAMES else revision


def _recorded_spectrum(item: Visualization, reference: dict) -> Spectrum:
    """The shipped default with the recorded sha256 (today's or an earlier one) or the Hub spectrum
    the record names; a ConfigError for a file or a default maco_hub does not ship."""
    source, name, revision = reference.get("id"), reference.get("name"), reference.get("revision")
    if source == DEFAULT_SPECTRUM_ID:
        return shipped_spectrum(reference.get("sha256"))
    if not isinstance(revision, (str, type(None))):
        raise _malformed(item, TypeError(f"spectrum revision={revision!r}"))
    if not isinstance(source, str) or not looks_like_repo_id(source) or names_local_path(source):
        raise ConfigError(
            f"Row {item.objective!r} was made with spectrum {source!r}, a file or an in-memory "
            "spectrum, and regenerate never reads a file because a record names it: pass "
            "spectrum=... (the file, a Hub id or a Spectrum)."
        )
    if name is not None:
        check_spectrum_name(name)
    return load_spectrum(source, name=name, revision=revision)


def _malformed(item: Visualization, error: Exception) -> GalleryError:
    return GalleryError(
        f"The record of row {item.objective!r} is malformed ({type(error).__name__}: "
        f"{error}); it cannot be regenerated."
    )


def _available(recorded: Any) -> str | None:
    """The recorded device type if this machine has it, else None (the default) with a message."""
    if recorded is None:
        return None
    kind = str(recorded).split(":")[0]
    if any(name.split(":")[0] == kind for name in available_devices()):
        return kind
    logger.warning(
        "The row was made on %r, which this machine does not have; regenerating on %s "
        "(pixels may differ slightly from the original).",
        str(recorded),
        resolve_device(None),
    )
    return None
