"""The result of :func:`maco_hub.legibility.evaluate`: per-row columns, a summary, a Markdown table.

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

Every row also gets the artifact measures of its picture (no judge needed), the columns
``eval_artifact_<measure>`` (float; None for pictures the measures do not take, under 64 px or over
4096 × 4096 px) for each measure of :attr:`Evaluation.artifacts`, defined in
:mod:`maco_hub.legibility.artifacts`. Evaluations stored before them have none (``artifacts == ()``).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._text import short_repr
from ..errors import GalleryError

TRANSFER_METRICS = ("top1", "top5", "prob", "crops_top1", "crops_top5", "crops_prob")
FEATURE_METRICS = ("plausibility", "crops_plausibility", "frechet")
ROW_FIELDS = (*TRANSFER_METRICS, *FEATURE_METRICS, "pred", "status", "reference_images")
"""Per judge, each row gets the column ``eval_<judge>_<field>`` for each of these fields."""
FIELD_DTYPES = {
    "top1": "bool",
    "top5": "bool",
    "pred": "string",
    "status": "string",
    "reference_images": "int64",
}
"""The ``datasets`` dtype of a row field that is not ``float64``."""
STATUSES = {
    "ok": "judged",
    "not a class row": "the row's objective is not a class",
    "no label": "the row has no class name",
    "label not in judge": "the judge has no class of that name (or several)",
}
ARTIFACT_RANGES = {  # artifact measure -> the range a stored value must lie in
    "grid_db": (-1000.0, 1000.0),
    "peak_db": (-1000.0, 1000.0),
    "haze": (0.0, 1.0),
    "rms_contrast": (0.0, 1.0),
    "border_excess": (-1.0, 1.0),
}
ARTIFACT_SUMMARY = (  # what a card, page or tile shows: (measure, name, unit, digits)
    ("grid_db", "grid", " dB", 1),
    ("haze", "haze", "", 2),
    ("rms_contrast", "contrast", "", 2),
)
JUDGE_RE = re.compile(r"^[0-9a-z_]{1,64}$")  # judge names as evaluate() makes them
MAX_JUDGES = 32
MAX_TEXT = 1000  # characters of a string value (a model id, a predicted label, ...)
_SETTINGS_SAME = ("crops", "crop_side", "crop_position", "seed", "reference")  # merge only if equal
_SUMMARY_NUMBERS = (*TRANSFER_METRICS, *FEATURE_METRICS, "frechet_pooled")
_SUMMARY_COUNTS = ("rows", "judged", "reference_classes", "reference_images")


@dataclass(frozen=True)
class Evaluation:
    """Results of :func:`evaluate`, ready to become gallery columns, a card table and JSON."""

    rows: Mapping[str, Mapping[str, Any]]  # row key -> {"eval_<judge>_<field>": JSON value}
    summary: tuple[Mapping[str, Any], ...]  # one dict per judge: means and counts (see evaluate)
    settings: Mapping[str, Any] = field(default_factory=dict)  # crops, seed, reference, judges...
    artifacts: tuple[str, ...] = ()  # the artifact measures every row has a column of (see above)

    @property
    def columns(self) -> list[str]:
        """The column names every row has, in a stable order (judge by judge)."""
        return [name for name, _ in self.column_types()]

    def column_types(self) -> list[tuple[str, str]]:
        """``(column, datasets dtype)`` of every column, judge by judge (see :data:`FIELD_DTYPES`)."""
        return [
            (column_name(s["judge"], f), FIELD_DTYPES.get(f, "float64"))
            for s in self.summary
            for f in ROW_FIELDS
        ] + [(artifact_column(m), "float64") for m in self.artifacts]

    def artifact_means(self) -> tuple[dict[str, float | None], int]:
        """The mean of each artifact measure over the rows that have it, and how many rows have one."""
        values = {m: [v.get(artifact_column(m)) for v in self.rows.values()] for m in self.artifacts}
        means = {m: _mean([x for x in numbers if x is not None]) for m, numbers in values.items()}
        measured = max((sum(x is not None for x in numbers) for numbers in values.values()), default=0)
        return means, measured

    def table(self) -> tuple[list[str], list[list[str]]]:
        """The summary as plain-text cells: a header and one line per judge (escape to render)."""
        header = [
            "judge",
            "rows judged",
            "top-1",
            "top-5",
            "p(class)",
            "crops top-1",
            "crops top-5",
            "crops p(class)",
            "plausibility",
            "crops plausibility",
            "Fréchet (per class)",
            "Fréchet (pooled)",
        ]
        lines = []
        for s in self.summary:
            cells = [_fmt(s.get(k)) for k in (*TRANSFER_METRICS, "plausibility", "crops_plausibility")]
            cells += [_fmt(s.get("frechet"), 1), _fmt(s.get("frechet_pooled"), 1)]
            lines.append(
                [f"{s['judge']} ({display_id(s['model_id'])})", f"{s['judged']}/{s['rows']}", *cells]
            )
        return header, lines

    def notes(self) -> list[str]:
        """Sentences (plain text) on how the table was measured and what was not judged."""
        settings = self.settings
        low, high = settings.get("crop_side") or (0.25, 0.30)
        text = [
            f"Each class row is shown to each judge whole and as {settings.get('crops')} random "
            f"square crops of {low:.0%}–{high:.0%} of the canvas (seed {settings.get('seed')}), "
            "resized to the judge's input; top-1/top-5 are hit rates and p(class) the mean "
            "probability of the row's class."
        ]
        if settings.get("reference"):
            text.append(
                f"Plausibility (median cosine similarity) and Fréchet distance are computed "
                f"in each judge's penultimate features against {settings['reference']}."
            )
        skipped: Counter[str] = Counter()
        for s in self.summary:
            skipped.update(s.get("not_judged", {}))
        if skipped:
            text.append("Not judged: " + ", ".join(f"{n} × {k}" for k, n in sorted(skipped.items())) + ".")
        return text + self._artifact_notes()

    def _artifact_notes(self) -> list[str]:
        means, measured = self.artifact_means()
        values = artifact_text(means)
        if not values:
            return []
        return [
            f"Artifact measures, mean over {measured} of {len(self.rows)} pictures: {values}. Grid is "
            "how much more the finest detail is horizontal/vertical than coarser detail (a pixel "
            "lattice; natural photos -0.6 to 1.3 dB), haze the dark channel (a veil; photos "
            "0.04–0.36, median 0.18), contrast the RMS contrast of the luminance (photos 0.12–0.32, "
            "median 0.24); columns eval_artifact_<measure>."
        ]

    def to_markdown(self) -> str:
        """The summary as a Markdown table (one line per judge) with sentences on the settings."""
        header, lines = self.table()
        table = [f"| {' | '.join(header)} |", "|---|" + "---:|" * (len(header) - 1)]
        table += [f"| {' | '.join(cells)} |" for cells in lines]
        return "\n".join(["\n".join(table), "", *self.notes()]) + "\n"

    def to_record(self) -> dict[str, Any]:
        """A JSON-able dict; :meth:`from_record` turns it back into an equal Evaluation."""
        record = {
            "rows": {k: dict(v) for k, v in self.rows.items()},
            "summary": [dict(s) for s in self.summary],
            "settings": dict(self.settings),
        }
        return {**record, "artifacts": list(self.artifacts)} if self.artifacts else record

    @classmethod
    def from_record(cls, record: Any) -> Evaluation:
        """Inverse of :meth:`to_record`, for untrusted data: every type, name and size is checked
        (GalleryError naming the problem); unknown keys of a summary are dropped."""
        if (
            not isinstance(record, Mapping)
            or not isinstance(record.get("rows"), Mapping)
            or not isinstance(record.get("summary"), list)
            or not isinstance(record.get("settings", {}), Mapping)
        ):
            _refuse("is not an object with 'rows' (object), 'summary' (list) and 'settings' (object)")
        summary = tuple(_checked_summary(i, s) for i, s in enumerate(record["summary"]))
        judges = [s["judge"] for s in summary]
        if len(judges) > MAX_JUDGES or len(set(judges)) != len(judges):
            _refuse(f"has {len(judges)} judges or a judge twice (at most {MAX_JUDGES}, each once)")
        evaluation = cls(
            {}, summary, _checked_settings(record.get("settings", {})), _checked_artifacts(record)
        )
        dtypes = dict(evaluation.column_types())
        ranges = {artifact_column(m): ARTIFACT_RANGES[m] for m in evaluation.artifacts}
        rows = {}
        for key, values in record["rows"].items():
            if not isinstance(key, str) or len(key) > 100 or not isinstance(values, Mapping):
                _refuse(f"has the row {short_repr(key)} that is not a key with an object of columns")
            for column, value in values.items():
                low, high = ranges.get(column, (None, None))
                if (
                    column not in dtypes
                    or not _has_dtype(value, dtypes[column])
                    or (low is not None and value is not None and not low <= value <= high)
                ):
                    _refuse(
                        f"gives row {short_repr(key)} the column {short_repr(column)} = "
                        f"{short_repr(value)}, not a column of its judges {judges} or artifact "
                        "measures with a value of its type and range (finite numbers only)"
                    )
            rows[key] = dict(values)
        return cls(rows, summary, evaluation.settings, evaluation.artifacts)

    def replacing(self, previous: Evaluation | None) -> Evaluation:
        """This evaluation merged over ``previous``: its judges replace theirs of the same name,
        other judges are kept when both were measured the same way (crops, seed, reference);
        otherwise ``previous`` is dropped entirely."""
        if previous is None or any(previous.settings.get(k) != self.settings.get(k) for k in _SETTINGS_SAME):
            return self
        mine = {s["judge"] for s in self.summary}
        kept = [s for s in previous.summary if s["judge"] not in mine]
        if not kept:
            return self
        artifacts = self.artifacts or previous.artifacts
        kept_columns = [column_name(s["judge"], f) for s in kept for f in ROW_FIELDS]
        kept_columns += [artifact_column(m) for m in artifacts]
        rows = {key: {c: values.get(c) for c in kept_columns} for key, values in previous.rows.items()}
        for key, values in self.rows.items():
            rows[key] = {**rows.get(key, dict.fromkeys(kept_columns)), **values}
        judges = {**(previous.settings.get("judges") or {}), **(self.settings.get("judges") or {})}
        return Evaluation(rows, (*kept, *self.summary), {**self.settings, "judges": judges}, artifacts)

    def restricted_to(self, keys: Iterable[str]) -> Evaluation:
        """The same evaluation with only the rows whose key is in ``keys``."""
        wanted = set(keys)
        rows = {k: v for k, v in self.rows.items() if k in wanted}
        return Evaluation(rows, self.summary, self.settings, self.artifacts)


def column_name(judge: str, field_name: str) -> str:
    """The gallery column of one judge's field: ``eval_<judge>_<field>``."""
    return f"eval_{judge}_{field_name}"


