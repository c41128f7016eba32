"""Galleries and spectra on the Hugging Face Hub, through the official clients.

A push writes everything into a temporary folder and uploads it in one commit; a failure leaves
local files untouched, and pushing again completes the job (unchanged files are not re-sent).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ._version import __version__
from .errors import ConfigError, HubError

if TYPE_CHECKING:
    from .gallery import Gallery
    from .spectra import Spectrum

LIBRARY = {"library_name": "maco_hub", "library_version": __version__}


def push_gallery(gallery: Gallery, repo_id: str, *, private: bool = False, token: str | None = None,
                 revision: str | None = None, commit_message: str | None = None) -> str:
    """Merge ``gallery`` into the dataset repo ``repo_id`` and upload the result in one commit."""
    from huggingface_hub import HfApi

    from .store import MANIFEST_NAME, GalleryFolder

    _check_repo_id(repo_id)
    api = HfApi(token=token, **LIBRARY)
    with _hub_errors(repo_id, "dataset", action="push the gallery to"):
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        if revision is not None:
            api.create_branch(repo_id, repo_type="dataset", branch=revision, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="maco_hub_push_") as tmp:
            folder = Path(tmp) / "gallery"
            if api.file_exists(repo_id, MANIFEST_NAME, repo_type="dataset", revision=revision):
                existing = api.snapshot_download(repo_id, repo_type="dataset", revision=revision)
                shutil.copytree(existing, folder, ignore=shutil.ignore_patterns(".gitattributes"))
            store = GalleryFolder.open(folder)
            store.append(gallery.items)
            store.write_pages(repo_id=repo_id)
            info = api.upload_folder(
                repo_id=repo_id, repo_type="dataset", folder_path=folder, revision=revision,
                commit_message=commit_message or f"Add {len(gallery)} MACO visualizations (maco_hub)",
            )
    return str(getattr(info, "commit_url", info))


def download_gallery(repo_id: str, *, revision: str | None = None, token: str | None = None) -> Path:
    """Download (or reuse from the cache) the gallery dataset ``repo_id``; return its folder."""
    from huggingface_hub import snapshot_download

    _check_repo_id(repo_id)
    with _hub_errors(repo_id, "dataset", action="download the gallery"):
        return Path(snapshot_download(repo_id, repo_type="dataset", revision=revision, token=token,
                                      **LIBRARY))


def push_spectrum(spectrum: Spectrum | str | os.PathLike, repo_id: str, *,
                  name: str = "spectrum.safetensors", revision: str | None = None,
                  token: str | None = None, private: bool = False,
                  commit_message: str | None = None) -> str:
    """Upload a spectrum (object or file) as ``name`` with a provenance card, in one commit.

    ``load_spectrum(repo_id, name=name, revision=...)`` reads it back, verifying its sha256.
    """
    from huggingface_hub import CommitOperationAdd, HfApi

    from .spectra import Spectrum

    _check_repo_id(repo_id)
    _check_spectrum_name(name)
    spectrum = spectrum if isinstance(spectrum, Spectrum) else Spectrum.load(spectrum)
    api = HfApi(token=token, **LIBRARY)
    with tempfile.TemporaryDirectory(prefix="maco_hub_spectrum_") as tmp, \
            _hub_errors(repo_id, "model", action="push the spectrum to"):
        file = spectrum.save(Path(tmp) / "spectrum.safetensors")
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        if revision is not None:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        operations = [CommitOperationAdd(name, str(file)),
                      CommitOperationAdd("README.md", _spectrum_card(spectrum, repo_id, name).encode())]
        info = api.create_commit(repo_id, operations, revision=revision,
                                 commit_message=commit_message or f"Add magnitude spectrum {name}")
    return str(getattr(info, "commit_url", info))


def _check_spectrum_name(name: str) -> None:
    """A relative ``.safetensors`` path inside a repo, or ConfigError."""
    if (not isinstance(name, str) or not name.endswith(".safetensors") or name.startswith("/")
            or any(part in ("", ".", "..") for part in name.split("/"))):
        raise ConfigError(f"Spectrum file name {name!r} must be a relative .safetensors path inside the "
                          "repo, e.g. 'spectrum.safetensors' or 'spectra/imagenet.safetensors'.")


def _spectrum_card(spectrum: Spectrum, repo_id: str, name: str) -> str:
    from huggingface_hub import ModelCard, ModelCardData

    from .spectra import _LOADED_FROM_KEYS

    data = ModelCardData(library_name="maco_hub", tags=["maco", "feature-visualization", "spectrum"],
                         license="other")
    rows = "\n".join(f"| `{k}` | {_table_cell(v)} |" for k, v in sorted(spectrum.metadata.items())
                      if k not in _LOADED_FROM_KEYS)
    body = f"""# Natural-image magnitude spectrum for MACO

