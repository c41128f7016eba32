"""Spectra on the Hugging Face Hub, through the official client: download (cached, checked) and
push (the file and a provenance card, in one commit)."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from .._hub import LIBRARY, check_repo_id, hub_errors
from ..errors import SpectrumError
from .card import spectrum_card
from .spectrum import Spectrum, _read_file, check_spectrum_name

_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")


def download_spectrum(
    repo_id: str,
    *,
    filename: str,
    revision: str | None,
    cache_dir: str | os.PathLike | None,
    token: str | bool | None,
    local_files_only: bool | None,
) -> Spectrum:
    """The spectrum file ``filename`` of the model repo ``repo_id`` (from the Hugging Face cache
    when it is there), checked; its metadata records the resolved commit."""
    from huggingface_hub import hf_hub_download

    action = f"get the spectrum file {filename!r} from"
    try:
        with hub_errors(repo_id, "model", action=action, revision=revision, error=SpectrumError):
            downloaded = hf_hub_download(
                repo_id,
                filename=filename,
                repo_type="model",
                revision=revision,
                cache_dir=cache_dir,
                token=token,
                local_files_only=bool(local_files_only),
                **LIBRARY,
            )
    except (OSError, ValueError) as error:  # what the translator leaves: a bad cache, a bad id
        at = f"revision {revision or 'main'!r}"
        raise SpectrumError(
            f"Could not {action} the model repo {repo_id!r} ({at}): "
            f"{type(error).__name__}: {str(error).rstrip('. ')}. Check the repo id, file "
            "name and revision, or pass a local file."
        ) from error
    path = Path(downloaded)
    commit = path.parent.name if _COMMIT_RE.match(path.parent.name) else (revision or "main")
    where = f"{filename!r} of Hub repo {repo_id!r} at revision {revision or 'main'!r}"
    return _read_file(path, fix=f"delete it from the Hub cache and download {where} again")._with(
        source=repo_id, revision=commit, filename=filename
    )


def push_spectrum(
    spectrum: Spectrum | str | os.PathLike,
    repo_id: str,
    *,
    name: str = "spectrum.safetensors",
    revision: str | None = None,
    token: str | None = None,
    private: bool = False,
    commit_message: str | None = None,
) -> str:
    """Upload a spectrum (object or file) as ``name`` with a provenance card, in one commit.

    ``load_spectrum(repo_id, name=name, revision=...)`` reads it back, verifying its sha256.
    """
    from huggingface_hub import CommitOperationAdd, HfApi

    check_repo_id(repo_id)
    check_spectrum_name(name)
    spectrum = spectrum if isinstance(spectrum, Spectrum) else Spectrum.load(spectrum)
    api = HfApi(token=token, **LIBRARY)
    with (
        tempfile.TemporaryDirectory(prefix="maco_hub_spectrum_") as tmp,
        hub_errors(repo_id, "model", action="push the spectrum to"),
    ):
        file = spectrum.save(Path(tmp) / "spectrum.safetensors")
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        if revision is not None:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        operations = [
            CommitOperationAdd(name, str(file)),
            CommitOperationAdd("README.md", spectrum_card(spectrum, repo_id, name).encode()),
        ]
        info = api.create_commit(
            repo_id,
            operations,
            revision=revision,
            commit_message=commit_message or f"Add magnitude spectrum {name}",
        )
    return str(getattr(info, "commit_url", info))
