"""Galleries saved, loaded, repaired and pushed: folders and Hub dataset repos side by side.

Downloaded galleries are data: they are checked like a folder's (:mod:`maco_hub.gallery.folder`)
and never executed. A push saves into a temporary copy of the repo's gallery with
:func:`save_gallery`'s own code and uploads it in one commit; a failure leaves local files
untouched, and pushing again completes the job (unchanged files are not re-sent).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from .._hub import LIBRARY, check_repo_id, hub_errors
from ..errors import ConfigError, GalleryError
from .evaluation import Evaluation
from .folder import GalleryFolder
from .format import is_own_shard
from .layout import DATA_DIR, FORMAT_VERSION, MANIFEST_NAME, check_layout, entries, entry_mode
from .lock import LOCK_NAME
from .pages import write_pages
from .repair import RepairReport
from .rows import Gallery, Visualization


def save_gallery(
    gallery: Iterable[Visualization], folder: str | os.PathLike, *, title: str | None = None
) -> Path:
    """Write (or extend) a gallery folder that ``datasets.load_dataset(folder)`` reads.

    Rows already in the folder are kept and not duplicated; concurrent writers are safe. The
    evaluation a :class:`Gallery` carries is stored too (see :func:`save_evaluation`).
    """
    return _save(gallery, GalleryFolder.open(folder), title=title)


def save_evaluation(
    folder: str | os.PathLike, evaluation: Evaluation, *, title: str | None = None
) -> Evaluation:
    """Store ``evaluation`` in the gallery folder (columns, evaluation.json, card and page) and
    return what is stored: its judges replace earlier results of the same names, and earlier
    judges measured with the same crops, seed and reference are kept."""
    store = GalleryFolder.open(folder, create=False)
    stored = store.save_evaluation(evaluation)
    write_pages(store, title=title)
    return stored


def repair_gallery(folder: str | os.PathLike) -> RepairReport:
    """Make a damaged gallery folder consistent again (see :meth:`GalleryFolder.repair`) and rewrite
    its pages; a folder whose manifest.json was lost gets one rebuilt from its shards named by
    their hash."""
    path = Path(folder)
    if path.is_dir():
        check_layout(path)
    if entry_mode(path / MANIFEST_NAME) is None and not any(map(is_own_shard, entries(path / DATA_DIR))):
        raise GalleryError(
            f"{str(path)!r} is not a maco_hub gallery (no {MANIFEST_NAME}, no shard of "
            f"maco_hub in {DATA_DIR}/); pass a gallery folder to repair."
        )
    store = GalleryFolder(path, {"format": FORMAT_VERSION, "shards": []}, remedy="it was dropped")
    report = store.repair()
    write_pages(store)
    return report


def load_gallery(
    source: str | os.PathLike, *, revision: str | None = None, token: str | None = None
) -> Gallery:
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
        raise GalleryError(
            f"{str(source)!r} is neither an existing gallery folder nor a Hub dataset repo "
            "id ('namespace/name'); check the path."
        )
    folder = download_gallery(source, revision=revision, token=token)
    return GalleryFolder.open(
        folder, create=False, remedy=_damaged_repo(source), links_within=_cache_folder(folder)
    ).read()


def download_gallery(repo_id: str, *, revision: str | None = None, token: str | None = None) -> Path:
    """Download (or reuse from the cache) the gallery dataset ``repo_id``; return its folder."""
    from huggingface_hub import snapshot_download

    check_repo_id(repo_id)
    with hub_errors(repo_id, "dataset", action="download the gallery", revision=revision):
        return Path(
            snapshot_download(repo_id, repo_type="dataset", revision=revision, token=token, **LIBRARY)
        )


def push_gallery(
    gallery: Iterable[Visualization],
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
) -> str:
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
    with hub_errors(repo_id, "dataset", action="push the gallery to"):
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        if revision is not None:
            api.create_branch(repo_id, repo_type="dataset", branch=revision, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="maco_hub_push_") as tmp:
            folder = Path(tmp) / "gallery"
            if api.file_exists(repo_id, MANIFEST_NAME, repo_type="dataset", revision=revision):
                existing = api.snapshot_download(repo_id, repo_type="dataset", revision=revision)
                shutil.copytree(existing, folder, ignore=shutil.ignore_patterns(".gitattributes", ".cache"))
            store = GalleryFolder.open(folder, remedy=_damaged_repo(repo_id))
            _save(Gallery(tuple(items), getattr(gallery, "evaluation", None)), store, repo_id=repo_id)
            info = api.upload_folder(  # shards the manifest no longer lists are deleted
                repo_id=repo_id,
                repo_type="dataset",
                folder_path=folder,
                revision=revision,
                commit_message=commit_message or f"Add {len(items)} MACO visualizations (maco_hub)",
                ignore_patterns=[LOCK_NAME],
                delete_patterns=[f"{DATA_DIR}/*.parquet"],
            )
    return str(getattr(info, "commit_url", info))


def _save(
    gallery: Iterable[Visualization],
    store: GalleryFolder,
    *,
    title: str | None = None,
    repo_id: str | None = None,
) -> Path:
    """Append ``gallery``'s rows and its evaluation to an open folder, then write its pages."""
    store.append(gallery)
    evaluation = getattr(gallery, "evaluation", None)
    if evaluation is not None:
        store.save_evaluation(evaluation)
    write_pages(store, title=title, repo_id=repo_id)
    return store.path


def _cache_folder(snapshot: Path) -> Path | None:
    """The cache folder of a downloaded repo (``.../datasets--ns--name``) whose ``blobs`` the files
    of its ``snapshots/COMMIT`` link to; None for a folder that is not such a snapshot."""
    return snapshot.parent.parent if snapshot.parent.name == "snapshots" else None


def _damaged_repo(repo_id: str) -> str:
    return (
        f"the dataset repo {repo_id!r} is damaged: load an earlier revision, or ask its owner to "
        "run `maco-hub gallery repair` on a local copy and push it again"
    )
