"""Galleries and spectra on the Hugging Face Hub, through the official clients.

Downloaded galleries are data: they are checked (see :mod:`maco_hub.store`) and never executed.

A push writes everything into a temporary folder and uploads it in one commit; a failure leaves
local files untouched, and pushing again completes the job (unchanged files are not re-sent).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ._lock import LOCK_NAME
from ._version import __version__
from .cards import spectrum_card
from .errors import ConfigError, GalleryError, HubError
from .gallery import Gallery, Visualization
from .shards import DATA_DIR, MANIFEST_NAME
from .store import GalleryFolder

if TYPE_CHECKING:
    from .spectra import Spectrum

LIBRARY = {"library_name": "maco_hub", "library_version": __version__}


def push_gallery(gallery: Iterable[Visualization], repo_id: str, *, private: bool = False,
                 token: str | None = None, revision: str | None = None,
                 commit_message: str | None = None) -> str:
    """Merge ``gallery`` into the dataset repo ``repo_id`` (created if needed) in one commit.

    Rows the repo already holds are kept and not duplicated; its shards are checked first. A
    :class:`Gallery` that carries an evaluation (``load_gallery`` of an evaluated folder, or
    :func:`maco_hub.evaluate` with ``out``) adds its results as columns, as ``save_evaluation``
    does. Returns the commit URL.
    """
    from huggingface_hub import HfApi

    check_repo_id(repo_id)
    items = list(gallery)
    api = HfApi(token=token, **LIBRARY)
    with _hub_errors(repo_id, "dataset", action="push the gallery to"):
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        if revision is not None:
            api.create_branch(repo_id, repo_type="dataset", branch=revision, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="maco_hub_push_") as tmp:
            folder = Path(tmp) / "gallery"
            if api.file_exists(repo_id, MANIFEST_NAME, repo_type="dataset", revision=revision):
                existing = api.snapshot_download(repo_id, repo_type="dataset", revision=revision)
                shutil.copytree(existing, folder, ignore=shutil.ignore_patterns(".gitattributes", ".cache"))
            store = GalleryFolder.open(folder, remedy=_damaged_repo(repo_id))
            store.append(items)
            evaluation = getattr(gallery, "evaluation", None)
            if evaluation is not None:
                store.save_evaluation(evaluation)
            store.write_pages(repo_id=repo_id)
            info = api.upload_folder(  # shards the manifest no longer lists are deleted
                repo_id=repo_id, repo_type="dataset", folder_path=folder, revision=revision,
                commit_message=commit_message or f"Add {len(items)} MACO visualizations (maco_hub)",
                ignore_patterns=[LOCK_NAME], delete_patterns=[f"{DATA_DIR}/*.parquet"],
            )
    return str(getattr(info, "commit_url", info))


def load_gallery(source: str | os.PathLike, *, revision: str | None = None,
                 token: str | None = None) -> Gallery:
    """A gallery from a folder written by :func:`save_gallery` / ``explain(out=...)``, or a Hub
    dataset repo id (downloaded into the Hugging Face cache at ``revision``). Every shard's
    sha256 and rows are checked; nothing in the gallery is executed or followed outside it (a
    folder's own files and folders must not be links; a download's may link to its cache blobs)."""
    path = Path(source)
    if path.exists():
        if revision is not None:
            raise ConfigError(f"revision={revision!r} applies to Hub repos; {str(source)!r} is a folder.")
        return GalleryFolder.open(path, create=False).read()
    if not isinstance(source, str) or source.count("/") != 1 or source.startswith((".", "/", "~")):
        raise GalleryError(f"{str(source)!r} is neither an existing gallery folder nor a Hub dataset repo "
                           "id ('namespace/name'); check the path.")
    folder = download_gallery(source, revision=revision, token=token)
    return GalleryFolder.open(folder, create=False, remedy=_damaged_repo(source),
                              links_within=_cache_folder(folder)).read()


def download_gallery(repo_id: str, *, revision: str | None = None, token: str | None = None) -> Path:
    """Download (or reuse from the cache) the gallery dataset ``repo_id``; return its folder."""
    from huggingface_hub import snapshot_download

    check_repo_id(repo_id)
    with _hub_errors(repo_id, "dataset", action="download the gallery"):
        return Path(snapshot_download(repo_id, repo_type="dataset", revision=revision, token=token,
                                      **LIBRARY))


def _cache_folder(snapshot: Path) -> Path | None:
    """The cache folder of a downloaded repo (``.../datasets--ns--name``) whose ``blobs`` the files
    of its ``snapshots/COMMIT`` link to; None for a folder that is not such a snapshot."""
    return snapshot.parent.parent if snapshot.parent.name == "snapshots" else None


def _damaged_repo(repo_id: str) -> str:
    return (f"the dataset repo {repo_id!r} is damaged: load an earlier revision, or ask its owner to "
            "run `maco-hub gallery repair` on a local copy and push it again")


def push_spectrum(spectrum: Spectrum | str | os.PathLike, repo_id: str, *,
                  name: str = "spectrum.safetensors", revision: str | None = None,
                  token: str | None = None, private: bool = False,
                  commit_message: str | None = None) -> str:
    """Upload a spectrum (object or file) as ``name`` with a provenance card, in one commit.

    ``load_spectrum(repo_id, name=name, revision=...)`` reads it back, verifying its sha256.
    """
    from huggingface_hub import CommitOperationAdd, HfApi

    from .spectra import Spectrum, check_spectrum_name

    check_repo_id(repo_id)
    check_spectrum_name(name)
    spectrum = spectrum if isinstance(spectrum, Spectrum) else Spectrum.load(spectrum)
    api = HfApi(token=token, **LIBRARY)
    with tempfile.TemporaryDirectory(prefix="maco_hub_spectrum_") as tmp, \
            _hub_errors(repo_id, "model", action="push the spectrum to"):
        file = spectrum.save(Path(tmp) / "spectrum.safetensors")
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        if revision is not None:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        operations = [CommitOperationAdd(name, str(file)),
                      CommitOperationAdd("README.md", spectrum_card(spectrum, repo_id, name).encode())]
        info = api.create_commit(repo_id, operations, revision=revision,
                                 commit_message=commit_message or f"Add magnitude spectrum {name}")
    return str(getattr(info, "commit_url", info))


def check_repo_id(repo_id: str) -> None:
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
