"""The dataset card (README.md) of a gallery: YAML for the Hub, prose for people.

Cards are plain f-strings around escaped values; no template engine ever sees a label, caption,
title or id (a label such as ``{{ ... }}`` or ``<script>`` is shown as text). Control, bidi and
zero-width characters in them are shown as visible escapes (``\\u202e``, see :mod:`maco_hub._text`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

from .._text import markdown_text, visible
from .._version import __version__
from .evaluation import Evaluation, display_id
from .keys import is_row_key
from .record import RowRecord
from .rows import image_names, row_note

PREVIEW_ROWS = 12
TAGS = ["feature-visualization", "maco", "interpretability", "maco_hub"]
KIND_NAMES = {
    "class": ("class logit", "class logits"),
    "channel": ("channel", "channels"),
    "neuron": ("neuron", "neurons"),
    "layer": ("layer", "layers"),
    "direction": ("direction", "directions"),
    "text": ("text prompt", "text prompts"),
    "sum": ("sum of objectives", "sums of objectives"),
    "inversion": ("inversion", "inversions"),
}


def render_gallery_card(
    rows: Sequence[dict[str, Any]],
    *,
    shards: Sequence[str],
    features_yaml: list,
    title: str | None = None,
    repo_id: str | None = None,
    evaluation: Evaluation | None = None,
) -> str:
    """Card text for a gallery whose rows (metadata only) are ``rows``, stored in ``shards``, with
    a "Legibility" section when it carries a (checked) ``evaluation``.

    ``rows[i]["key"]`` must be a checked row key (it names the preview images). The shard files
    are listed one by one rather than by a glob: `datasets` keys its cache of a local folder on
    the configured patterns, so a glob would serve a stale copy after an append.
    """
    from huggingface_hub import DatasetCard, DatasetCardData

    models = sorted({_model_name(r) for r in rows})
    spectra = sorted({f"{r.get('spectrum_id')} (sha256 {str(r.get('spectrum_sha256'))[:12]}…)" for r in rows})
    model_ids = sorted({str(r.get("model_id")) for r in rows})
    title = " ".join((title or f"MACO feature visualizations of {', '.join(model_ids) or 'a model'}").split())
    data = DatasetCardData(
        license="other",
        pretty_name=visible(title),
        tags=TAGS,
        task_categories=["image-classification"],
        size_categories=[_size_category(len(rows))],
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": list(shards)}]}],
        dataset_info={"features": features_yaml},
    )
    source = json.dumps(repo_id or "PATH_OR_REPO_ID")
    body = f"""# {markdown_text(title)}

