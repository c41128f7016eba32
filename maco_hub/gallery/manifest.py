"""A gallery's manifest: the finished shards in order, with their row keys and sha256, and the
stored evaluation's columns and file, every entry checked when it is read."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .._files import atomic_write
from .._text import short_repr
from ..errors import GalleryError
from .format import (
    COLUMNS,
    EVAL_COLUMN_RE,
    EVAL_DTYPES,
    MAX_EVAL_COLUMNS,
    MAX_MANIFEST_BYTES,
    SHARD_RE,
    parse_json,
)
from .keys import is_row_key
from .layout import EVALUATION_NAME, FORMAT_VERSION, MANIFEST_NAME, gallery_path, read_file

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def read_manifest(folder: Path, *, links_within: Path | None = None) -> dict[str, Any]:
    """The manifest, with every entry checked: a shard name of ours, well-formed keys and sha256."""
    path = gallery_path(folder, MANIFEST_NAME, links_within=links_within)
    fix = "it was written by another tool or version, or is damaged; run `maco-hub gallery repair`"
    try:
        data = read_file(path, MAX_MANIFEST_BYTES, "it")
        manifest = parse_json(data.decode("utf-8"), "the manifest", MAX_MANIFEST_BYTES)
        if (
            not isinstance(manifest, dict)
            or manifest.get("format") != FORMAT_VERSION
            or not isinstance(manifest.get("shards"), list)
        ):
            version = manifest.get("format") if isinstance(manifest, dict) else None
            raise GalleryError(f"unsupported format {short_repr(version)}")
        files: set[str] = set()
        keys: set[str] = set()
        for index, entry in enumerate(manifest["shards"]):
            if (
                not isinstance(entry, dict)
                or not isinstance(entry.get("file"), str)
                or not SHARD_RE.match(entry["file"])
            ):
                file = entry.get("file") if isinstance(entry, dict) else entry
                raise GalleryError(
                    f"shard entry {index} names {file!r}, not a file data/train-*.parquet inside the gallery"
                )
            if not isinstance(entry.get("sha256"), str) or not _SHA256_RE.match(entry["sha256"]):
                raise GalleryError(f"shard {entry['file']!r} has no valid sha256")
            if not isinstance(entry.get("keys"), list) or not all(is_row_key(k) for k in entry["keys"]):
                bad = next((k for k in entry.get("keys") or [None] if not is_row_key(k)), entry.get("keys"))
                raise GalleryError(
                    f"shard {entry['file']!r} lists the row key {short_repr(bad)}, not a "
                    "maco_hub row key (20 hex digits)"
                )
            if entry["file"] in files or keys & set(entry["keys"]):
                raise GalleryError(f"shard {entry['file']!r} or its rows are listed twice")
            files.add(entry["file"])
            keys.update(entry["keys"])
        check_evaluation_entry(manifest)
    except (UnicodeDecodeError, GalleryError) as error:
        raise GalleryError(
            f"Gallery manifest {str(folder / MANIFEST_NAME)!r} is unreadable or invalid ({error}); {fix}."
        ) from None
    return manifest


def check_evaluation_entry(manifest: dict[str, Any]) -> None:
    """The manifest's ``evaluation``: absent, or its columns with dtypes and evaluation.json's sha256."""
    entry = manifest.get("evaluation")
    if entry is None:
        return
    columns = entry.get("columns") if isinstance(entry, dict) else None
    if not isinstance(columns, list) or len(columns) > MAX_EVAL_COLUMNS:
        raise GalleryError(f"its evaluation entry lists no columns or more than {MAX_EVAL_COLUMNS}")
    names = {name for name, _ in COLUMNS}
    for column in columns:
        if not (
            isinstance(column, list)
            and len(column) == 2
            and isinstance(column[0], str)
            and EVAL_COLUMN_RE.match(column[0])
            and column[1] in EVAL_DTYPES
            and column[0] not in names
        ):
            raise GalleryError(
                f"its evaluation column {str(column)[:80]!r} is not [eval_NAME, dtype] with "
                f"a dtype among {EVAL_DTYPES}, or is listed twice"
            )
        names.add(column[0])
    if "file" in entry and (
        entry["file"] != EVALUATION_NAME
        or not isinstance(entry.get("sha256"), str)
        or not _SHA256_RE.match(entry["sha256"])
    ):
        raise GalleryError(
            f"its evaluation entry names {str(entry['file'])[:80]!r} or a sha256 that is not "
            f"{EVALUATION_NAME} with a valid sha256"
        )


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    atomic_write(gallery_path(folder, MANIFEST_NAME), json.dumps(manifest, indent=1))
