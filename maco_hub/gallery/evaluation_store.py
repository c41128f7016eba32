"""An evaluation as a gallery stores it: what is checked when ``evaluation.json`` is read back, and
what is checked and merged before one is stored.

An evaluation (:func:`maco_hub.legibility.evaluate`) is stored as columns ``eval_<judge>_<field>``
of every shard (None where a row was not judged) and as ``evaluation.json`` (summary and settings),
whose name and sha256 the manifest lists with the columns' dtypes. Storing one rewrites the shards
under the folder's lock (:meth:`maco_hub.gallery.folder.GalleryFolder.save_evaluation`): new shards
(new names and sha256, same rows, keys and images), then evaluation.json, then the manifest, then the
old shards are removed; an interruption leaves the previous gallery (a mismatching evaluation.json is
reported, and dropped by :func:`maco_hub.repair_gallery`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Set
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, GalleryError
from .evaluation import Evaluation
from .format import MAX_EVALUATION_BYTES, eval_columns, parse_json
from .keys import is_row_key
from .layout import EVALUATION_NAME, MANIFEST_NAME

logger = logging.getLogger(__name__)

FIX = "run `maco-hub gallery evaluate` again to replace it, or `maco-hub gallery repair` to drop it"


@dataclass(frozen=True)
class StoredEvaluation:
    """What storing an evaluation writes: the evaluation kept, its JSON text and its columns."""

    evaluation: Evaluation  # the new judges' results, with earlier judges kept where compatible
    text: str  # evaluation.json
    columns: list[tuple[str, str]]  # (eval_<judge>_<field>, dtype) of every shard

    def manifest_entry(self) -> dict[str, Any]:
        return {
            "columns": [list(column) for column in self.columns],
            "file": EVALUATION_NAME,
            "sha256": hashlib.sha256(self.text.encode("utf-8")).hexdigest(),
        }


def read_evaluation(data: bytes, manifest: dict[str, Any], folder: Path) -> Evaluation:
    """The evaluation whose ``evaluation.json`` bytes are ``data``, checked against the manifest:
    sha256, JSON limits, types, row keys and columns (GalleryError naming the fix)."""
    where = f"{EVALUATION_NAME} of the gallery {folder}"
    if hashlib.sha256(data).hexdigest() != manifest["evaluation"]["sha256"]:
        raise GalleryError(
            f"The {where} does not match its sha256 in {MANIFEST_NAME} (an interrupted "
            f"evaluation, or edited); {FIX}."
        )
    try:
        evaluation = Evaluation.from_record(
            parse_json(data.decode("utf-8"), f"the {where}", MAX_EVALUATION_BYTES)
        )
    except (UnicodeDecodeError, GalleryError) as error:
        raise GalleryError(f"The {where} is refused: {error}") from None
    bad = next((key for key in evaluation.rows if not is_row_key(key)), None)
    if bad is not None or evaluation.columns != [name for name, _ in eval_columns(manifest)]:
        raise GalleryError(
            f"The {where} has the row {bad!r} or other columns than {MANIFEST_NAME} lists; {FIX}."
        )
    return evaluation


def to_store(evaluation: Any, previous: Evaluation | None, keys: Set[str], folder: Path) -> StoredEvaluation:
    """What storing ``evaluation`` in a gallery whose rows are ``keys`` writes: its judges replace
    earlier results of the same names (``previous``); results of rows not in the gallery are left
    out. ConfigError for what a gallery cannot hold."""
    if not isinstance(evaluation, Evaluation):
        raise ConfigError(
            f"save_evaluation needs an Evaluation (from maco_hub.evaluate), not {type(evaluation).__name__}."
        )
    outside = set(evaluation.rows) - set(keys)
    if evaluation.rows and outside == set(evaluation.rows):
        raise ConfigError(
            f"None of the {len(outside)} evaluated rows is in the gallery {folder}; "
            "store an evaluation in the folder that holds its rows."
        )
    if outside:
        logger.warning(
            "%d evaluated row(s) are not in %s (other rows or keyless rows); their results are not stored.",
            len(outside),
            folder,
        )
    stored = evaluation.replacing(previous).restricted_to(keys)
    try:
        text = json.dumps(stored.to_record(), sort_keys=True, allow_nan=False)
    except ValueError:
        raise ConfigError(
            "The evaluation holds a NaN or infinite number, which JSON and a "
            "gallery cannot hold; evaluate again (a judge or a row gave "
            "non-finite outputs)."
        ) from None
    if len(text) > MAX_EVALUATION_BYTES:
        raise ConfigError(
            f"The evaluation is {len(text)} characters of JSON, over the limit of "
            f"{MAX_EVALUATION_BYTES}; evaluate fewer judges at once."
        )
    columns = stored.column_types()
    if len({name for name, _ in columns}) < len(columns):
        raise ConfigError(
            f"The judge names {[s['judge'] for s in stored.summary]} give two "
            "columns the same name; name the judges (a mapping name -> model)."
        )
    return StoredEvaluation(stored, text, columns)
