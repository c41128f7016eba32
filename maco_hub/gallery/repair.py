"""How a gallery folder mends itself: what an interrupted writer left is cleaned up when a writer
opens the folder, and :meth:`FolderRepairs.repair` drops what is damaged (a rerun of the explain
command recomputes the dropped rows).

Only maco_hub's own leftovers are removed (its temporary files, shards named by the hash of their
content that no manifest lists, images and thumbnails of unlisted rows, input images no row names;
regular files only); anything else is reported and kept. A lost manifest is rebuilt from the shards
named by their hash. Rows whose input image (``inputs/SHA.png``) is missing or swapped cannot be
made again, so repair drops their shard like a damaged one.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._files import is_own_temp_file, read_regular
from ..errors import GalleryError
from .format import MAX_EVALUATION_BYTES, eval_columns, is_own_shard, read_table, shard_eval_columns
from .inputs import input_hash, read_inputs
from .keys import KEY_LENGTH, is_row_key
from .layout import (
    DATA_DIR,
    EVALUATION_NAME,
    FORMAT_VERSION,
    IMAGES_DIR,
    INPUTS_DIR,
    KNOWN_TOP,
    MANIFEST_NAME,
    MAX_SHARD_BYTES,
    THUMBS_DIR,
    check_layout,
    entries,
    entry_mode,
    gallery_path,
    is_regular,
    writing,
)
from .lock import folder_lock
from .manifest import check_evaluation_entry, read_manifest, write_manifest
from .row_checks import visualization_from_row
from .rows import image_names, png_bytes, thumbnail_names

logger = logging.getLogger(__name__)


@dataclass
class RepairReport:
    """What :func:`maco_hub.repair_gallery` (or opening a folder for writing) did."""

    rows: int = 0  # rows in the gallery afterwards
    dropped: list[str] = field(default_factory=list)  # manifest entries removed, with the reason
    adopted: list[str] = field(default_factory=list)  # finished shards of ours added to the manifest
    removed: list[str] = field(default_factory=list)  # files maco_hub left unfinished, deleted
    left: list[str] = field(default_factory=list)  # files maco_hub did not write: kept, to check


class FolderRepairs:
    """The repairs of :class:`~maco_hub.gallery.folder.GalleryFolder` (whose state they use)."""

    def repair(self) -> RepairReport:
        """Drop damaged or unreadable shards, adopt finished unlisted ones (rebuilding a lost
        manifest from them) and rewrite missing images (:func:`maco_hub.repair_gallery` then
        rewrites the pages). A rerun of the explain command then recomputes the dropped rows."""
        with writing(self.path), folder_lock(self.path):
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
                    for row in rows:
                        read_inputs(self.path, row["record"].image_hashes, self._inputs)
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
        return report

    def _reconcile(self, report: RepairReport | None = None) -> RepairReport:
        """Under the lock: clean up what an interrupted maco_hub writer left (see module doc).
        Only regular files are removed or read; links and other entries are reported and kept."""
        report = report or RepairReport()
        listed = {shard["file"] for shard in self._manifest["shards"]}
        for file in entries(self.path / DATA_DIR):
            relative = f"{DATA_DIR}/{file.name}"
            if relative in listed:
                continue
            if not is_regular(file):
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
        for folder, names in ((IMAGES_DIR, image_names), (THUMBS_DIR, thumbnail_names)):
            for file in entries(self.path / folder):
                key = file.name[:KEY_LENGTH]
                ours = is_row_key(key) and file.name in names(key)
                if is_regular(file) and (is_own_temp_file(file) or (ours and key not in keys)):
                    file.unlink()
                    report.removed.append(f"{folder}/{file.name}")
                elif not (ours and is_regular(file)):
                    report.left.append(f"{folder}/{file.name}")
        named = {sha for row in self.metadata_rows() for sha in row["record"].image_hashes}
        for file in entries(self.path / INPUTS_DIR):
            sha = input_hash(file)
            if is_regular(file) and (is_own_temp_file(file) or (sha is not None and sha not in named)):
                file.unlink()
                report.removed.append(f"{INPUTS_DIR}/{file.name}")
            elif sha is None or not is_regular(file):
                report.left.append(f"{INPUTS_DIR}/{file.name}")
        for file in sorted(self.path.iterdir()):  # the folder itself may be a link the user named
            if is_own_temp_file(file) and is_regular(file):
                file.unlink()
                report.removed.append(file.name)
            elif file.name not in KNOWN_TOP or is_own_temp_file(file):
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
            table = read_table(
                data, entry["file"], self.path, self._remedy, eval_columns(self._manifest), images=False
            )
            entry["keys"] = table.column("key").to_pylist()
            for row in self._load_shard(entry, images=False):
                read_inputs(self.path, row["record"].image_hashes, self._inputs)
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
            data = self.read_own(EVALUATION_NAME, MAX_EVALUATION_BYTES, EVALUATION_NAME, None)
            self._manifest["evaluation"] = {
                **entry,
                "file": EVALUATION_NAME,
                "sha256": hashlib.sha256(data).hexdigest(),
            }
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
            self.write_own(names[0], png_bytes(item.image))
            self.write_own(names[1], png_bytes(item.with_transparency()))


def log_report(report: RepairReport) -> None:
    if report.removed:
        logger.info(
            "Removed %d file(s) an interrupted maco_hub run left unfinished: %s",
            len(report.removed),
            ", ".join(report.removed[:5]),
        )
    if report.adopted:
        logger.info(
            "Added %d finished shard(s) an interrupted run had not listed yet: %s",
            len(report.adopted),
            ", ".join(report.adopted),
        )
    if report.left:
        logger.warning(
            "Files maco_hub did not write are in the gallery folder (kept, not part of the "
            "gallery; remove them if they are not yours): %s",
            ", ".join(report.left[:10]),
        )
