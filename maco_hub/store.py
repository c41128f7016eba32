"""A gallery on disk: parquet shards the Hub viewer and ``datasets`` read, plus PNGs and a page.

Layout of a gallery folder::

    manifest.json                 the finished shards, in order, with their row keys and sha256
    data/train-HASH.parquet       one shard per finished batch: `image`/`alpha` columns + metadata
    images/KEY.png                the image, and KEY-transparent.png with attribution as alpha
    README.md                     dataset card (YAML header tells `datasets` where the data is)
    index.html                    static viewer (search, transparency toggle, records)
    evaluation.json               legibility results (:func:`save_evaluation`), if evaluated
    .maco_hub.lock                the inter-process lock every writer takes

Nothing in a folder is trusted: shard names must be ``data/train-HASH.parquet``, row keys 20 hex
digits that equal the hash of the row's record, each shard's sha256 must match the manifest, and
sizes, column types, records and images are checked before they are used (:mod:`maco_hub.shards`).
File names are derived from keys. The folder itself may be reached through a link the user
named, but nothing inside it is a link: ``data/``, ``images/`` and every file above must be a
real folder or a regular file, or the operation stops with a GalleryError before it reads,
writes or deletes anything there (two galleries whose ``images/`` link to one folder would
otherwise delete each other's images). A downloaded gallery's files may link to its blobs in the
Hugging Face cache, nowhere else.

Writers take the folder lock, re-read the manifest and merge into it, so concurrent jobs add
the union of their rows. Every write is atomic and the manifest is written after the files it
lists; an empty manifest marks a new folder before any data. A writer that opens a folder removes
what maco_hub left unfinished (its own temporary files, shards whose name is the hash of their
content but that no manifest lists, images of unlisted rows; regular files only) and reports, but
keeps, anything else; :func:`repair_gallery` also drops damaged shards (to be recomputed by a
rerun) and rebuilds a lost manifest from the shards named by their hash. A failed write (read-only
folder, full disk) is one GalleryError and leaves the gallery as it was before the failed batch.

An evaluation (:func:`maco_hub.legibility.evaluate`) is stored as columns ``eval_<judge>_<field>``
of every shard (None where a row was not judged) and as ``evaluation.json`` (summary and
settings, size- and type-checked on load). Storing one rewrites the shards under the lock: new
shards (new names and sha256, same rows, keys and images), then evaluation.json, then the
manifest, then the old shards are removed; an interruption leaves the previous gallery (a
mismatching evaluation.json is reported, and dropped by :func:`repair_gallery`).
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import stat
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._files import atomic_write, is_own_temp_file, kill_point, read_regular
from ._lock import LOCK_NAME, folder_lock
from .cards import render_gallery_card
from .errors import ConfigError, GalleryError
from .evaluation import Evaluation, column_name
from .gallery import Gallery, Visualization, image_names, png_bytes
from .keys import canonical_json, is_row_key
from .shards import (
    DATA_DIR,
    EVALUATION_NAME,
    FORMAT_VERSION,
    IMAGES_DIR,
    MANIFEST_NAME,
    MAX_EVALUATION_BYTES,
    MAX_SHARD_BYTES,
    check_evaluation_entry,
    check_layout,
    check_rows,
    entry_mode,
    eval_columns,
    features_yaml,
    gallery_path,
    is_own_shard,
    parquet_bytes,
    parse_json,
    read_file,
    read_manifest,
    read_table,
    shard_chunks,
    shard_eval_columns,
    shard_names,
    visualization_from_row,
    write_manifest,
)
from .viewer import INDEX_NAME, render_index_html

logger = logging.getLogger(__name__)

_KNOWN_TOP = {MANIFEST_NAME, DATA_DIR, IMAGES_DIR, "README.md", "index.html", LOCK_NAME, ".gitattributes",
              EVALUATION_NAME}
CHIP_FIELDS = ("status", "top1", "prob", "crops_top1")  # what a viewer tile shows per judge


@dataclass
class RepairReport:
    """What :func:`repair_gallery` (or opening a folder for writing) did."""

    rows: int = 0  # rows in the gallery afterwards
    dropped: list[str] = field(default_factory=list)  # manifest entries removed, with the reason
    adopted: list[str] = field(default_factory=list)  # finished shards of ours added to the manifest
    removed: list[str] = field(default_factory=list)  # files maco_hub left unfinished, deleted
    left: list[str] = field(default_factory=list)  # files maco_hub did not write: kept, to check


class GalleryFolder:
    """A gallery folder being read or extended (see the module docstring for its layout)."""

    def __init__(self, path: Path, manifest: dict[str, Any], *, remedy: str,
                 links_within: Path | None = None):
        self.path = path
        self._manifest = manifest
        self._remedy = remedy  # what the user can do about a damaged shard
        self._links = links_within  # a downloaded gallery's cache folder: links to its blobs are read
        self._identities: dict[str, dict[str, tuple]] = {}  # shard file -> identity -> settings
        self._checked: dict[tuple, list[dict[str, Any]]] = {}  # metadata rows of checked shards

    @classmethod
    def open(cls, path: str | os.PathLike, *, create: bool = True, remedy: str | None = None,
             links_within: Path | None = None) -> GalleryFolder:
        """Open a gallery folder to read it, or (``create``) to extend it, creating it if needed.

        Opening for writing marks a new folder as a gallery, cleans up what an interrupted
        maco_hub run left (see the module docstring) and checks every shard's sha256.
        ``links_within``: reading a downloaded gallery, the Hugging Face cache folder its files
        may link into.
        """
        path = Path(path)
        remedy = remedy or (f"run `maco-hub gallery repair {path}` to drop it, then rerun the "
                            "explain command to recompute its rows")
        if path.exists() and not path.is_dir():
            raise GalleryError(f"{str(path)!r} is a file, not a gallery folder; choose a new or empty "
                               "folder (for --out) or a folder written by maco_hub.")
        if not create:
            check_layout(path, links_within=links_within)
            if entry_mode(path / MANIFEST_NAME) is None:
                raise GalleryError(f"{str(path)!r} is not a maco_hub gallery (no {MANIFEST_NAME}); pass "
                                   "a folder written by save_gallery / `maco-hub explain --out`.")
            return cls(path, read_manifest(path, links_within=links_within), remedy=remedy,
                       links_within=links_within)
        with _writing(path):
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
        _log_report(report)
        return folder

    @property
    def keys(self) -> set[str]:
        """Row keys in the gallery (as of the last read of the manifest)."""
        return {key for shard in self._manifest["shards"] for key in shard["keys"]}

    def __len__(self) -> int:
        return sum(len(shard["keys"]) for shard in self._manifest["shards"])

    def append(self, items: Iterable[Visualization]) -> int:
        """Add the ``items`` whose key is not in the gallery yet, as one shard (or more, each of
        about :data:`~maco_hub.shards.SHARD_TARGET_BYTES` of PNGs at most); return how many.

        Takes the folder lock and merges with what other writers added meanwhile.
        """
        with self._locked():
            known = self.keys
            new: dict[str, Visualization] = {}
            for item in items:
                if item.key not in known:
                    new.setdefault(item.key, item)
            if not new:
                return 0
            self._warn_mixed_settings(new.values())
            for chunk in shard_chunks(new.values()):
                self._append_shard(chunk)
        return len(new)

    def _append_shard(self, chunk: Sequence[tuple[Visualization, dict[str, Any]]]) -> None:
        """Under the lock: write one shard's images, the shard, then the manifest listing it."""
        for item, row in chunk:
            image, transparent = image_names(item.key)
            self._write(f"{IMAGES_DIR}/{image}", row["image"]["bytes"])
            self._write(f"{IMAGES_DIR}/{transparent}", png_bytes(item.with_transparency()))
        kill_point("after-images")
        name, digest = self._write_shard(parquet_bytes([row for _, row in chunk],
                                                       eval_columns(self._manifest)))
        kill_point("after-shard")
        shard = {"file": name, "keys": [item.key for item, _ in chunk], "sha256": digest}
        manifest = {**self._manifest, "shards": [*self._manifest["shards"], shard]}
        write_manifest(self.path, manifest)
        self._manifest = manifest
        kill_point("after-manifest")

    def write_pages(self, *, title: str | None = None, repo_id: str | None = None) -> None:
        """(Re)write README.md (dataset card) and index.html (viewer) from the shards' metadata."""
        with self._locked():
            rows = self._metadata_rows()
            evaluation = self.evaluation()
            card = render_gallery_card(rows, shards=[shard["file"] for shard in self._manifest["shards"]],
                                       features_yaml=features_yaml(eval_columns(self._manifest)),
                                       title=title, repo_id=repo_id, evaluation=evaluation)
            self._write("README.md", card)
            kill_point("during-pages")
            page_rows = []
            for r in rows:
                image, transparent = image_names(r["key"])
                page_rows.append({"image": f"{IMAGES_DIR}/{image}",
                                  "transparent": f"{IMAGES_DIR}/{transparent}",
                                  **{k: r[k] for k in ("objective", "kind", "layer", "unit", "class_id",
                                                       "label", "score", "seed", "steps", "canvas")},
                                  "record": r["record"], "evaluation": _chips(evaluation, r["key"])})
            model_ids = ", ".join(sorted({str(r["model_id"]) for r in rows}))
            summary = None
            if evaluation is not None:
                header, lines = evaluation.table()
                summary = {"header": header, "rows": lines, "notes": evaluation.notes()}
            description = f"{len(rows)} feature visualizations made with maco_hub (MACO)."
            page = render_index_html(page_rows, title=title or f"MACO gallery: {model_ids}",
                                     description=description, summary=summary)
            self._write(INDEX_NAME, page)

    def read(self) -> Gallery:
        """Every row, in the order they were added (each shard's sha256, rows and images checked)."""
        items: list[Visualization] = []
        for entry in self._manifest["shards"]:
            for index, row in enumerate(self._load_shard(entry, images=True)):
                try:
                    items.append(visualization_from_row(row))
                except (OSError, ValueError, TypeError, KeyError) as error:
                    raise GalleryError(f"Row {index} of gallery shard {entry['file']!r} in {self.path} "
                                       f"cannot be read ({type(error).__name__}: {error}); "
                                       f"{self._remedy}.") from None
        return Gallery(tuple(items), evaluation=self.evaluation())

    def evaluation(self) -> Evaluation | None:
        """The stored evaluation (None if none), checked: size, sha256, types, row keys, columns."""
        entry = self._manifest.get("evaluation") or {}
        if "file" not in entry:
            return None
        where = f"{EVALUATION_NAME} of the gallery {self.path}"
        fix = ("run `maco-hub gallery evaluate` again to replace it, or `maco-hub gallery repair` to "
               "drop it")
        data = self._read(EVALUATION_NAME, MAX_EVALUATION_BYTES, f"The {where}", fix)
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise GalleryError(f"The {where} does not match its sha256 in {MANIFEST_NAME} (an interrupted "
                               f"evaluation, or edited); {fix}.")
        try:
            record = parse_json(data.decode("utf-8"), f"the {where}", MAX_EVALUATION_BYTES)
            evaluation = Evaluation.from_record(record)
        except (UnicodeDecodeError, GalleryError) as error:
            raise GalleryError(f"The {where} is refused: {error}") from None
        bad = next((key for key in evaluation.rows if not is_row_key(key)), None)
        if bad is not None or evaluation.columns != [name for name, _ in eval_columns(self._manifest)]:
            raise GalleryError(f"The {where} has the row {bad!r} or other columns than {MANIFEST_NAME} "
                               f"lists; {fix}.")
        return evaluation

    def save_evaluation(self, evaluation: Evaluation) -> Evaluation:
        """Store ``evaluation`` as columns of every shard and as evaluation.json (see the module
        docstring); its judges replace earlier results of the same names. Returns what is stored."""
        if not isinstance(evaluation, Evaluation):
            raise ConfigError(f"save_evaluation needs an Evaluation (from maco_hub.evaluate), not "
                              f"{type(evaluation).__name__}.")
        with self._locked():
            try:
                previous = self.evaluation()
            except GalleryError as error:
                logger.warning("Replacing the evaluation of %s: %s", self.path, error)
                previous = None
            keys = self.keys
            outside = set(evaluation.rows) - keys
            if evaluation.rows and outside == set(evaluation.rows):
                raise ConfigError(f"None of the {len(outside)} evaluated rows is in the gallery {self.path}; "
                                  "store an evaluation in the folder that holds its rows.")
            if outside:
                logger.warning("%d evaluated row(s) are not in %s (other rows or keyless rows); their "
                               "results are not stored.", len(outside), self.path)
            stored = evaluation.replacing(previous).restricted_to(keys)
            try:
                record = json.dumps(stored.to_record(), sort_keys=True, allow_nan=False)
            except ValueError:
                raise ConfigError("The evaluation holds a NaN or infinite number, which JSON and a "
                                  "gallery cannot hold; evaluate again (a judge or a row gave "
                                  "non-finite outputs).") from None
            if len(record) > MAX_EVALUATION_BYTES:
                raise ConfigError(f"The evaluation is {len(record)} characters of JSON, over the limit of "
                                  f"{MAX_EVALUATION_BYTES}; evaluate fewer judges at once.")
            columns = stored.column_types()
            if len({name for name, _ in columns}) < len(columns):
                raise ConfigError(f"The judge names {[s['judge'] for s in stored.summary]} give two "
                                  "columns the same name; name the judges (a mapping name -> model).")
            shards, old = [], []
            for entry in self._manifest["shards"]:
                rows = self._raw_rows(entry)
                for row in rows:
                    values = stored.rows.get(row["key"], {})
                    row.update({name: values.get(name) for name, _ in columns})
                name, digest = self._write_shard(parquet_bytes(rows, columns))
                shards.append({"file": name, "keys": entry["keys"], "sha256": digest})
                if name != entry["file"]:
                    old.append(entry["file"])
            kill_point("after-eval-shards")
            self._write(EVALUATION_NAME, record)
            kill_point("after-eval-json")
            self._manifest = {**self._manifest, "shards": shards, "evaluation": {
                "columns": [list(column) for column in columns], "file": EVALUATION_NAME,
                "sha256": hashlib.sha256(record.encode("utf-8")).hexdigest()}}
            write_manifest(self.path, self._manifest)
            for file in old:
                if stat.S_ISREG(entry_mode(self.path / file) or 0):
                    (self.path / file).unlink()
        return stored

    def repair(self) -> RepairReport:
        """Drop damaged or unreadable shards, adopt finished unlisted ones (rebuilding a lost
        manifest from them), rewrite missing images and the pages. A rerun of the explain command
        then recomputes the dropped rows."""
        with _writing(self.path), folder_lock(self.path):
            check_layout(self.path)
            report = RepairReport()
            try:
                self._manifest = read_manifest(self.path)
                rebuilt = False
            except GalleryError as error:
                report.dropped.append(f"{MANIFEST_NAME}: {error}; rebuilt from the shards")
                self._manifest, rebuilt = {"format": FORMAT_VERSION, "shards": []}, True
            kept, seen = [], set()
            for entry in self._manifest["shards"]:
                try:
                    rows = self._load_shard(entry, images=True)
                    if seen & set(entry["keys"]):
                        raise GalleryError("its rows are already in another shard")
                except GalleryError as error:
                    report.dropped.append(f"{entry['file']}: {error}")
                    continue
                kept.append(entry)
                seen.update(entry["keys"])
                self._restore_images(rows)
            self._manifest = {**self._manifest, "shards": kept}
            try:
                self.evaluation()
            except GalleryError as error:
                report.dropped.append(f"{EVALUATION_NAME}: {error}")
                self._manifest["evaluation"] = {"columns": self._manifest["evaluation"]["columns"]}
            write_manifest(self.path, self._manifest)
            self._reconcile(report)
            if rebuilt:
                self._adopt_evaluation()
            report.rows = len(self)
            self.write_pages()
        return report

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the folder lock with the layout checked and the manifest re-read; failed writes
        become one GalleryError."""
        with _writing(self.path), folder_lock(self.path):
            check_layout(self.path)
            self._manifest = read_manifest(self.path)
            yield

    def _read(self, name: str, limit: int, what: str, fix: str | None) -> bytes:
        """The bytes of the gallery's own file ``name`` (see :func:`maco_hub.shards.read_file`)."""
        return read_file(gallery_path(self.path, name, links_within=self._links), limit, what, fix)

    def _write(self, name: str, data: bytes | str) -> None:
        """Write the gallery's own file ``name`` atomically, never through a link."""
        atomic_write(gallery_path(self.path, name), data)

    def _reconcile(self, report: RepairReport | None = None) -> RepairReport:
        """Under the lock: clean up what an interrupted maco_hub writer left (see module doc).
        Only regular files are removed or read; links and other entries are reported and kept."""
        report = report or RepairReport()
        listed = {shard["file"] for shard in self._manifest["shards"]}
        for file in _entries(self.path / DATA_DIR):
            relative = f"{DATA_DIR}/{file.name}"
            if relative in listed:
                continue
            if not _is_regular(file):
                report.left.append(relative)
            elif is_own_temp_file(file):
                file.unlink()
                report.removed.append(relative)
            elif is_own_shard(file):
                if self._adopt(file):
                    report.adopted.append(relative)
                else:
                    file.unlink()
                    report.removed.append(relative)
            else:
                report.left.append(relative)
        keys = self.keys
        for file in _entries(self.path / IMAGES_DIR):
            key = file.name.removesuffix(".png").removesuffix("-transparent")
            ours = is_row_key(key) and file.name in image_names(key)
            if _is_regular(file) and (is_own_temp_file(file) or (ours and key not in keys)):
                file.unlink()
                report.removed.append(f"{IMAGES_DIR}/{file.name}")
            elif not (ours and _is_regular(file)):
                report.left.append(f"{IMAGES_DIR}/{file.name}")
        for file in sorted(self.path.iterdir()):  # the folder itself may be a link the user named
            if is_own_temp_file(file) and _is_regular(file):
                file.unlink()
                report.removed.append(file.name)
            elif file.name not in _KNOWN_TOP or is_own_temp_file(file):
                report.left.append(file.name)
        report.rows = len(self)
        return report

    def _adopt(self, file: Path) -> bool:
        """List a finished shard of ours (its name is its hash) whose rows are all new; True if done."""
        data = read_regular(file, MAX_SHARD_BYTES)
        entry = {"file": f"{DATA_DIR}/{file.name}", "sha256": hashlib.sha256(data).hexdigest()}
        before = self._manifest
        if not before["shards"]:  # a rebuilt manifest: take the shard's evaluation columns
            columns = shard_eval_columns(data)
            self._manifest = {k: v for k, v in before.items() if k != "evaluation"}
            if columns:
                self._manifest["evaluation"] = {"columns": [list(column) for column in columns]}
        try:
            table = read_table(data, entry["file"], self.path, self._remedy, eval_columns(self._manifest),
                               images=False)
            entry["keys"] = table.column("key").to_pylist()
            self._load_shard(entry, images=False)
            if not entry["keys"] or set(entry["keys"]) & self.keys:
                raise GalleryError("no new rows")
            check_evaluation_entry(self._manifest)
        except GalleryError:
            self._manifest = before
            return False
        self._manifest = {**self._manifest, "shards": [*self._manifest["shards"], entry]}
        write_manifest(self.path, self._manifest)
        return True

    def _adopt_evaluation(self) -> None:
        """After rebuilding the manifest: list evaluation.json again if it matches the shards."""
        entry = self._manifest.get("evaluation")
        if not entry or entry_mode(self.path / EVALUATION_NAME) is None:
            return
        try:
            data = self._read(EVALUATION_NAME, MAX_EVALUATION_BYTES, EVALUATION_NAME, None)
            self._manifest["evaluation"] = {**entry, "file": EVALUATION_NAME,
                                            "sha256": hashlib.sha256(data).hexdigest()}
            self.evaluation()
        except GalleryError:
            self._manifest["evaluation"] = entry
            return
        write_manifest(self.path, self._manifest)

    def _restore_images(self, rows: Sequence[dict[str, Any]]) -> None:
        """Write the images of checked rows whose files are missing (a folder or link in their
        place is a GalleryError)."""
        for row in rows:
            names = [f"{IMAGES_DIR}/{name}" for name in image_names(row["key"])]
            if all(entry_mode(gallery_path(self.path, name)) is not None for name in names):
                continue
            item = visualization_from_row(row)
            self._write(names[0], png_bytes(item.image))
            self._write(names[1], png_bytes(item.with_transparency()))

    def _load_shard(self, entry: dict[str, Any], *, images: bool) -> list[dict[str, Any]]:
        """The rows of one listed shard, after checking its size, sha256, columns, keys, records
        and (``images``) its images, which become checked PIL images."""
        where = f"gallery shard {entry['file']!r} in {self.path}"
        file = gallery_path(self.path, entry["file"], links_within=self._links)
        try:
            info = os.lstat(file)  # a checked shard is not hashed again while its file stays the same
        except FileNotFoundError:
            raise GalleryError(f"The {where} is missing; {self._remedy}.") from None
        extra = eval_columns(self._manifest)
        seen = (entry["file"], entry["sha256"], info.st_ino, info.st_size, info.st_mtime_ns, tuple(extra))
        if not images and seen in self._checked:
            return self._checked[seen]
        data = read_file(file, MAX_SHARD_BYTES, f"The {where}", self._remedy)
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise GalleryError(f"The {where} does not match its sha256 in {MANIFEST_NAME} (replaced or "
                               f"damaged); {self._remedy}.")
        table = read_table(data, entry["file"], self.path, self._remedy, extra, rows=len(entry["keys"]),
                           images=images)
        rows = table.to_pylist()
        if [row["key"] for row in rows] != entry["keys"]:
            raise GalleryError(f"The {where} holds other rows than {MANIFEST_NAME} lists; {self._remedy}.")
        check_rows(rows, where, self._remedy)
        if not images:
            self._checked[seen] = rows
        return rows

    def _raw_rows(self, entry: dict[str, Any]) -> list[dict[str, Any]]:
        """A checked shard's rows as stored (image bytes, record as JSON text), without the
        evaluation columns."""
        self._load_shard(entry, images=False)
        data = self._read(entry["file"], MAX_SHARD_BYTES, f"Gallery shard {entry['file']!r} in {self.path}",
                          self._remedy)
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise GalleryError(f"Gallery shard {entry['file']!r} in {self.path} changed while it was read; "
                               "is another tool writing the folder?")
        extra = eval_columns(self._manifest)
        table = read_table(data, entry["file"], self.path, self._remedy, extra, rows=len(entry["keys"]))
        return table.drop_columns([name for name, _ in extra]).to_pylist()

    def _write_shard(self, data: bytes) -> tuple[str, str]:
        """Write shard bytes under a name from their sha256 (the current file if it is the same
        content); return the name and the sha256."""
        digest = hashlib.sha256(data).hexdigest()
        for name in shard_names(digest):
            path = self.path / name
            mode = entry_mode(path)
            if mode is None:
                self._write(name, data)
                return name, digest
            if stat.S_ISREG(mode) and _digest(path) == digest:
                return name, digest
        raise GalleryError(f"Every name of the shard {digest[:16]} in {self.path} is taken by another "
                           "file; run `maco-hub gallery repair`.")

    def _metadata_rows(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for shard in self._manifest["shards"]:
            rows.extend(self._load_shard(shard, images=False))
        return rows

    def _warn_mixed_settings(self, new: Iterable[Visualization]) -> None:
        """Log when rows of the same model, objective and seed get other steps/canvas/spectrum."""
        for shard in self._manifest["shards"]:
            if shard["file"] not in self._identities:
                self._identities[shard["file"]] = {_identity(r["record"]): _settings(r["record"])
                                                   for r in self._load_shard(shard, images=False)}
        existing: dict[str, tuple] = {}
        for identities in self._identities.values():
            existing.update(identities)
        for item in new:
            before = existing.get(_identity(item.record))
            if before is not None and before != _settings(item.record):
                logger.warning("%s (seed %s) is already in %s with other settings (steps, canvas, "
                               "spectrum: %s, now %s); both rows are kept, labelled by their settings.",
                               item.objective, item.seed, self.path, before, _settings(item.record))


def save_gallery(gallery: Iterable[Visualization], folder: str | os.PathLike, *,
                 title: str | None = None) -> Path:
    """Write (or extend) a gallery folder that ``datasets.load_dataset(folder)`` reads.

    Rows already in the folder are kept and not duplicated; concurrent writers are safe. The
    evaluation a :class:`Gallery` carries is stored too (see :func:`save_evaluation`).
    """
    store = GalleryFolder.open(folder)
    store.append(gallery)
    evaluation = getattr(gallery, "evaluation", None)
    if evaluation is not None:
        store.save_evaluation(evaluation)
    store.write_pages(title=title)
    return store.path


def save_evaluation(folder: str | os.PathLike, evaluation: Evaluation, *, title: str | None = None
                    ) -> Evaluation:
    """Store ``evaluation`` in the gallery folder (columns, evaluation.json, card and page) and
    return what is stored: its judges replace earlier results of the same names, and earlier
    judges measured with the same crops, seed and reference are kept."""
    store = GalleryFolder.open(folder, create=False)
    stored = store.save_evaluation(evaluation)
    store.write_pages(title=title)
    return stored


def repair_gallery(folder: str | os.PathLike) -> RepairReport:
    """Make a damaged gallery folder consistent again (see :meth:`GalleryFolder.repair`); a folder
    whose manifest.json was lost gets one rebuilt from its shards named by their hash."""
    path = Path(folder)
    if path.is_dir():
        check_layout(path)
    if entry_mode(path / MANIFEST_NAME) is None and not any(map(is_own_shard, _entries(path / DATA_DIR))):
        raise GalleryError(f"{str(path)!r} is not a maco_hub gallery (no {MANIFEST_NAME}, no shard of "
                           f"maco_hub in {DATA_DIR}/); pass a gallery folder to repair.")
    return GalleryFolder(path, {"format": FORMAT_VERSION, "shards": []},
                         remedy="it was dropped").repair()


def _chips(evaluation: Evaluation | None, key: str) -> list[dict[str, Any]] | None:
    """What a viewer tile shows of each judge's verdict on the row ``key`` (None: not evaluated)."""
    if evaluation is None or key not in evaluation.rows:
        return None
    values = evaluation.rows[key]
    return [{"judge": s["judge"], **{f: values.get(column_name(s["judge"], f)) for f in CHIP_FIELDS}}
            for s in evaluation.summary]


def _identity(record: dict[str, Any]) -> str:
    return canonical_json({k: record.get(k) for k in ("model_id", "model_revision", "objective_record",
                                                       "seed")})


def _settings(record: dict[str, Any]) -> tuple:
    config = record.get("config") or {}
    return (config.get("steps"), config.get("canvas"), (record.get("spectrum") or {}).get("sha256"))


def _refuse_foreign_folder(path: Path) -> None:
    if entry_mode(path / MANIFEST_NAME) is not None or not path.is_dir():
        return
    others = [p.name for p in path.iterdir() if p.name != LOCK_NAME and not is_own_temp_file(p)]
    if others:
        raise GalleryError(f"{str(path)!r} is a non-empty folder but not a maco_hub gallery (no "
                           f"{MANIFEST_NAME}; it holds {sorted(others)[:3]}); choose an empty or new "
                           "folder for --out.")


def _entries(folder: Path) -> list[Path]:
    """The entries of a real folder of the gallery, sorted (none if it is absent)."""
    return sorted(folder.iterdir()) if stat.S_ISDIR(entry_mode(folder) or 0) else []


def _is_regular(path: Path) -> bool:
    return stat.S_ISREG(entry_mode(path) or 0)


def _digest(path: Path) -> str | None:
    """sha256 of a regular file of at most MAX_SHARD_BYTES (None for anything else)."""
    try:
        return hashlib.sha256(read_regular(path, MAX_SHARD_BYTES)).hexdigest()
    except OSError:
        return None


_NO_SPACE = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}
_NOT_WRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM}


