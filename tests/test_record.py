"""The typed row record: identity vs settings, batches stored once per shard, hostile records refused."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil

import pyarrow.parquet as pq
import pytest
from helpers import QUICK
from tiny_models import loaded

import maco_hub
from maco_hub.errors import GalleryError
from maco_hub.gallery.format import BATCHES_METADATA, parquet_bytes
from maco_hub.gallery.layout import MANIFEST_NAME
from maco_hub.gallery.record import EXECUTION_FIELDS, BatchMember, RowRecord, batch_id

CLASSES = [0, 1, 2, 3, 4]


@pytest.fixture(scope="module")
def folder(tmp_path_factory, tiny_zoo):
    out = tmp_path_factory.mktemp("record") / "g"
    maco_hub.explain(loaded("vit"), classes=CLASSES, batch_size=5, out=out, **QUICK)
    return out


def test_execution_settings_never_change_the_key(folder):
    record = maco_hub.load_gallery(folder)[0].record
    for name, value in (("threads", 1), ("compile", True), ("resample", "batched"), ("crops_per_forward", 2)):
        other = dataclasses.replace(
            record,
            config={**record.config, name: value},
            device="cuda",
            engine_settings={"threads": 7},
            stored_key=None,
        )
        assert other.identity_key == record.identity_key, name
        assert other.accepts_key(other.identity_key)
    assert set(EXECUTION_FIELDS) == {"threads", "compile", "resample", "crops_per_forward"}
    changed = dataclasses.replace(record, config={**record.config, "steps": 4}, stored_key=None)
    assert changed.identity_key != record.identity_key  # what shapes the picture does


def test_a_rows_size_does_not_grow_with_its_batch(tiny_zoo, tmp_path):
    sizes = {}
    for batch_size in (1, 5):
        out = tmp_path / f"b{batch_size}"
        gallery = maco_hub.explain(loaded("vit"), classes=CLASSES, batch_size=batch_size, out=out, **QUICK)
        sizes[batch_size] = (
            max(len(json.dumps(item.record.to_dict())) for item in gallery),
            (out / "index.html").stat().st_size,
        )
        assert all(len(item.record.batch) == batch_size for item in gallery)  # in memory, for regenerate
    record_1, page_1 = sizes[1]
    record_5, page_5 = sizes[5]
    assert abs(record_5 - record_1) < 40 and abs(page_5 - page_1) < 5 * 40


def test_rows_of_a_stored_batch_regenerate_from_the_shards_table(folder):
    gallery = maco_hub.load_gallery(folder)
    assert len({item.record.batch_id for item in gallery}) == 1
    again = maco_hub.regenerate(gallery[3], model=loaded("vit"))
    assert again.key == gallery[3].key and again.label == gallery[3].label


def _rewrite(folder, change_rows=None, change_batches=None):
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    entry = manifest["shards"][0]
    table = pq.read_table(folder / entry["file"])
    rows = table.to_pylist()
    batches = json.loads(table.schema.metadata[BATCHES_METADATA])
    rows[0]["_batches"] = json.dumps(next(iter(batches.values())))
    if change_rows:
        change_rows(rows)
    for row in rows:
        row.pop("_batches", None)
    if change_batches:
        change_batches(batches)
    data = parquet_bytes(rows, batches=batches)
    (folder / entry["file"]).write_bytes(data)
    entry["sha256"] = hashlib.sha256(data).hexdigest()  # as an attacker would
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))


def _record_field(name, value):
    def change(rows):
        record = json.loads(rows[0]["record"])
        record[name] = value
        rows[0]["record"] = json.dumps(record)

    return change


def _first_member_seed(batches):
    members = next(iter(batches.values()))
    members[0]["seed"] += 1


def _foreign_members(members):
    return [{**member, "seed": member["seed"] + 1} for member in members]


def _foreign_batch(batches):  # consistent: the id is the hash of members that do not hold the row
    (members,) = batches.values()
    foreign = _foreign_members(members)
    batches[batch_id([BatchMember(m["objective_record"], m["seed"]) for m in foreign])] = foreign


def _foreign_batch_id(rows):
    record = json.loads(rows[0]["record"])
    members = _foreign_members(json.loads(rows[0]["_batches"]))
    record["batch_id"] = batch_id([BatchMember(m["objective_record"], m["seed"]) for m in members])
    rows[0]["record"] = json.dumps(record)


def _unknown_batch(rows):
    _record_field("batch_id", "0" * 16)(rows)


HOSTILE = {
    "spectrum is a string": (dict(change_rows=_record_field("spectrum", "x")), "'spectrum' is 'x', not"),
    "config is a list": (dict(change_rows=_record_field("config", [1, 2])), "'config' is [1, 2], not"),
    "seed is a string": (dict(change_rows=_record_field("seed", "7")), "'seed' is '7', not an integer"),
    "steps is a string": (
        dict(change_rows=_record_field("config", {"steps": "3", "canvas": 48})),
        "'config.steps' is '3', not an integer",
    ),
    "model id is a number": (dict(change_rows=_record_field("model_id", 3)), "'model_id' is 3, not text"),
    "batch member edited": (dict(change_batches=_first_member_seed), "not the hash of its members"),
    "batch id unknown": (dict(change_rows=_unknown_batch), "'batch_id' is '0000"),
    "batch without the row": (
        dict(change_rows=_foreign_batch_id, change_batches=_foreign_batch),
        "names a batch it is not part of",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_records_and_batch_tables_are_one_clear_error(folder, tmp_path, case, maco_cli):
    copy = tmp_path / "g"
    shutil.copytree(folder, copy)
    changes, message = HOSTILE[case]
    _rewrite(copy, **changes)
    with pytest.raises(GalleryError, match=message.replace("[", r"\[").replace("(", r"\(")):
        maco_hub.load_gallery(copy)
    result = maco_cli("gallery", "show", str(copy))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    repaired = maco_cli("gallery", "repair", str(copy))
    assert repaired.returncode == 0 and len(maco_hub.load_gallery(copy)) == 0  # the shard is dropped


def test_a_record_from_untrusted_data_must_be_an_object():
    with pytest.raises(GalleryError, match="is a list"):
        RowRecord.from_dict([1, 2])
