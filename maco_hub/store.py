"""A gallery on disk: parquet shards the Hub viewer and ``datasets`` read, plus PNGs and a page.

Layout of a gallery folder::

    README.md                dataset card (YAML header tells `datasets` where the data is)
    index.html               static viewer (search, transparency toggle, records)
    manifest.json            the finished shards, in order, with their row keys
    data/train-NNNNN.parquet one shard per finished batch: `image`/`alpha` columns + metadata
    images/KEY.png           the image, and KEY-transparent.png with attribution as alpha, for the page

Every write is atomic (temporary file + rename) and the manifest is written last, so a run killed
at any moment leaves a readable gallery; :meth:`GalleryFolder.open` removes shards the manifest
does not list (a batch that was being written) before anything new is added.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from ._files import atomic_write
from .errors import ConfigError
from .gallery import Gallery, Visualization, png_bytes

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
DATA_DIR = "data"
IMAGES_DIR = "images"

STRING_COLUMNS = ("model_id", "model_revision", "objective", "kind", "layer", "label", "spectrum_id",
                  "spectrum_revision", "spectrum_sha256", "maco_hub_version", "config", "record", "key")
INT_COLUMNS = ("unit", "class_id", "seed", "steps", "canvas")


class GalleryFolder:
    """A gallery folder being read or extended (see the module docstring for its layout)."""

    def __init__(self, path: str | os.PathLike, manifest: dict[str, Any]):
        self.path = Path(path)
        self._manifest = manifest

    @classmethod
    def open(cls, path: str | os.PathLike, *, create: bool = True) -> GalleryFolder:
        """Open a gallery folder (created if missing and ``create``); drop unfinished shards."""
        path = Path(path)
        manifest_path = path / MANIFEST_NAME
        if manifest_path.is_file():
            manifest = _read_manifest(manifest_path)
        elif not create:
            raise ConfigError(f"{str(path)!r} is not a maco_hub gallery (no {MANIFEST_NAME}); pass a "
                              "folder written by Gallery.save / `maco-hub explain --out`.")
        elif path.exists() and any(path.iterdir()):
            raise ConfigError(f"{str(path)!r} is a non-empty folder but not a maco_hub gallery (no "
                              f"{MANIFEST_NAME}); choose an empty or new folder for --out.")
        else:
            manifest = {"format": FORMAT_VERSION, "shards": []}
        folder = cls(path, manifest)
        if create:
            folder._remove_unlisted_shards()
        return folder

    @property
    def keys(self) -> set[str]:
        """Row keys already in the gallery."""
        return {key for shard in self._manifest["shards"] for key in shard["keys"]}

    def __len__(self) -> int:
        return sum(len(shard["keys"]) for shard in self._manifest["shards"])

    def append(self, items: Sequence[Visualization]) -> None:
        """Add one shard holding ``items`` (rows whose key is already present are skipped)."""
        known = self.keys
        new = [item for item in items if row_key_of(item) not in known]
        if not new:
            return
        rows = [row_of(item) for item in new]
        images = self.path / IMAGES_DIR
        for item, row in zip(new, rows, strict=True):
            atomic_write(images / f"{row['key']}.png", row["image"]["bytes"])
            atomic_write(images / f"{row['key']}-transparent.png", png_bytes(item.with_transparency()))
        name = f"{DATA_DIR}/train-{len(self._manifest['shards']):05d}.parquet"
        data = _parquet_bytes(rows)
        atomic_write(self.path / name, data)
        shard = {"file": name, "keys": [row["key"] for row in rows],
                 "sha256": hashlib.sha256(data).hexdigest()}
        manifest = {**self._manifest, "shards": [*self._manifest["shards"], shard]}
        atomic_write(self.path / MANIFEST_NAME, json.dumps(manifest, indent=1).encode())
        self._manifest = manifest

    def write_pages(self, *, title: str | None = None, repo_id: str | None = None) -> None:
        """(Re)write README.md (dataset card) and index.html (viewer) from the shards' metadata."""
        from .card import render_gallery_card
        from .viewer import write_index_html

        rows = self._metadata_rows()
        feats = features()
        card = render_gallery_card(rows, shards=[shard["file"] for shard in self._manifest["shards"]],
                                   features_yaml=feats._to_yaml_list(), title=title, repo_id=repo_id)
        atomic_write(self.path / "README.md", card.encode())
        page_rows = [{"image": f"{IMAGES_DIR}/{r['key']}.png",
                      "transparent": f"{IMAGES_DIR}/{r['key']}-transparent.png",
                      **{k: r[k] for k in ("objective", "kind", "layer", "unit", "class_id", "label",
                                           "score", "seed")},
                      "record": json.loads(r["record"])} for r in rows]
        model_ids = ", ".join(sorted({str(r["model_id"]) for r in rows}))
        write_index_html(self.path, page_rows, title=title or f"MACO gallery: {model_ids}",
                         description=f"{len(rows)} feature visualizations made with maco_hub (MACO).")

    def _metadata_rows(self) -> list[dict[str, Any]]:
        import pyarrow.parquet as pq

        names = [name for name in features() if name not in ("image", "alpha")]
        rows: list[dict[str, Any]] = []
        for shard in self._manifest["shards"]:
            rows.extend(pq.read_table(self.path / shard["file"], columns=names).to_pylist())
        return rows

    def read(self) -> Gallery:
        """Every row, in the order they were added."""
        import pyarrow.parquet as pq

        items: list[Visualization] = []
        for shard in self._manifest["shards"]:
            file = self.path / shard["file"]
            if not file.is_file():
                raise ConfigError(f"Gallery shard {str(file)!r} listed in {MANIFEST_NAME} is missing; "
                                  "restore it or re-run the explain command to rebuild the gallery.")
            for row in pq.read_table(file).to_pylist():
                items.append(visualization_from_row(row))
        return Gallery(tuple(items))

    def _remove_unlisted_shards(self) -> None:
        listed = {shard["file"] for shard in self._manifest["shards"]}
        for file in (self.path / DATA_DIR).glob("*.parquet") if (self.path / DATA_DIR).is_dir() else ():
            if f"{DATA_DIR}/{file.name}" not in listed:
                file.unlink()
        for tmp in self.path.rglob(".*.tmp"):
            tmp.unlink(missing_ok=True)