Feature visualizations made with [maco_hub](https://pypi.org/project/maco_hub/) {__version__} using
**MACO** (Fel et al., *Unlocking Feature Visualization for Deeper Networks with MAgnitude Constrained
Optimization*, NeurIPS 2023): only the Fourier phase of each image is optimized while its magnitude stays
fixed to the average magnitude of natural images. The `alpha` column is the attribution map (the sum of
|gradient| over the optimization), which the paper shows as transparency.

- Model(s): {", ".join(markdown_text(m) for m in models) or "—"}
- Spectrum: {", ".join(markdown_text(s) for s in spectra) or "—"}
- Rows: {len(rows)}{_kinds(rows)}
- Settings: {_settings(rows)}
{_methods(rows)}{_legibility(evaluation, rows)}
## Columns

`image` (RGB visualization), `alpha` (attribution, 8-bit), `objective` (caption), `kind`, `layer`, `unit`,
`class_id`, `label`, `score` (objective value on the whole image), `seed`, `steps`, `canvas`,
`spectrum_id`/`spectrum_revision`/`spectrum_sha256`, `model_id`/`model_revision`, `maco_hub_version`,
`config` (engine settings, JSON) and `record` (everything needed to make the row again, JSON).
An evaluated gallery also has the columns `eval_<judge>_<field>` (see Legibility).

## Preview

| image | transparent | objective | steps | canvas | score |
|---|---|---|---|---|---|
{_preview(rows)}

`index.html` in this repository is a browsable viewer (search, transparency toggle, records).

## Regenerate a row

```python
import maco_hub

gallery = maco_hub.load_gallery({source})
again = maco_hub.regenerate(gallery[0])  # same model revision, spectrum, seed and settings
```

The model's own licence and terms apply to these images.
"""
    return str(DatasetCard(f"---\n{data.to_yaml()}\n---\n{body}"))


def _legibility(evaluation: Evaluation | None, rows: Sequence[dict[str, Any]]) -> str:
    """The "Legibility" section: settings, the summary table and its notes, every value escaped."""
    if evaluation is None:
        return ""
    settings = evaluation.settings
    judges = ", ".join(
        markdown_text(
            f"{s['judge']}: {display_id(s['model_id'])}"
            + (f"@{s['model_revision']}" if s.get("model_revision") else "")
        )
        for s in evaluation.summary
    )
    low, high = settings.get("crop_side") or (0.25, 0.30)
    reference = settings.get("reference")
    header, lines = evaluation.table()
    table = [f"| {' | '.join(markdown_text(c) for c in header)} |", "|---|" + "---:|" * (len(header) - 1)]
    table += [f"| {' | '.join(markdown_text(c) for c in cells)} |" for cells in lines]
    evaluated = sum(1 for r in rows if r.get("key") in evaluation.rows)
    crops = (
        f"{markdown_text(settings.get('crops'))} per row, {low:.0%}–{high:.0%} of the canvas, seed "
        f"{markdown_text(settings.get('seed'))}"
    )
    reference = (
        markdown_text(reference) if reference else "none (plausibility and Fréchet distance not computed)"
    )
    rest = "" if evaluated == len(rows) else " (evaluate again to judge the rest)"
    return f"""
## Legibility

How well other networks recognize each class visualization, as a whole and zoomed in (the MACO
paper's transferability, plausibility and Fréchet distance; `maco-hub gallery evaluate`).

- Judges: {judges or "—"}
- Crops: {crops}
- Reference: {reference}
- Rows evaluated: {evaluated} of {len(rows)}{rest}

{chr(10).join(table)}

{" ".join(markdown_text(note) for note in evaluation.notes())} Per-row results are the columns
`eval_<judge>_<field>`; `evaluation.json` holds this summary and its settings.
"""


def _methods(rows: Sequence[dict[str, Any]]) -> str:
    """A "Methods" line for galleries with Fourier, accentuated, inverted or variant rows ('' otherwise)."""
    records = [r["record"] for r in rows if isinstance(r.get("record"), RowRecord)]
    methods = Counter(record.method for record in records)
    parts = [
        f"{markdown_text(method)}: {count} row{'s' * (count > 1)}"
        for method, count in sorted(methods.items())
    ]
    accentuated = sum(1 for record in records if record.accentuation)
    inverted = sum(1 for r in rows if r.get("kind") == "inversion")
    groups = Counter((record.diversity or {}).get("variants") for record in records if record.variant == 0)
    if methods.keys() <= {"maco"} and not (accentuated or inverted or groups):
        return ""
    if accentuated:
        parts.append(f"{accentuated} accentuated (started from an image, kept close to it)")
    if inverted:
        parts.append(f"{inverted} inversions of an image")
    for count, objectives in sorted(groups.items(), key=str):
        parts.append(
            f"{objectives} objective(s) × {count} variants (consecutive rows, optimized together with "
            "a diversity penalty; `variant v of N` after the objective)"
        )
    return (
        f"- Methods: {'; '.join(parts)}. The images rows were made from are stored once as "
        "`inputs/SHA.png` (SHA: the sha256 of their pixels, in each row's record).\n"
    )


def _kinds(rows: Sequence[dict[str, Any]]) -> str:
    counts = Counter(str(r.get("kind")) for r in rows)
    parts = []
    for kind, count in sorted(counts.items(), key=lambda kc: (-kc[1], kc[0])):
        singular, plural = KIND_NAMES.get(kind, (kind, kind))
        parts.append(f"{count} {markdown_text(singular if count == 1 else plural)}")
    return f" ({', '.join(parts)})" if parts else ""


def _settings(rows: Sequence[dict[str, Any]]) -> str:
    combos = Counter((r.get("steps"), r.get("canvas"), str(r.get("spectrum_sha256"))[:12]) for r in rows)
    if not combos:
        return "—"
    text = "; ".join(
        f"{steps} steps, canvas {canvas} px, spectrum {markdown_text(sha)}…"
        + (f" ({count} row{'s' if count > 1 else ''})" if len(combos) > 1 else "")
        for (steps, canvas, sha), count in sorted(combos.items(), key=str)
    )
    if len(combos) > 1:
        text += (
            " — rows of the same objective and seed made with other settings are separate rows, "
            "told apart by their `steps` and `canvas` columns"
        )
    return text


def _preview(rows: Sequence[dict[str, Any]]) -> str:
    lines = []
    for row in rows[:PREVIEW_ROWS]:
        images = (
            [f'<img src="images/{name}" width="128">' for name in image_names(row["key"])]
            if is_row_key(row.get("key"))
            else ["", ""]
        )
        cells = [
            *images,
            markdown_text((row.get("objective") or "") + _note(row)),
            _number(row.get("steps")),
            _number(row.get("canvas")),
            _score(row.get("score")),
        ]
        lines.append(f"| {' | '.join(cells)} |")
    return "\n".join(lines) or "| | | (empty) | | | |"


def _note(row: dict[str, Any]) -> str:
    note = row_note(row.get("record")) if isinstance(row.get("record"), RowRecord) else ""
    return f" [{note}]" if note else ""


def _number(value: Any) -> str:
    return str(value) if isinstance(value, int) else "—"


def _score(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "—"


def _model_name(row: dict[str, Any]) -> str:
    """``model_id@revision``, with what a converted model was made from (records say it)."""
    name = str(row.get("model_id")) + (f"@{row['model_revision']}" if row.get("model_revision") else "")
    record = row.get("record")
    source = record.model_source if isinstance(record, RowRecord) else None
    return f"{name} ({source})" if isinstance(source, str) and source else name


def _size_category(count: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")):
        if count < limit:
            return name
    return "100K<n<1M"