def artifact_column(measure: str) -> str:
    """The gallery column of one artifact measure: ``eval_artifact_<measure>`` (no judge field
    ends that way, so it never meets a judge's column)."""
    return f"eval_artifact_{measure}"


def artifact_text(values: Mapping[str, Any]) -> str:
    """``grid 6.8 dB, haze 0.33, contrast 0.11``: the measures of :data:`ARTIFACT_SUMMARY` that
    ``values`` (measure -> number or None) has, as plain text ("" for none)."""
    return ", ".join(
        f"{name} {values[m]:.{digits}f}{unit}"
        for m, name, unit, digits in ARTIFACT_SUMMARY
        if isinstance(values.get(m), (int, float)) and not isinstance(values.get(m), bool)
    )


def _checked_artifacts(record: Mapping[str, Any]) -> tuple[str, ...]:
    measures = record.get("artifacts", [])
    if (
        not isinstance(measures, list)
        or not all(isinstance(m, str) and m in ARTIFACT_RANGES for m in measures)
        or len(set(measures)) != len(measures)
    ):
        known = ", ".join(ARTIFACT_RANGES)
        _refuse(f"lists the artifact measures {short_repr(measures)}, not distinct names among {known}")
    return tuple(measures)


def _mean(numbers: list[float]) -> float | None:
    return math.fsum(numbers) / len(numbers) if numbers else None


