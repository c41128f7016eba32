"""A gallery folder's pages: the dataset card (README.md) and the viewer (index.html), both made
from the shards' checked metadata and the stored evaluation."""

from __future__ import annotations

from typing import Any

from .._files import kill_point
from .card import render_gallery_card
from .evaluation import Evaluation, column_name
from .folder import GalleryFolder
from .format import eval_columns, features_yaml
from .inputs import input_name
from .layout import CARD_NAME, IMAGES_DIR, INDEX_NAME
from .record import record_images
from .rows import image_names, row_note
from .viewer import render_index_html

CHIP_FIELDS = ("status", "top1", "prob", "crops_top1")  # what a viewer tile shows per judge
PAGE_FIELDS = ("objective", "kind", "layer", "unit", "class_id", "label", "score", "seed", "steps", "canvas")


def write_pages(folder: GalleryFolder, *, title: str | None = None, repo_id: str | None = None) -> None:
    """(Re)write README.md (dataset card) and index.html (viewer) of ``folder``, under its lock."""
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
        page_rows = [_page_row(row, evaluation) for row in rows]
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


def _page_row(row: dict[str, Any], evaluation: Evaluation | None) -> dict[str, Any]:
    image, transparent = image_names(row["key"])
    return {
        "image": f"{IMAGES_DIR}/{image}",
        "transparent": f"{IMAGES_DIR}/{transparent}",
        **{name: row[name] for name in PAGE_FIELDS},
        **_input_fields(row["record"]),
        "record": row["record"].to_dict(),
        "evaluation": _chips(evaluation, row["key"]),
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
