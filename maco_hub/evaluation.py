"""The result of :func:`maco_hub.evaluate.evaluate`: per-row columns, a summary, a Markdown table.

Only the standard library is used here, so galleries, cards and viewers can read and show an
evaluation (``Evaluation.from_record(json.load(...))``) without loading torch.

Per judge ``<judge>``, every row gets the columns ``eval_<judge>_<field>`` for each field of
:data:`ROW_FIELDS` (None where it does not apply):

* ``top1``, ``top5`` (bool), ``prob`` (float): the whole canvas; ``crops_top1``, ``crops_top5``,
  ``crops_prob`` (float): means over the judged crops;
* ``plausibility``, ``crops_plausibility``, ``frechet`` (float): against the reference images of
  the row's class, when a reference was given;
* ``pred`` (str): the judge's top-1 label on the whole canvas; ``status`` (str): one of
  :data:`STATUSES`; ``reference_images`` (int): reference images of the row's class.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TRANSFER_METRICS = ("top1", "top5", "prob", "crops_top1", "crops_top5", "crops_prob")
FEATURE_METRICS = ("plausibility", "crops_plausibility", "frechet")
ROW_FIELDS = (*TRANSFER_METRICS, *FEATURE_METRICS, "pred", "status", "reference_images")
"""Per judge, each row gets the column ``eval_<judge>_<field>`` for each of these fields."""
STATUSES = {
    "ok": "judged",
    "not a class row": "the row's objective is not a class",
    "no label": "the row has no class name",
    "label not in judge": "the judge has no class of that name (or several)",
}


@dataclass(frozen=True)
class Evaluation:
    """Results of :func:`evaluate`, ready to become gallery columns, a card table and JSON."""

    rows: Mapping[str, Mapping[str, Any]]  # row key -> {"eval_<judge>_<field>": JSON value}
    summary: tuple[Mapping[str, Any], ...]  # one dict per judge: means and counts (see evaluate)
    settings: Mapping[str, Any] = field(default_factory=dict)  # crops, seed, reference, judges...

    @property
    def columns(self) -> list[str]:
        """The column names every row has, in a stable order (judge by judge)."""
        return [column_name(s["judge"], f) for s in self.summary for f in ROW_FIELDS]

    def to_markdown(self) -> str:
        """The summary as a Markdown table (one line per judge) with a sentence on the settings."""
        head = ("| judge | rows judged | top-1 | top-5 | p(class) | crops top-1 | crops top-5 "
                "| crops p(class) | plausibility | crops plausibility | Fréchet (per class) "
                "| Fréchet (pooled) |")
        lines = [head, "|---|" + "---:|" * 11]
        for s in self.summary:
            cells = [_fmt(s.get(k)) for k in (*TRANSFER_METRICS, "plausibility", "crops_plausibility")]
            cells += [_fmt(s.get("frechet"), 1), _fmt(s.get("frechet_pooled"), 1)]
            lines.append(f"| {s['judge']} (`{_display_id(s['model_id'])}`) | {s['judged']}/{s['rows']} | "
                         + " | ".join(cells) + " |")
        settings = self.settings
        low, high = settings.get("crop_side") or (0.25, 0.30)
        text = [
            "\n".join(lines), "",
            f"Each class row is shown to each judge whole and as {settings.get('crops')} random "
            f"square crops of {low:.0%}–{high:.0%} of the canvas (seed "
            f"{settings.get('seed')}), resized to the judge's input; top-1/top-5 are hit rates and "
            "p(class) the mean probability of the row's class.",
        ]
        if settings.get("reference"):
            text.append(f"Plausibility (median cosine similarity) and Fréchet distance are computed "
                        f"in each judge's penultimate features against {settings['reference']}.")
        skipped = Counter()
        for s in self.summary:
            skipped.update(s.get("not_judged", {}))
        if skipped:
            text.append("Not judged: " + ", ".join(f"{n} × {k}" for k, n in sorted(skipped.items())) + ".")
        return "\n".join(text) + "\n"

    def to_record(self) -> dict[str, Any]:
        """A JSON-able dict; :meth:`from_record` turns it back into an equal Evaluation."""
        return {"rows": {k: dict(v) for k, v in self.rows.items()},
                "summary": [dict(s) for s in self.summary], "settings": dict(self.settings)}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Evaluation:
        return cls(dict(record["rows"]), tuple(record["summary"]), dict(record.get("settings", {})))


def column_name(judge: str, field_name: str) -> str:
    """The gallery column of one judge's field: ``eval_<judge>_<field>``."""
    return f"eval_{judge}_{field_name}"


def _display_id(model_id: str) -> str:
    """A Hub id as is; a local folder by its name only (no machine paths in cards)."""
    return Path(model_id).name if Path(model_id).is_absolute() else model_id


def _fmt(value: Any, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"