def _refuse(why: str) -> None:
    raise GalleryError(
        f"The evaluation record {why}; it was not written by maco_hub or is damaged. "
        "Run `maco-hub gallery evaluate` again to replace it."
    )


def _has_dtype(value: Any, dtype: str) -> bool:
    if value is None:
        return True
    if dtype == "bool":
        return isinstance(value, bool)
    if dtype == "string":
        return isinstance(value, str) and len(value) <= MAX_TEXT
    if dtype == "int64":
        return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**63
    if isinstance(value, float):
        return math.isfinite(value)  # JSON has no NaN or Infinity; evaluate() never writes them
    return _has_dtype(value, "int64")


def _checked_summary(index: int, entry: Any) -> dict[str, Any]:
    if (
        not isinstance(entry, Mapping)
        or not isinstance(entry.get("judge"), str)
        or not JUDGE_RE.match(entry["judge"])
    ):
        judge = entry.get("judge") if isinstance(entry, Mapping) else entry
        _refuse(f"names judge {index} {short_repr(judge)}, not a name of 1-64 characters 0-9, a-z or _")
    checks = {
        "model_id": lambda v: isinstance(v, str) and 0 < len(v) <= MAX_TEXT,
        "model_revision": lambda v: v is None or (isinstance(v, str) and len(v) <= MAX_TEXT),
        "not_judged": lambda v: (
            isinstance(v, Mapping)
            and len(v) <= len(STATUSES)
            and all(isinstance(k, str) and len(k) <= 100 and _has_dtype(n, "int64") for k, n in v.items())
        ),
        **dict.fromkeys(_SUMMARY_COUNTS, lambda v: _has_dtype(v, "int64") and v is not None),
        **dict.fromkeys(_SUMMARY_NUMBERS, lambda v: _has_dtype(v, "float64")),
    }
    defaults = {"not_judged": {}, **dict.fromkeys(_SUMMARY_COUNTS, 0)}
    clean = {"judge": entry["judge"]}
    for key, check in checks.items():
        value = entry.get(key, defaults.get(key))
        if not check(value):
            _refuse(f"gives judge {entry['judge']!r} the {key} {short_repr(value)}, not a value of its type")
        clean[key] = dict(value) if key == "not_judged" else value
    return clean


def _checked_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    side = settings.get("crop_side", [0.25, 0.30])
    numbers = all(
        settings.get(k) is not None and _has_dtype(settings.get(k), "int64") for k in ("crops", "seed")
    )
    fractions = (
        isinstance(side, list)
        and len(side) == 2
        and all(x is not None and _has_dtype(x, "float64") and 0 <= x <= 1 for x in side)
    )
    reference = settings.get("reference") is None or _has_dtype(settings["reference"], "string")
    if not (numbers and fractions and reference and isinstance(settings.get("judges", {}), Mapping)):
        _refuse(
            "has settings of other types than crops (int), seed (int), crop_side (two fractions), "
            "reference (text) and judges (object)"
        )
    return dict(settings)


def display_id(model_id: str) -> str:
    """A Hub id as is; a local folder by its name only (no machine paths in cards)."""
    return Path(model_id).name if Path(model_id).is_absolute() else model_id


def _fmt(value: Any, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"
