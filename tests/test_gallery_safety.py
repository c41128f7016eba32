"""Trustworthy galleries: hostile content stays data; a crash or a second writer loses nothing.

Attacks are made as an attacker would: through a model's own config.json and through gallery
folders whose manifest and shards are rewritten consistently (sha256 updated), then met through
the command line a user would run.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
from helpers import subprocess_cli
from huggingface_hub import DatasetCard

import maco_hub
from maco_hub._files import KILL_ENV
from maco_hub.errors import GalleryError
from maco_hub.gallery.folder import GalleryFolder
from maco_hub.gallery.format import BATCHES_METADATA, parquet_bytes
from maco_hub.gallery.layout import MANIFEST_NAME
from maco_hub.gallery.lock import folder_lock

CLI_QUICK = ["--steps", "2", "--canvas", "32", "--quiet"]
JINJA = '{{ lipsum.__globals__["os"].system("touch PWNED") }}'
EVIL_LABELS = [JINJA, "set {#1", "<script>alert(1)</script>", "two\nlines | and a pipe", "{% raw %}x", "ok"]


def run_cli(
    *args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    return subprocess_cli(*args, timeout=timeout, cwd=cwd, env={"OMP_NUM_THREADS": "1", **(env or {})})


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def evil_model(tiny_zoo, tmp_path_factory) -> Path:
    """The tiny ViT classifier whose config.json labels are hostile (no remote code involved)."""
    folder = tmp_path_factory.mktemp("evil") / "vit"
    shutil.copytree(tiny_zoo["vit"].path, folder)
    config = json.loads((folder / "config.json").read_text())
    config["id2label"] = {str(i): label for i, label in enumerate(EVIL_LABELS)}
    config["label2id"] = {label: i for i, label in enumerate(EVIL_LABELS)}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_hostile_labels_stay_text(evil_model, tmp_path):
    out = tmp_path / "g"
    result = run_cli(
        "explain",
        str(evil_model),
        "--classes",
        "0",
        "1",
        "2",
        "3",
        "4",
        "--out",
        str(out),
        *CLI_QUICK,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert not list(tmp_path.rglob("PWNED")) and not Path("PWNED").exists()
    card_text = (out / "README.md").read_text()
    card = DatasetCard.load(out / "README.md")  # the front matter parses
    assert card.data.pretty_name.startswith("MACO feature visualizations")
    assert "<script>" not in card_text and "&lt;script&gt;alert(1)&lt;/script&gt;" in card_text
    assert 'lipsum.\\_\\_globals\\_\\_\\["os"\\].system("touch PWNED")' in card_text
    assert "set {\\#1" in card_text and "{% raw %}x" in card_text
    preview = [line for line in card_text.splitlines() if line.startswith("| <img")]
    assert len(preview) == 5  # the label with a newline and a pipe stays one table row
    assert any("two\\\\nlines \\| and a pipe" in line for line in preview)  # the caption shows repr()
    page = (out / "index.html").read_text()
    assert "<script>alert" not in page and "\\u003cscript\\u003ealert(1)" in page
    labels = sorted(item.label for item in maco_hub.load_gallery(out))
    assert labels == sorted(EVIL_LABELS[:5])
    # re-rendering and saving elsewhere evaluate nothing either
    assert run_cli("gallery", "html", str(out), cwd=tmp_path).returncode == 0
    maco_hub.save_gallery(maco_hub.load_gallery(out), tmp_path / "copy", title=JINJA + " <b>t</b>")
    copy_card = (tmp_path / "copy" / "README.md").read_text()
    assert DatasetCard.load(tmp_path / "copy" / "README.md").data.pretty_name == JINJA + " <b>t</b>"
    assert "<b>" not in copy_card.split("---", 2)[2]
    assert not list(tmp_path.rglob("PWNED"))


def _rewrite_shard(folder: Path, index: int, change) -> str:
    """Rewrite shard ``index`` with ``change(rows) -> rows`` and update the manifest consistently."""
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    entry = manifest["shards"][index]
    table = pq.read_table(folder / entry["file"])
    rows = change(table.to_pylist())
    batches = json.loads((table.schema.metadata or {}).get(BATCHES_METADATA, b"{}"))
    data = parquet_bytes(rows, batches=batches) if isinstance(rows, list) else rows
    (folder / entry["file"]).write_bytes(data)
    import hashlib

    entry["sha256"] = hashlib.sha256(data).hexdigest()
    if isinstance(rows, list) and rows and "key" in rows[0]:
        entry["keys"] = [row["key"] for row in rows]
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))
    return entry["file"]


def _with_key(key):
    def change(rows):
        rows[0]["key"] = key
        record = json.loads(rows[0]["record"])
        rows[0]["record"] = json.dumps({**record, "key": key})
        return rows

    return change


def _nested(rows):
    rows[0]["record"] = "[" * 100_000 + "]" * 100_000
    return rows


def _huge(rows):
    rows[0]["record"] = json.dumps({"x": "a" * 3_000_000})
    return rows


def _truncated(rows):
    return parquet_bytes(rows)[:-200]


def _other_columns(rows):
    import pyarrow as pa

    table = pa.Table.from_pylist([{"key": row["key"], "label": "x", "evil": 1} for row in rows])
    import io

    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def _manifest_file(name):
    def craft(folder: Path, outside: Path) -> None:
        manifest = json.loads((folder / MANIFEST_NAME).read_text())
        shutil.copyfile(folder / manifest["shards"][0]["file"], outside / "outside.parquet")
        manifest["shards"][0]["file"] = name.replace("OUTSIDE", str(outside))
        (folder / MANIFEST_NAME).write_text(json.dumps(manifest))

    return craft


ATTACKS = {
    "row key ../../x": (lambda f, o: _rewrite_shard(f, 0, _with_key("../../x")), "'../../x'"),
    "row key /abs/x": (lambda f, o: _rewrite_shard(f, 0, _with_key(str(o / "x"))), "not a maco_hub row key"),
    "manifest ../outside.parquet": (_manifest_file("../outside.parquet"), "'../outside.parquet'"),
    "manifest absolute path": (_manifest_file("OUTSIDE/outside.parquet"), "outside.parquet"),
    "record nested 100k deep": (lambda f, o: _rewrite_shard(f, 0, _nested), "nested more than"),
    "record of 3 MB": (lambda f, o: _rewrite_shard(f, 0, _huge), "characters long"),
    "truncated shard": (lambda f, o: _rewrite_shard(f, 0, _truncated), "not a readable parquet"),
    "shard with other columns": (lambda f, o: _rewrite_shard(f, 0, _other_columns), "other columns"),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_crafted_galleries_are_refused_with_one_line(three_row_gallery, tmp_path, attack):
    craft, named = ATTACKS[attack]
    root = tmp_path / "root"
    folder = root / "deep" / "gallery"
    outside = root / "outside"
    outside.mkdir(parents=True)
    shutil.copytree(three_row_gallery, folder)
    craft(folder, outside)
    before = files_under(root)
    before.pop("deep/gallery/.maco_hub.lock", None)
    with pytest.raises(GalleryError, match=named.replace("[", r"\[").replace("(", r"\(")):
        maco_hub.load_gallery(folder)
    with pytest.raises(GalleryError, match=named.replace("[", r"\[").replace("(", r"\(")):
        maco_hub.save_gallery(maco_hub.Gallery(), folder)  # extending checks the folder first
    for command in (["gallery", "html", str(folder)], ["gallery", "show", str(folder)]):
        result = run_cli(*command, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
        assert named in result.stderr
    after = files_under(root)
    after.pop("deep/gallery/.maco_hub.lock", None)
    assert after == before  # nothing written, inside or outside
    assert not (tmp_path / "x").exists() and not (root / "x").exists()


def test_shard_replaced_by_another_is_caught_and_repair_then_rerun_completes(tiny_zoo, tmp_path):
    out = tmp_path / "g"
    model = str(tiny_zoo["resnet"].path)
    run = ["explain", model, "--classes", "0", "1", "2", "--batch-size", "2", "--out", str(out), *CLI_QUICK]
    explain_again = {
        "classes": [0, 1, 2],
        "batch_size": 2,
        "out": out,
        "steps": 2,
        "canvas": 32,
        "progress": False,
    }
    maco_hub.explain(model, **explain_again)
    shards = json.loads((out / MANIFEST_NAME).read_text())["shards"]
    shutil.copyfile(out / shards[1]["file"], out / shards[0]["file"])
    with pytest.raises(GalleryError, match=f"{shards[0]['file']}.*sha256.*gallery repair"):
        maco_hub.load_gallery(out)
    result = run_cli(*run)  # the rerun refuses the damaged folder and says what to do
    assert result.returncode == 2 and "gallery repair" in result.stderr
    repaired = run_cli("gallery", "repair", str(out))
    assert repaired.returncode == 0, repaired.stderr
    assert f"dropped {shards[0]['file']}" in repaired.stdout
    assert f"kept {shards[0]['file']}" in repaired.stdout  # replaced by someone: reported, not deleted
    assert [item.class_id for item in maco_hub.load_gallery(out)] == [2]
    maco_hub.explain(model, **explain_again)
    rows = maco_hub.load_gallery(out)
    assert sorted(item.class_id for item in rows) == [0, 1, 2]
    assert len(datasets.load_dataset(str(out), split="train")) == 3


def test_record_key_in_data_never_names_a_file(three_row_gallery, tmp_path):
    folder = tmp_path / "g"
    shutil.copytree(three_row_gallery, folder)

    def poisoned(rows):  # the key column stays right; only the record's own "key" is hostile
        record = json.loads(rows[0]["record"])
        rows[0]["record"] = json.dumps({**record, "key": "../../escaped"})
        return rows

    _rewrite_shard(folder, 0, poisoned)
    with pytest.raises(GalleryError, match=re.escape("'key' is '../../escaped', not a row key")):
        maco_hub.load_gallery(folder)
    assert not list(tmp_path.rglob("escaped*"))


def test_out_naming_a_file_is_one_clear_line(tiny_zoo, tmp_path):
    (tmp_path / "taken").write_text("mine")
    result = run_cli(
        "explain",
        str(tiny_zoo["resnet"].path),
        "--classes",
        "0",
        "--out",
        str(tmp_path / "taken"),
        *CLI_QUICK,
    )
    assert result.returncode == 2 and "is a file" in result.stderr and "Traceback" not in result.stderr
    assert (tmp_path / "taken").read_text() == "mine"


def test_three_concurrent_jobs_end_with_the_union_each_once(tiny_zoo, tmp_path):
    out = tmp_path / "shared"
    model = str(tiny_zoo["vit"].path)
    lists = [["0", "1", "2", "3"], ["2", "3", "4", "5"], ["5", "0", "4", "1"]]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    jobs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "maco_hub.cli",
                "explain",
                model,
                "--classes",
                *classes,
                "--batch-size",
                "1",
                "--out",
                str(out),
                *CLI_QUICK,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for classes in lists
    ]
    results = [(job.wait(timeout=400), job.stderr.read()) for job in jobs]
    for code, err in results:
        assert code == 0, err
    gallery = maco_hub.load_gallery(out)
    assert sorted(item.class_id for item in gallery) == [0, 1, 2, 3, 4, 5]
    assert len({item.key for item in gallery}) == 6
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert len({shard["file"] for shard in manifest["shards"]}) == len(manifest["shards"])
    assert sorted(p.name for p in (out / "data").iterdir()) == sorted(
        Path(shard["file"]).name for shard in manifest["shards"]
    )
    assert len(datasets.load_dataset(str(out), split="train")) == 6
    assert (out / "index.html").read_text().count("-transparent.png") == 6


KILL_POINTS = [
    "after-marker",
    "after-images",
    "after-shard",
    "after-manifest",
    "during-pages",
    "after-images:2",
]


@pytest.mark.parametrize("point", KILL_POINTS)
def test_kill_9_at_any_point_then_rerun_completes(tiny_zoo, tmp_path, point):
    out = tmp_path / "g"
    model = str(tiny_zoo["resnet"].path)
    run = ["explain", model, "--classes", "0", "1", "2", "--batch-size", "2", "--out", str(out), *CLI_QUICK]
    killed = run_cli(*run, env={KILL_ENV: point})
    assert killed.returncode == -9, killed.stderr  # it was killed, at that point
    assert (out / MANIFEST_NAME).is_file()  # marked as a gallery before any data
    before = maco_hub.load_gallery(out)  # what is listed is complete and readable
    assert len(before) == {"after-manifest": 2, "during-pages": 2, "after-images:2": 2}.get(point, 0)
    if point == "after-images":  # the very first batch, through the CLI again
        finished = run_cli(*run)
        assert finished.returncode == 0, finished.stderr
    else:
        maco_hub.explain(model, classes=[0, 1, 2], batch_size=2, out=out, steps=2, canvas=32, progress=False)
    after = maco_hub.load_gallery(out)
    assert sorted(item.class_id for item in after) == [0, 1, 2]
    assert len({item.key for item in after}) == 3
    assert [item.key for item in after[: len(before)]] == [item.key for item in before]
    listed = {Path(s["file"]).name for s in json.loads((out / MANIFEST_NAME).read_text())["shards"]}
    assert {p.name for p in (out / "data").iterdir()} == listed  # nothing unfinished left
    keys = {item.key for item in after}
    assert {p.name.split("-")[0].removesuffix(".png") for p in (out / "images").iterdir()} == keys
    assert not [p for p in out.rglob("*.tmp")]
    assert len(datasets.load_dataset(str(out), split="train")) == 3


def test_files_maco_hub_did_not_write_are_kept_and_reported(three_row_gallery, tmp_path, caplog):
    folder = tmp_path / "g"
    shutil.copytree(three_row_gallery, folder)
    strays = [
        folder / "data" / "notes.parquet",
        folder / "data" / "train-0123456789abcdef.parquet",
        folder / "images" / "mine.jpg",
        folder / "notes.txt",
    ]
    for stray in strays:
        stray.write_bytes(b"not maco_hub's")
    with caplog.at_level(logging.WARNING, logger="maco_hub.gallery.repair"):
        GalleryFolder.open(folder)
    assert all(stray.read_bytes() == b"not maco_hub's" for stray in strays)
    assert "train-0123456789abcdef.parquet" in caplog.text and "mine.jpg" in caplog.text
    assert len(maco_hub.load_gallery(folder)) == 3


def test_another_writers_in_flight_file_is_left_while_it_holds_the_lock(three_row_gallery, tmp_path):
    folder = tmp_path / "g"
    shutil.copytree(three_row_gallery, folder)
    in_flight = folder / "images" / ".x.png.abcd1234.maco_hub.tmp"
    holder_done = threading.Event()
    seen: list[bool] = []

    def other_writer() -> None:  # holds the lock (a thread has its own lock handle) while writing
        with folder_lock(folder):
            in_flight.write_bytes(b"half")
            holder_done.set()
            time.sleep(1.5)
            seen.append(in_flight.exists())  # still there: nobody cleaned it up under our feet
            in_flight.unlink()

    thread = threading.Thread(target=other_writer)
    thread.start()
    holder_done.wait(10)
    GalleryFolder.open(folder)  # waits for the lock, then finds nothing unfinished
    thread.join()
    assert seen == [True]


def test_extending_with_other_settings_warns_and_labels_rows_apart(tiny_zoo, tmp_path, caplog):
    out = tmp_path / "g"
    model = str(tiny_zoo["resnet"].path)
    maco_hub.explain(model, classes=[0], out=out, steps=2, canvas=32, progress=False)
    with caplog.at_level(logging.WARNING, logger="maco_hub.gallery.folder"):
        gallery = maco_hub.explain(model, classes=[0], out=out, steps=3, canvas=32, progress=False)
    assert "other settings" in caplog.text
    assert [item.record.config["steps"] for item in gallery] == [2, 3]
    card = (out / "README.md").read_text()
    assert "2 steps, canvas 32 px" in card and "3 steps, canvas 32 px" in card and "separate rows" in card
    page = (out / "index.html").read_text()
    assert '"steps":2' in page and '"steps":3' in page
    shown = run_cli("gallery", "show", str(out))
    assert shown.stdout.splitlines()[0].split()[:6] == ["#", "objective", "score", "seed", "steps", "canvas"]


def test_regenerate_falls_back_when_the_recorded_device_is_absent(tiny_zoo, tmp_path, caplog):
    import dataclasses

    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    folder = str(tiny_zoo["resnet"].path)
    gallery = maco_hub.explain(folder, classes=[0], steps=2, canvas=32, progress=False)
    on_cuda = dataclasses.replace(gallery[0].record, device="cuda")
    made_on_cuda = dataclasses.replace(gallery[0], record=on_cuda)
    with caplog.at_level(logging.WARNING, logger="maco_hub.reproduction"):
        again = maco_hub.regenerate(made_on_cuda, model=folder)  # a local row names no folder
    assert "'cuda'" in caplog.text and "cpu" in caplog.text
    assert again.key == gallery[0].key


def test_missing_shard_is_named_and_repair_then_rerun_completes(tiny_zoo, tmp_path):
    out = tmp_path / "g"
    model = str(tiny_zoo["resnet"].path)
    options = {"classes": [0, 1, 2], "batch_size": 2, "out": out, "steps": 2, "canvas": 32, "progress": False}
    maco_hub.explain(model, **options)
    shards = json.loads((out / MANIFEST_NAME).read_text())["shards"]
    (out / shards[0]["file"]).unlink()
    with pytest.raises(GalleryError, match=f"{shards[0]['file']}.*is missing.*gallery repair"):
        maco_hub.explain(model, **options)
    report = maco_hub.repair_gallery(out)
    assert report.rows == 1 and shards[0]["file"] in report.dropped[0]
    assert sorted(item.class_id for item in maco_hub.explain(model, **options)) == [0, 1, 2]


def test_a_wrong_manifest_entry_loses_no_shard(three_row_gallery, tmp_path):
    folder = tmp_path / "g"
    shutil.copytree(three_row_gallery, folder)
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    real = manifest["shards"][0]["file"]
    manifest["shards"][0]["file"] = "data/train-00000.parquet"  # well-formed, but not the real file
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(GalleryError, match=r"train-00000\.parquet.*is missing"):
        maco_hub.load_gallery(folder)
    report = maco_hub.repair_gallery(folder)
    assert report.adopted == [real] and report.rows == 3  # the real shard is listed again, not deleted
    assert sorted(item.class_id for item in maco_hub.load_gallery(folder)) == [0, 1, 2]
    (folder / MANIFEST_NAME).write_text("{ damaged")
    assert maco_hub.repair_gallery(folder).rows == 3  # rebuilt from the shards named by their hash
    assert len(maco_hub.load_gallery(folder)) == 3
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "README.md").write_text("my notes")
    result = run_cli("gallery", "repair", str(tmp_path / "mine"))
    assert result.returncode == 2 and "not a maco_hub gallery" in result.stderr
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["README.md"]
