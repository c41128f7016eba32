"""A gallery folder's transactions: open, append, read, store an evaluation, repair.

Nothing in a folder is trusted: its layout (:mod:`maco_hub.gallery.layout`: no links inside, no
FIFO), shard names, sizes, columns and every row (:mod:`maco_hub.gallery.format`,
:mod:`maco_hub.gallery.row_checks`) are checked before use; row keys must equal the hash of the row's
record and each shard's sha256 the manifest's. File names are derived from keys.

Writers take the folder lock, re-read the manifest and merge into it, so concurrent jobs add the
union of their rows. Every write is atomic and the manifest is written after the files it lists; an
empty manifest marks a new folder before any data. A writer that opens a folder removes what
maco_hub left unfinished (its own temporary files, shards whose name is the hash of their content
but that no manifest lists, images and thumbnails of unlisted rows; regular files only) and
reports, but keeps, anything else; :meth:`GalleryFolder.repair` also drops damaged shards (to be
recomputed by a rerun) and rebuilds a lost manifest from the shards named by their hash. A failed
write (read-only folder, full disk) is one GalleryError and leaves the gallery as it was before the
failed batch.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from .._files import atomic_write, is_own_temp_file, kill_point
from ..errors import ConfigError, GalleryError
from .evaluation import Evaluation
from .evaluation_store import FIX as EVALUATION_FIX
from .evaluation_store import read_evaluation, to_store
from .format import (
    MAX_EVALUATION_BYTES,
    eval_columns,
    parquet_bytes,
    read_table,
    require_record,
    shard_batches,
    shard_bytes,
    shard_chunks,
    shard_names,
)
from .inputs import read_inputs, write_inputs
from .keys import canonical_json
from .layout import (
    EVALUATION_NAME,
    FORMAT_VERSION,
    IMAGES_DIR,
    MANIFEST_NAME,
    MAX_SHARD_BYTES,
    check_layout,
    entry_mode,
    file_digest,
    gallery_path,
    is_regular,
    read_file,
    writing,
)
from .lock import LOCK_NAME, folder_lock
from .manifest import read_manifest, write_manifest
from .repair import FolderRepairs, log_report
from .row_checks import check_rows, visualization_from_row
from .rows import Gallery, Visualization, image_names, png_bytes

logger = logging.getLogger(__name__)


class GalleryFolder(FolderRepairs):
    """A gallery folder being read or extended (see the module docstring)."""

    def __init__(
        self, path: Path, manifest: dict[str, Any], *, remedy: str, links_within: Path | None = None
    ):
        self.path = path
        self._manifest = manifest
        self._remedy = remedy  # what the user can do about a damaged shard
        self._links = links_within  # a downloaded gallery's cache folder: links to its blobs are read
        self._subjects: dict[str, dict[str, tuple]] = {}  # shard file -> subject -> settings
        self._checked: dict[tuple, list[dict[str, Any]]] = {}  # metadata rows of checked shards
        self._identities: dict[tuple[str, str], frozenset[str]] = {}  # (file, sha256) -> identity keys
        self._inputs: dict[str, Any] = {}  # checked input images, by sha256

    @classmethod
    def open(
        cls,
        path: str | os.PathLike,
        *,
        create: bool = True,
        remedy: str | None = None,
        links_within: Path | None = None,
    ) -> GalleryFolder:
        """Open a gallery folder to read it, or (``create``) to extend it, creating it if needed.

        Opening for writing marks a new folder as a gallery, cleans up what an interrupted
        maco_hub run left (see the module docstring) and checks every shard's sha256.
        ``links_within``: reading a downloaded gallery, the Hugging Face cache folder its files
        may link into.
        """
        path = Path(path)
        remedy = remedy or (
            f"run `maco-hub gallery repair {path}` to drop it, then rerun the "
            "explain command to recompute its rows"
        )
        if path.exists() and not path.is_dir():
            raise GalleryError(
                f"{str(path)!r} is a file, not a gallery folder; choose a new or empty "
                "folder (for --out) or a folder written by maco_hub."
            )
        if not create:
            check_layout(path, links_within=links_within)
            if entry_mode(path / MANIFEST_NAME) is None:
                raise GalleryError(
                    f"{str(path)!r} is not a maco_hub gallery (no {MANIFEST_NAME}); pass "
                    "a folder written by save_gallery / `maco-hub explain --out`."
                )
            return cls(
                path, read_manifest(path, links_within=links_within), remedy=remedy, links_within=links_within
            )
        with writing(path):
            _refuse_foreign_folder(path)
            path.mkdir(parents=True, exist_ok=True)
            with folder_lock(path):
                check_layout(path)
                if entry_mode(path / MANIFEST_NAME) is None:
                    _refuse_foreign_folder(path)
                    write_manifest(path, {"format": FORMAT_VERSION, "shards": []})
                    kill_point("after-marker")
                folder = cls(path, read_manifest(path), remedy=remedy)
                for entry in folder._manifest["shards"]:
                    folder._load_shard(entry, images=False)
                report = folder._reconcile()
        log_report(report)
        return folder

    @property
    def manifest(self) -> dict[str, Any]:
        """The manifest as last read (checked)."""
        return self._manifest

    @property
    def keys(self) -> set[str]:
        """Row keys in the gallery (as of the last read of the manifest)."""
        return {key for shard in self._manifest["shards"] for key in shard["keys"]}

    def identity_keys(self) -> set[str]:
        """The identity keys of the gallery's rows: a new row whose key is among them is already
        there (rows written before execution settings left the identity included). Hashed once
        per shard (shards are named by their content), so appending a batch does not cost more
        as the gallery grows."""
        keys: set[str] = set()
        for entry in self._manifest["shards"]:
            name = (entry["file"], entry["sha256"])
            if name not in self._identities:
                rows = self._load_shard(entry, images=False)
                self._identities[name] = frozenset(row["record"].identity_key for row in rows)
            keys |= self._identities[name]
        return keys

    def __len__(self) -> int:
        return sum(len(shard["keys"]) for shard in self._manifest["shards"])

    def append(self, items: Iterable[Visualization]) -> int:
        """Add the ``items`` that are not in the gallery yet, as one shard (or more, each of about
        :data:`~maco_hub.gallery.format.SHARD_TARGET_BYTES` of PNGs at most); return how many.

        Takes the folder lock and merges with what other writers added meanwhile.
        """
        with self.locked():
            known = self.identity_keys()
            new: dict[str, Visualization] = {}
            for item in items:
                if require_record(item).identity_key not in known:
                    new.setdefault(item.key, item)
            if not new:
                return 0
            self._warn_mixed_settings(new.values())
            for chunk in shard_chunks(new.values()):
                self._append_shard(chunk)
        return len(new)

    def read(self) -> Gallery:
        """Every row, in the order they were added (each shard's sha256, rows and images checked,
        and the input images rows were made from), with the stored evaluation."""
        items = [item for entry in self._manifest["shards"] for item in self.shard_items(entry)]
        return Gallery(tuple(items), evaluation=self.evaluation())

    def shard_items(self, entry: dict[str, Any]) -> list[Visualization]:
        """The rows of one listed shard (a manifest entry) as visualizations, checked, images and
        input images decoded."""
        return [
            self._with_inputs(visualization_from_row(row)) for row in self._load_shard(entry, images=True)
        ]

    def add_inputs(self, images) -> None:
        """Store input images (``inputs/SHA.png``) that are missing or damaged, under the lock."""
        with self.locked():
            write_inputs(self.path, images)

    def _with_inputs(self, item: Visualization) -> Visualization:
        """``item`` with the checked input images its batch was made from (GalleryError naming
        the row for a missing or swapped one)."""
        hashes = item.record.image_hashes
        if not hashes:
            return item
        where = f"Row {item.key} ({item.objective!r}): "
        return replace(
            item, inputs=read_inputs(self.path, hashes, self._inputs, links_within=self._links, where=where)
        )

    def metadata_rows(self) -> list[dict[str, Any]]:
        """Every row without its images (checked; records as RowRecords), in order."""
        return [row for shard in self._manifest["shards"] for row in self._load_shard(shard, images=False)]

    def evaluation(self) -> Evaluation | None:
        """The stored evaluation (None if none), checked (:func:`~.evaluation_store.read_evaluation`)."""
        if "file" not in (self._manifest.get("evaluation") or {}):
            return None
        data = self.read_own(
            EVALUATION_NAME,
            MAX_EVALUATION_BYTES,
            f"The {EVALUATION_NAME} of the gallery {self.path}",
            EVALUATION_FIX,
        )
        return read_evaluation(data, self._manifest, self.path)

    def save_evaluation(self, evaluation: Evaluation) -> Evaluation:
        """Store ``evaluation`` as columns of every shard and as evaluation.json (see
        :mod:`maco_hub.gallery.evaluation_store`); its judges replace earlier results of the same
        names. Returns what is stored."""
        with self.locked():
            try:
                previous = self.evaluation()
            except GalleryError as error:
                logger.warning("Replacing the evaluation of %s: %s", self.path, error)
                previous = None
            stored = to_store(evaluation, previous, self.keys, self.path)
            shards, old = [], []
            for entry in self._manifest["shards"]:
                rows, batches = self._stored_rows(entry)
                for row in rows:
                    values = stored.evaluation.rows.get(row["key"], {})
                    row.update({name: values.get(name) for name, _ in stored.columns})
                name, digest = self._write_shard(parquet_bytes(rows, stored.columns, batches))
                shards.append({"file": name, "keys": entry["keys"], "sha256": digest})
                if name != entry["file"]:
                    old.append(entry["file"])
            kill_point("after-eval-shards")
            self.write_own(EVALUATION_NAME, stored.text)
            kill_point("after-eval-json")
            self._manifest = {**self._manifest, "shards": shards, "evaluation": stored.manifest_entry()}
            write_manifest(self.path, self._manifest)
            for file in old:
                if is_regular(self.path / file):
                    (self.path / file).unlink()
        return stored.evaluation

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the folder lock with the layout checked and the manifest re-read; failed writes
        become one GalleryError."""
        with writing(self.path), folder_lock(self.path):
            check_layout(self.path)
            self._manifest = read_manifest(self.path)
            yield

    def read_own(self, name: str, limit: int, what: str, fix: str | None) -> bytes:
        """The bytes of the gallery's own file ``name`` (see :func:`~.layout.read_file`)."""
        return read_file(gallery_path(self.path, name, links_within=self._links), limit, what, fix)

    def write_own(self, name: str, data: bytes | str, *, durable: bool = True) -> None:
        """Write the gallery's own file ``name`` atomically, never through a link (``durable``: see
        :func:`~maco_hub._files.atomic_write`)."""
        atomic_write(gallery_path(self.path, name), data, durable=durable)

    # ------------------------------------------------------------------------------- internals

    def _append_shard(self, chunk: Sequence[tuple[Visualization, dict[str, Any]]]) -> None:
        """Under the lock: write one shard's images, the shard, then the manifest listing it."""
        write_inputs(self.path, [image for item, _ in chunk for image in _inputs_of(item)])
        for item, row in chunk:
            image, transparent = image_names(item.key)
            self.write_own(f"{IMAGES_DIR}/{image}", row["image"]["bytes"])
            self.write_own(f"{IMAGES_DIR}/{transparent}", png_bytes(item.with_transparency()))
        kill_point("after-images")
        name, digest = self._write_shard(shard_bytes(chunk, eval_columns(self._manifest)))
        kill_point("after-shard")
        shard = {"file": name, "keys": [item.key for item, _ in chunk], "sha256": digest}
        manifest = {**self._manifest, "shards": [*self._manifest["shards"], shard]}
        write_manifest(self.path, manifest)
        self._manifest = manifest
        kill_point("after-manifest")

    def _load_shard(self, entry: dict[str, Any], *, images: bool) -> list[dict[str, Any]]:
        """The rows of one listed shard, after checking its size, sha256, columns, keys, records
        and (``images``) its images, which become checked PIL images."""
        return self._read_shard(entry, images=images)[0]

    def _read_shard(self, entry: dict[str, Any], *, images: bool) -> tuple[list[dict[str, Any]], Any]:
        """The checked rows of one listed shard and its table as read (the file is read and hashed
        once; metadata rows of an unchanged file are not read again)."""
        where = f"gallery shard {entry['file']!r} in {self.path}"
        file = gallery_path(self.path, entry["file"], links_within=self._links)
        try:
            info = os.lstat(file)  # a checked shard is not hashed again while its file stays the same
        except FileNotFoundError:
            raise GalleryError(f"The {where} is missing; {self._remedy}.") from None
        extra = eval_columns(self._manifest)
        seen = (entry["file"], entry["sha256"], info.st_ino, info.st_size, info.st_mtime_ns, tuple(extra))
        if not images and seen in self._checked:
            return self._checked[seen], None
        data = read_file(file, MAX_SHARD_BYTES, f"The {where}", self._remedy)
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise GalleryError(
                f"The {where} does not match its sha256 in {MANIFEST_NAME} (replaced or "
                f"damaged); {self._remedy}."
            )
        table = read_table(
            data, entry["file"], self.path, self._remedy, extra, rows=len(entry["keys"]), images=images
        )
        rows = table.to_pylist()
        if [row["key"] for row in rows] != entry["keys"]:
            raise GalleryError(f"The {where} holds other rows than {MANIFEST_NAME} lists; {self._remedy}.")
        check_rows(rows, where, self._remedy, shard_batches(table, f"the {where}"))
        if not images:
            self._checked[seen] = rows
        return rows, table

    def _stored_rows(self, entry: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """A shard's rows as stored (image bytes, record as JSON text) without the evaluation
        columns, and its batch table, from one checked read."""
        _, table = self._read_shard(entry, images=True)
        extra = [name for name, _ in eval_columns(self._manifest)]
        batches = shard_batches(table, f"gallery shard {entry['file']!r} in {self.path}")
        return (
            table.drop_columns(extra).to_pylist(),
            {name: [member.to_dict() for member in members] for name, members in batches.items()},
        )

    def _write_shard(self, data: bytes) -> tuple[str, str]:
        """Write shard bytes under a name from their sha256 (the current file if it is the same
        content); return the name and the sha256."""
        digest = hashlib.sha256(data).hexdigest()
        for name in shard_names(digest):
            path = self.path / name
            mode = entry_mode(path)
            if mode is None:
                self.write_own(name, data)
                return name, digest
            if stat.S_ISREG(mode) and file_digest(path) == digest:
                return name, digest
        raise GalleryError(
            f"Every name of the shard {digest[:16]} in {self.path} is taken by another "
            "file; run `maco-hub gallery repair`."
        )

    def _warn_mixed_settings(self, new: Iterable[Visualization]) -> None:
        """Log when rows of the same model, objective and seed get other steps/canvas/spectrum."""
        for shard in self._manifest["shards"]:
            if shard["file"] not in self._subjects:
                self._subjects[shard["file"]] = {
                    canonical_json(r["record"].subject()): r["record"].settings()
                    for r in self._load_shard(shard, images=False)
                }
        existing: dict[str, tuple] = {}
        for subjects in self._subjects.values():
            existing.update(subjects)
        for item in new:
            before = existing.get(canonical_json(item.record.subject()))
            if before is not None and before != item.record.settings():
                logger.warning(
                    "%s (seed %s) is already in %s with other settings (steps, canvas, "
                    "spectrum: %s, now %s); both rows are kept, labelled by their settings.",
                    item.objective,
                    item.seed,
                    self.path,
                    before,
                    item.record.settings(),
                )


def _inputs_of(item: Visualization) -> list:
    """The input images a row names, from the row (ConfigError for one it does not carry)."""
    missing = sorted(item.record.image_hashes - set(item.inputs))
    if missing:
        raise ConfigError(
            f"The row {item.objective!r} was made from the image {missing[0][:12]}…, which it does "
            "not carry: load it from its gallery, or make it again with the image."
        )
    return [item.inputs[sha256] for sha256 in sorted(item.record.image_hashes)]


def _refuse_foreign_folder(path: Path) -> None:
    if entry_mode(path / MANIFEST_NAME) is not None or not path.is_dir():
        return
    others = [p.name for p in path.iterdir() if p.name != LOCK_NAME and not is_own_temp_file(p)]
    if others:
        raise GalleryError(
            f"{str(path)!r} is a non-empty folder but not a maco_hub gallery (no "
            f"{MANIFEST_NAME}; it holds {sorted(others)[:3]}); choose an empty or new "
            "folder for --out."
        )
