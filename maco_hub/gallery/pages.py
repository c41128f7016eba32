"""A gallery folder's pages: the dataset card (README.md) and the viewer (index.html, with its
thumbnails), both made from the shards' checked metadata and the stored evaluation; and
:class:`PageWriter`, which keeps them current during a run at a cost per batch that does not grow
with the gallery.

Thumbnails (``thumbs/KEY.jpg`` and ``thumbs/KEY-transparent.webp``, see
:mod:`~maco_hub.gallery.thumbnails`) are derived data: :func:`write_thumbnails` makes those that are
absent (or empty) from the shards' checked images whenever the pages are written, so an older
gallery gets them on its next page write, a deleted one comes back, and a run pays for its new rows
only. Being derived, they are written atomically but without waiting for the disk.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from .._files import kill_point
from .card import render_gallery_card
from .evaluation import Evaluation, artifact_column, artifact_text, column_name
from .folder import GalleryFolder
from .format import eval_columns, features_yaml
from .inputs import input_name
from .layout import CARD_NAME, IMAGES_DIR, INDEX_NAME, THUMBS_DIR
from .record import record_images
from .rows import Visualization, image_names, row_note, thumbnail_names
from .thumbnails import PAGE_SIDE, encoded, thumbnail
from .viewer import render_index_html

CHIP_FIELDS = ("status", "top1", "prob", "crops_top1")  # what a viewer tile shows per judge
PAGE_FIELDS = ("objective", "kind", "layer", "unit", "class_id", "label", "score", "seed", "steps", "canvas")


def write_pages(folder: GalleryFolder, *, title: str | None = None, repo_id: str | None = None) -> None:
    """(Re)write README.md (dataset card) and index.html (viewer) of ``folder``, under its lock,
    after making the thumbnails rows do not have yet."""
    with folder.locked():
        rows = folder.metadata_rows()
        evaluation = folder.evaluation()
        shards = [shard["file"] for shard in folder.manifest["shards"]]
        card = render_gallery_card(
            rows,
            shards=shards,
            features_yaml=features_yaml(eval_columns(folder.manifest)),
            title=title,
            repo_id=repo_id,
            evaluation=evaluation,
        )
        folder.write_own(CARD_NAME, card)
        kill_point("during-pages")
        thumbs = write_thumbnails(folder)
        page_rows = [_page_row(row, evaluation, row["key"] in thumbs) for row in rows]
        model_ids = ", ".join(sorted({str(r["model_id"]) for r in rows}))
        summary = None
        if evaluation is not None:
            header, lines = evaluation.table()
            summary = {"header": header, "rows": lines, "notes": evaluation.notes()}
        description = f"{len(rows)} feature visualizations made with maco_hub (MACO)."
        folder.write_own(
            INDEX_NAME,
            render_index_html(
                page_rows,
                title=title or f"MACO gallery: {model_ids}",
                description=description,
                summary=summary,
            ),
        )


def write_thumbnails(folder: GalleryFolder, *, side: int = PAGE_SIDE) -> set[str]:
    """Under the folder's lock: write the thumbnails of listed rows that have none (only shards
    holding such rows are read, with their images checked); return the keys whose thumbnails are
    both regular files. Something else in a thumbnail's place (a link, a folder) is left alone:
    that row has no thumbnail, and the next writer that opens the folder reports the entry."""
    present = _thumbnail_entries(folder)
    ready: set[str] = set()
    for entry in folder.manifest["shards"]:
        names = {key: thumbnail_names(key) for key in entry["keys"]}
        if any(name not in present for pair in names.values() for name in pair):
            for item in folder.shard_items(entry):
                pair = names[item.key]
                if any(name not in present for name in pair):
                    for name, data in zip(pair, _thumbnail_files(item, side), strict=True):
                        if name not in present:
                            folder.write_own(f"{THUMBS_DIR}/{name}", data, durable=False)
                            present[name] = True
        ready.update(key for key, pair in names.items() if all(present.get(name) for name in pair))
    return ready


def _thumbnail_files(item: Visualization, side: int) -> tuple[bytes, bytes]:
    """The files of a row's thumbnails (image, RGBA version), ``side`` px at most."""
    return encoded(thumbnail(item.image, side)), encoded(thumbnail(item.with_transparency(), side))