@contextmanager
def _writing(path: Path) -> Iterator[None]:
    """Turn a failed file operation on the gallery ``path`` (read-only folder, full disk, ...)
    into one GalleryError; atomic writes leave the gallery as it was before the failed batch."""
    try:
        yield
    except OSError as error:
        name = error.filename if isinstance(error.filename, str) else None
        if name is not None and Path(name).is_relative_to(path):
            name = Path(name).relative_to(path).as_posix()
        cause = f"{error.strerror or type(error).__name__}" + (f" ({name})" if name else "")
        if error.errno in _NO_SPACE:
            fix = ("free disk space (or raise the file size limit) and run the same command again: the "
                   "gallery keeps every row finished before the failure, and the rerun completes it")
        elif error.errno in _NOT_WRITABLE:
            fix = "it cannot be written here: choose a folder you can write to (e.g. --out DIR)"
        else:
            fix = "check the folder, then run the same command again"
        raise GalleryError(f"Could not update the gallery {str(path)!r}: {cause}; {fix}.") from None


def _log_report(report: RepairReport) -> None:
    if report.removed:
        logger.info("Removed %d file(s) an interrupted maco_hub run left unfinished: %s",
                    len(report.removed), ", ".join(report.removed[:5]))
    if report.adopted:
        logger.info("Added %d finished shard(s) an interrupted run had not listed yet: %s",
                    len(report.adopted), ", ".join(report.adopted))
    if report.left:
        logger.warning("Files maco_hub did not write are in the gallery folder (kept, not part of the "
                       "gallery; remove them if they are not yours): %s", ", ".join(report.left[:10]))