`{name}` holds a float32 tensor `magnitude` of shape {tuple(spectrum.magnitude.shape)}: the mean Fourier
magnitude (rfft2 layout, not fftshifted) of {spectrum.height}×{spectrum.width} images in decorrelated
colour channels, as MACO keeps fixed while it optimizes the phase.

```python
import maco_hub
spectrum = maco_hub.load_spectrum("{repo_id}", name="{name}")  # sha256 checked on load
```

## Provenance (the file's metadata)

Pushed with maco_hub {__version__}. Values as stored in the file:

| key | value |
|---|---|
{rows}
"""
    # not ModelCard.from_template: Jinja would interpret "{{" or "{%" inside metadata values
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n{body}"))


def _table_cell(value: object) -> str:
    """One Markdown table cell: whitespace runs (newlines too) collapsed, pipes escaped."""
    return " ".join(str(value).split()).replace("|", "\\|")


def _check_repo_id(repo_id: str) -> None:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        if not isinstance(repo_id, str) or repo_id.count("/") != 1:
            raise HFValidationError("expected exactly one '/' between namespace and name")
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise ConfigError(f"Hub repo id {repo_id!r} is malformed ({error}); use 'namespace/name', "
                          "e.g. 'my-user/vit-base-maco'.") from None


@contextmanager
def _hub_errors(repo_id: str, repo_type: str, *, action: str) -> Iterator[None]:
    """Turn client exceptions into one clear HubError naming the repo and the fix."""
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo_type} repo {repo_id!r} on {constants.ENDPOINT}"
    try:
        yield
    except RevisionNotFoundError as error:
        raise HubError(f"Could not {action} {where}: revision not found. Check the branch, tag "
                       "or commit.") from error
    except RepositoryNotFoundError as error:
        hint = _other_type_hint(repo_id, repo_type)
        raise HubError(f"Could not {action} {where}: repository not found{hint}. Check the id and "
                       "that your token can see it.") from error
    except HfHubHTTPError as error:
        status = getattr(error.response, "status_code", None)
        if status in (401, 403):
            raise HubError(f"Could not {action} {where}: permission denied (HTTP {status}). Use a "
                           "token with write access (HF_TOKEN or `hf auth login`) or a namespace you "
                           "own.") from error
        raise HubError(f"Could not {action} {where}: HTTP {status}. Nothing local was changed; try "
                       "again.") from error
    except LocalEntryNotFoundError as error:
        raise HubError(f"Could not {action} {where}: it is not in the local cache and the Hub is "
                       "unreachable (or HF_HUB_OFFLINE=1). Connect once to download it.") from error
    except Exception as error:
        if _is_connection_error(error):
            raise HubError(f"Could not {action} {where}: the Hub is unreachable ({type(error).__name__})."
                           " Nothing local was changed; run the same command again when online.") from error
        raise


def _other_type_hint(repo_id: str, repo_type: str) -> str:
    from huggingface_hub import HfApi

    other = "model" if repo_type == "dataset" else "dataset"
    try:
        exists = HfApi(**LIBRARY).repo_exists(repo_id, repo_type=other)
    except Exception:
        return ""
    if exists:
        return (f" (a {other} repo of that name exists: galleries are dataset repos, spectra are "
                "model repos)")
    return ""


def _is_connection_error(error: BaseException) -> bool:
    if isinstance(error, (ConnectionError, TimeoutError)):
        return True
    return any(cls.__name__ in ("ConnectError", "ConnectTimeout", "ReadTimeout", "NetworkError",
                                "RemoteProtocolError", "OfflineModeIsEnabled")
               for cls in type(error).__mro__)