def row_key_of(item: Visualization) -> str:
    from .records import row_key

    return item.record.get("key") or row_key(item.record)


def row_of(item: Visualization) -> dict[str, Any]:
    """The dataset row of one visualization (``image``/``alpha`` as PNG bytes)."""
    record = item.record
    spectrum = record.get("spectrum") or {}
    config = record.get("config") or {}
    return {
        "image": {"bytes": png_bytes(item.image), "path": None},
        "alpha": {"bytes": png_bytes(item.alpha), "path": None},
        "model_id": record.get("model_id"),
        "model_revision": record.get("model_revision"),
        "objective": item.objective,
        "kind": item.kind,
        "layer": item.layer,
        "unit": item.unit,
        "class_id": item.class_id,
        "label": item.label,
        "score": float(item.score),
        "seed": record.get("seed"),
        "steps": config.get("steps"),
        "canvas": config.get("canvas"),
        "spectrum_id": spectrum.get("id"),
        "spectrum_revision": spectrum.get("revision"),
        "spectrum_sha256": spectrum.get("sha256"),
        "maco_hub_version": record.get("maco_hub_version"),
        "config": json.dumps(config, sort_keys=True),
        "record": json.dumps(record, sort_keys=True),
        "key": row_key_of(item),
    }


def visualization_from_row(row: dict[str, Any]) -> Visualization:
    """Inverse of :func:`row_of` (accepts PIL images or ``{"bytes": ...}`` for the image columns)."""
    return Visualization(
        image=_image(row["image"]).convert("RGB"),
        alpha=_image(row["alpha"]).convert("L"),
        score=float(row["score"]),
        objective=row["objective"],
        kind=row["kind"],
        layer=row.get("layer"),
        unit=row.get("unit"),
        class_id=row.get("class_id"),
        label=row.get("label"),
        record=json.loads(row["record"]),
    )


def features():
    """The ``datasets.Features`` of a gallery shard."""
    from datasets import Features, Value
    from datasets import Image as ImageFeature

    columns = {"image": ImageFeature(), "alpha": ImageFeature(), "score": Value("float64")}
    columns.update({name: Value("string") for name in STRING_COLUMNS})
    columns.update({name: Value("int64") for name in INT_COLUMNS})
    order = ["image", "alpha", "model_id", "model_revision", "objective", "kind", "layer", "unit",
             "class_id", "label", "score", "seed", "steps", "canvas", "spectrum_id", "spectrum_revision",
             "spectrum_sha256", "maco_hub_version", "config", "record", "key"]
    return Features({name: columns[name] for name in order})


def _parquet_bytes(rows: Sequence[dict[str, Any]]) -> bytes:
    """One parquet file of ``rows`` whose schema carries the ``datasets`` features (Image columns)."""
    import pyarrow.parquet as pq
    from datasets import Dataset

    table = Dataset.from_list(list(rows), features=features()).data.table
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_text())
        if manifest.get("format") != FORMAT_VERSION or not isinstance(manifest.get("shards"), list):
            raise ValueError(f"unsupported format {manifest.get('format')!r}")
    except (OSError, ValueError) as error:
        raise ConfigError(f"Gallery manifest {str(path)!r} is unreadable ({error}); it was written by "
                          "another tool or version, or is damaged.") from error
    return manifest


def _image(value: Any) -> Image.Image:
    if isinstance(value, Image.Image):
        return value
    return Image.open(io.BytesIO(value["bytes"]))