def _thumbnail_entries(folder: GalleryFolder) -> dict[str, bool]:
    """Name -> whether it is a regular file, for the entries of ``thumbs/`` (none if absent). An
    empty file is left out (made again): what a crash can leave of a file written without waiting
    for the disk."""
    try:
        with os.scandir(folder.path / THUMBS_DIR) as found:
            entries = {entry.name: entry for entry in found}
    except FileNotFoundError:
        return {}
    regular = {name: entry.is_file(follow_symlinks=False) for name, entry in entries.items()}
    return {
        name: is_file
        for name, is_file in regular.items()
        if not (is_file and entries[name].stat(follow_symlinks=False).st_size == 0)
    }


class PageWriter:
    """Writes a growing folder's pages during a run without making each batch cost more as the
    gallery grows: after a batch only when the time since the last write is at least
    ``1 / share - 1`` times what that write took (so writing pages takes at most about ``share`` of
    the run), and once more at the end if rows came since. A run whose batches take longer than
    that (any real model) gets its pages after every batch; thousands of quick rows, every few."""

    def __init__(
        self,
        folder: GalleryFolder,
        *,
        share: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        write: Callable[[GalleryFolder], None] | None = None,  # write_pages
    ) -> None:
        self._folder, self._share, self._clock = folder, share, clock
        self._write_pages = write or write_pages
        self._last: float | None = None  # when the last write ended (None: not written yet)
        self._cost = 0.0  # how long it took
        self._stale = True  # rows were appended since

    def batch_done(self) -> bool:
        """Call after each appended batch; whether the pages were written now."""
        self._stale = True
        if self._last is not None and self._clock() - self._last < self._cost * (1 / self._share - 1):
            return False
        self._write()
        return True

    def finish(self) -> bool:
        """Write the pages unless the last batch's write left them current; whether it wrote."""
        if not self._stale:
            return False
        self._write()
        return True

    def _write(self) -> None:
        start = self._clock()
        self._write_pages(self._folder)
        self._last = self._clock()
        self._cost, self._stale = self._last - start, False


def _page_row(row: dict[str, Any], evaluation: Evaluation | None, thumbs: bool) -> dict[str, Any]:
    image, transparent = image_names(row["key"])
    thumb, thumb_transparent = thumbnail_names(row["key"]) if thumbs else (None, None)
    return {
        "image": f"{IMAGES_DIR}/{image}",
        "transparent": f"{IMAGES_DIR}/{transparent}",
        "thumb": thumb and f"{THUMBS_DIR}/{thumb}",
        "thumb_transparent": thumb_transparent and f"{THUMBS_DIR}/{thumb_transparent}",
        **{name: row[name] for name in PAGE_FIELDS},
        **_input_fields(row["record"]),
        "record": row["record"].to_dict(),
        "evaluation": _chips(evaluation, row["key"]),
        "artifacts": _artifacts(evaluation, row["key"]),
    }


def _input_fields(record: Any) -> dict[str, Any]:
    """What a tile shows of the row's method, variant and the image it was made from."""
    fields: dict[str, Any] = {"method": record.method, "note": row_note(record) or None}
    if record.accentuation:
        fields.update(input=input_name(record.accentuation["image_sha256"]), input_role="start image")
    elif record_images(record.objective_record):
        sha = sorted(record_images(record.objective_record))[0]
        fields.update(input=input_name(sha), input_role="inverted image")
    return fields


def _chips(evaluation: Evaluation | None, key: str) -> list[dict[str, Any]] | None:
    """What a viewer tile shows of each judge's verdict on the row ``key`` (None: not evaluated)."""
    if evaluation is None or key not in evaluation.rows:
        return None
    values = evaluation.rows[key]
    return [
        {"judge": s["judge"], **{f: values.get(column_name(s["judge"], f)) for f in CHIP_FIELDS}}
        for s in evaluation.summary
    ]


def _artifacts(evaluation: Evaluation | None, key: str) -> str | None:
    """The artifact measures of the row ``key`` as a viewer tile shows them (None: not measured)."""
    if evaluation is None or key not in evaluation.rows:
        return None
    values = evaluation.rows[key]
    return artifact_text({m: values.get(artifact_column(m)) for m in evaluation.artifacts}) or None
