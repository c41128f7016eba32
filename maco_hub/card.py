"""The dataset card (README.md) of a gallery: YAML for the Hub and `datasets`, prose for people."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._version import __version__

PREVIEW_ROWS = 12
TAGS = ["feature-visualization", "maco", "interpretability", "maco_hub"]


def render_gallery_card(rows: Sequence[dict[str, Any]], *, shards: Sequence[str], features_yaml: list,
                        title: str | None = None, repo_id: str | None = None) -> str:
    """Card text for a gallery whose rows (metadata only) are ``rows``, stored in ``shards``.

    The shard files are listed one by one rather than by a glob: `datasets` keys its cache of a
    local folder on the configured patterns, so a glob would serve a stale copy after an append.
    """
    from huggingface_hub import DatasetCard, DatasetCardData

    models = sorted({f"{r.get('model_id')}" + (f"@{r['model_revision']}" if r.get("model_revision") else "")
                     for r in rows})
    spectra = sorted({f"{r.get('spectrum_id')} (sha256 {str(r.get('spectrum_sha256'))[:12]}…)" for r in rows})
    model_ids = sorted({str(r.get("model_id")) for r in rows})
    title = title or f"MACO feature visualizations of {', '.join(model_ids) or 'a model'}"
    data = DatasetCardData(
        license="other",
        pretty_name=title,
        tags=TAGS,
        task_categories=["image-classification"],
        size_categories=[_size_category(len(rows))],
        configs=[{"config_name": "default",
                  "data_files": [{"split": "train", "path": list(shards)}]}],
        dataset_info={"features": features_yaml},
    )
    source = repo_id or "PATH_OR_REPO_ID"
    body = f"""# {title}

Feature visualizations made with [maco_hub](https://pypi.org/project/maco_hub/) {__version__} using
**MACO** (Fel et al., *Unlocking Feature Visualization for Deeper Networks with MAgnitude Constrained
Optimization*, NeurIPS 2023): only the Fourier phase of each image is optimized while its magnitude stays
fixed to the average magnitude of natural images. The `alpha` column is the attribution map (the sum of
|gradient| over the optimization), which the paper shows as transparency.

- Model(s): {", ".join(f"`{m}`" for m in models) or "—"}
- Spectrum: {", ".join(spectra) or "—"}
- Rows: {len(rows)} (one per objective: a class logit, a channel, a neuron, a layer or a direction)

## Columns

`image` (RGB visualization), `alpha` (attribution, 8-bit), `objective` (caption), `kind`, `layer`, `unit`,
`class_id`, `label`, `score` (objective value on the whole image), `seed`, `steps`, `canvas`,
`spectrum_id`/`spectrum_revision`/`spectrum_sha256`, `model_id`/`model_revision`, `maco_hub_version`,
`config` (engine settings, JSON) and `record` (everything needed to make the row again, JSON).

## Preview

| image | transparent | objective | score |
|---|---|---|---|
{_preview(rows)}

`index.html` in this repository is a browsable viewer (search, transparency toggle, records).

## Regenerate a row

```python
import maco_hub

gallery = maco_hub.load_gallery("{source}")
again = maco_hub.regenerate(gallery[0])  # same model revision, spectrum, seed and settings
```

The model's own licence and terms apply to these images.
"""
    return str(DatasetCard.from_template(data, template_str="---\n{{ card_data }}\n---\n" + body))


def _preview(rows: Sequence[dict[str, Any]]) -> str:
    lines = []
    for row in rows[:PREVIEW_ROWS]:
        key = row["key"]
        caption = str(row.get("objective") or "").replace("|", "\\|")
        lines.append(f'| <img src="images/{key}.png" width="128"> | '
                     f'<img src="images/{key}-transparent.png" width="128"> | {caption} | '
                     f'{float(row.get("score") or 0):.3f} |')
    return "\n".join(lines) or "| | | (empty) | |"


def _size_category(count: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")):
        if count < limit:
            return name
    return "100K<n<1M"
