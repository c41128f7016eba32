"""Hostile gallery folders, round 2: links, FIFOs, image bombs, crafted column types and records,
oversized columns and shards, failing file systems, terminal escapes, lost manifests.

Each attack is built as an attacker (or an accident) would leave the folder, with sha256 and
manifest updated where that makes the shard look genuine, then met through the command line.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from helpers import minimal_record, subprocess_cli
from PIL import Image
from test_gallery_safety import CLI_QUICK, _rewrite_shard, files_under
from tiny_models import loaded

import maco_hub
from maco_hub.errors import ConfigError, GalleryError
from maco_hub.gallery import format as gallery_format
from maco_hub.gallery.evaluation import Evaluation
from maco_hub.gallery.format import parquet_bytes
from maco_hub.gallery.keys import key_of
from maco_hub.gallery.layout import EVALUATION_NAME, MANIFEST_NAME
from maco_hub.gallery.rows import Gallery, Visualization

ESCAPES = "\x1b]0;pwned\x07\x1b[2J"  # retitles and clears a terminal that prints it raw


@pytest.fixture(scope="module")
def three_rows_evaluated(three_row_gallery, tmp_path_factory) -> Path:
    """The same rows, evaluated by a tiny judge (shards with eval columns, evaluation.json)."""
    out = tmp_path_factory.mktemp("evaluated") / "g"
    shutil.copytree(three_row_gallery, out)
    maco_hub.evaluate(out, {"deit": loaded("deit")}, crops=2, seed=0, out=out)
    return out


@pytest.fixture
def gallery(three_row_gallery, tmp_path) -> Path:
    folder = tmp_path / "g"
    shutil.copytree(three_row_gallery, folder)
    return folder


@pytest.fixture
def evaluated(three_rows_evaluated, tmp_path) -> Path:
    folder = tmp_path / "g"
    shutil.copytree(three_rows_evaluated, folder)
    return folder


def _manifest(folder: Path) -> dict:
    return json.loads((folder / MANIFEST_NAME).read_text())


def _explain_into(tiny_zoo, folder: Path, *classes: str) -> list[str]:
    return ["explain", str(tiny_zoo["resnet"].path), "--classes", *classes, "--out", str(folder), *CLI_QUICK]


def _refused(result, *words: str) -> None:
    """Exit 2 with one `error:` line naming ``words`` (then the hint), no traceback; before them
    stderr holds at most what a library showed while loading (in-process, its progress bars)."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    *_, error, hint = result.stderr.strip().splitlines()
    assert error.startswith("error: ") and hint.startswith("hint: "), result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in error, result.stderr


# ------------------------------------------------------------------------------------- links


def test_two_galleries_sharing_a_linked_images_folder_lose_nothing(tiny_zoo, maco_cli, tmp_path):
    """The issue's reproduction: gA/images and gB/images link to one folder S; extending gB used
    to delete gA's images as 'left unfinished'."""
    shared = tmp_path / "S"
    shared.mkdir()
    for name in ("gA", "gB"):
        made = maco_cli(*_explain_into(tiny_zoo, tmp_path / name, "0" if name == "gA" else "1"))
        assert made.returncode == 0, made.stderr
        for image in (tmp_path / name / "images").iterdir():
            image.rename(shared / image.name)
        (tmp_path / name / "images").rmdir()
        (tmp_path / name / "images").symlink_to(shared)
    before = files_under(shared)
    assert len(before) == 4
    commands = [
        _explain_into(tiny_zoo, tmp_path / "gB", "2"),
        ["gallery", "repair", str(tmp_path / "gB")],
        ["gallery", "html", str(tmp_path / "gA")],
        ["gallery", "show", str(tmp_path / "gA")],
    ]
    for command in commands:
        _refused(maco_cli(*command), "'images'", "is a symbolic link, not a folder", "replace the link")
    assert files_under(shared) == before


LINKED = [
    "images",
    "data",
    MANIFEST_NAME,
    "README.md",
    "index.html",
    EVALUATION_NAME,
    ".maco_hub.lock",
    "shard",
]


@pytest.mark.parametrize("entry", LINKED)
def test_no_gallery_command_follows_a_link_inside_the_gallery(tiny_zoo, maco_cli, evaluated, tmp_path, entry):
    """Each of the gallery's own folders and files, moved outside and linked back: every command
    refuses in one line (repair drops a linked shard, as a damaged one), and the target outside is
    neither read into the gallery, written nor deleted (the lock file is not truncated either)."""
    gallery = evaluated
    name = _manifest(gallery)["shards"][0]["file"] if entry == "shard" else entry
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / Path(name).name
    if entry == ".maco_hub.lock":
        target.write_text("someone's file")
        (gallery / name).unlink(missing_ok=True)
    else:
        (gallery / name).rename(target)
    (gallery / name).symlink_to(target)
    before = files_under(outside)
    commands = [
        _explain_into(tiny_zoo, gallery, "3"),
        ["gallery", "html", str(gallery)],
        ["gallery", "show", str(gallery)],
        ["gallery", "repair", str(gallery)],
    ]
    for command in commands:
        result = maco_cli(*command)
        if entry == "shard" and command[1] == "repair":
            assert result.returncode == 0 and f"dropped {name}" in result.stdout, result.stderr
            assert "is a symbolic link" in result.stdout and f"kept {name}" in result.stdout
            continue
        _refused(result, repr(name), "is a symbolic link")
    if entry == "shard":
        return
    with pytest.raises(GalleryError, match="symbolic link"):
        maco_hub.load_gallery(gallery)
    assert files_under(outside) == before
    assert (gallery / name).is_symlink()


def test_links_and_folders_among_images_and_shards_are_kept_not_followed(
    tiny_zoo, maco_cli, gallery, tmp_path
):
    """Entries maco_hub did not write are reported and kept: a link named like an unlisted shard
    or image, and a folder named like an image (it used to raise IsADirectoryError)."""
    outside = tmp_path / "precious.png"
    outside.write_bytes(b"not yours")
    unlisted = "0123456789abcdef0123"
    strays = {
        gallery / "images" / f"{unlisted}.png": "link",
        gallery / "images" / f"{unlisted}-transparent.png": "dir",
        gallery / "data" / "train-0123456789abcdef.parquet": "link",
    }
    for path, kind in strays.items():
        if kind == "link":
            path.symlink_to(outside)
        else:
            path.mkdir()
    result = maco_cli(*_explain_into(tiny_zoo, gallery, "3"))
    assert result.returncode == 0, result.stderr
    assert all(path.is_symlink() or path.is_dir() for path in strays)
    assert outside.read_bytes() == b"not yours"
    assert f"{unlisted}.png" in result.stderr and "train-0123456789abcdef.parquet" in result.stderr
    assert sorted(item.class_id for item in maco_hub.load_gallery(gallery)) == [0, 1, 2, 3]


def test_a_folder_where_a_listed_image_belongs_is_one_line_for_repair(maco_cli, gallery):
    key = _manifest(gallery)["shards"][0]["keys"][0]
    (gallery / "images" / f"{key}.png").unlink()
    (gallery / "images" / f"{key}.png").mkdir()
    _refused(
        maco_cli("gallery", "repair", str(gallery)),
        f"'images/{key}.png'",
        "is a folder, not a regular file",
        "move it out",
    )


@pytest.mark.parametrize("entry", ["images", "data"])
def test_images_or_data_as_a_plain_file_is_one_line(tiny_zoo, maco_cli, gallery, entry):
    shutil.rmtree(gallery / entry)
    (gallery / entry).write_text("a file")
    for command in (_explain_into(tiny_zoo, gallery, "3"), ["gallery", "show", str(gallery)]):
        _refused(maco_cli(*command), repr(entry), "is a file, not a folder")
    assert (gallery / entry).read_text() == "a file"


def test_a_gallery_reached_through_a_link_the_user_named_works(tiny_zoo, maco_cli, gallery, tmp_path):
    """Following the root the user named is normal (only links inside a gallery are refused)."""
    (tmp_path / "link").symlink_to(gallery)
    assert maco_cli(*_explain_into(tiny_zoo, tmp_path / "link", "3")).returncode == 0
    assert len(maco_hub.load_gallery(tmp_path / "link")) == 4 == len(maco_hub.load_gallery(gallery))


# ------------------------------------------------------------------------------------- hangs


@pytest.mark.parametrize("entry", [EVALUATION_NAME, MANIFEST_NAME, "shard"])
def test_a_fifo_in_a_gallery_is_refused_without_waiting(evaluated, entry):
    """A FIFO used to block show, repair and load forever; each ends at once in one line."""
    gallery = evaluated
    name = _manifest(gallery)["shards"][0]["file"] if entry == "shard" else entry
    (gallery / name).unlink()
    os.mkfifo(gallery / name)
    commands = [["gallery", "show", str(gallery)]]
    if entry == EVALUATION_NAME:
        commands += [["gallery", "repair", str(gallery)], ["gallery", "html", str(gallery)]]
    for command in commands:
        result = subprocess_cli(*command, timeout=60)
        _refused(result, repr(name), "is a FIFO, not a regular file")
    code = f"import maco_hub; maco_hub.load_gallery({str(gallery)!r})"
    loading = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "GalleryError" in loading.stderr and "FIFO" in loading.stderr


# ------------------------------------------------------------------------------ images, decoders


def _png_header(width: int, height: int, color_type: int = 2) -> bytes:
    """A PNG file's signature, IHDR (8-bit, ``color_type``), an empty IDAT and IEND: a few dozen
    bytes that claim any size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    chunks = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def _encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


IMAGES = {  # column, bytes, what the error says
    "20000x20000 PNG (a bomb)": ("image", lambda: _png_header(20000, 20000), "20000x20000 px, not 32x32 px"),
    "9400x9400 PNG (under PIL's limit)": ("image", lambda: _png_header(9400, 9400), "9400x9400 px, not 32x"),
    "64x64 PNG on a 32 px canvas": ("image", lambda: _encoded(Image.new("RGB", (64, 64)), "PNG"), "64x64 px"),
    "alpha of another size": ("alpha", lambda: _encoded(Image.new("L", (16, 16)), "PNG"), "16x16 px, not 32"),
    "BMP of the right size": ("image", lambda: _encoded(Image.new("RGB", (32, 32)), "BMP"), "not a PNG file"),
    "EPS": ("image", lambda: b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 32 32\n", "not a PNG file"),
}


@pytest.mark.parametrize("case", list(IMAGES))
def test_shard_images_are_checked_before_they_are_decoded(maco_cli, gallery, case):
    column, make, message = IMAGES[case]

    def change(rows):
        rows[0][column] = {"bytes": make(), "path": None}
        return rows

    _rewrite_shard(gallery, 0, change)
    _refused(maco_cli("gallery", "show", str(gallery)), "Row 0 of the gallery shard", column, message)
    report = maco_hub.repair_gallery(gallery)  # repair drops the shard instead of crashing
    assert report.rows == 1 and message in report.dropped[0]


def test_a_row_a_gallery_could_not_read_back_is_not_written(tmp_path):
    big = Visualization(
        image=Image.new("RGB", (4100, 4100)),
        alpha=Image.new("L", (4100, 4100)),
        score=0.0,
        objective="big",
        kind="class",
        record=minimal_record(canvas=4100),
    )
    recordless = dataclasses.replace(big, record=None)
    with pytest.raises(ConfigError, match="has no reproducibility record"):
        maco_hub.save_gallery(Gallery((recordless,)), tmp_path / "g")
    with pytest.raises(ConfigError, match="at most 4096 px"):
        maco_hub.save_gallery(Gallery((big,)), tmp_path / "g")
    assert not (tmp_path / "g" / "data").exists()


# ------------------------------------------------------------------- column types and records


def _retyped(column: str, value):
    """A shard whose ``column`` holds strings (as parquet_bytes cannot write it)."""

    def change(rows):
        table = pq.read_table(io.BytesIO(parquet_bytes(rows)))
        index = table.schema.get_field_index(column)
        table = table.set_column(index, pa.field(column, pa.string()), pa.array([value] * len(rows)))
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        return buffer.getvalue()

    return change


@pytest.mark.parametrize("column", ["class_id", "unit", "steps", "canvas"])
def test_columns_of_another_type_are_refused_on_load(maco_cli, gallery, column):
    _rewrite_shard(gallery, 0, _retyped(column, "<script>alert(1)</script> **x**"))
    for command in ("show", "html"):
        _refused(maco_cli("gallery", command, str(gallery)), f"Column {column!r}", "is string, not int64")
    assert "<script>" not in (gallery / "README.md").read_text()
    assert maco_hub.repair_gallery(gallery).rows == 1


def _with_record(**fields):
    def change(rows):
        record = {**json.loads(rows[0]["record"]), **fields}
        try:  # the key recomputed as an attacker would
            identity = {
                name: record[name]
                for name in ("model_id", "model_revision", "objective_record", "seed", "config")
            }
            identity["spectrum_sha256"] = record["spectrum"]["sha256"]
            rows[0]["key"] = record["key"] = key_of(identity)
        except TypeError:  # a string spectrum: the old code crashed here, in row_key
            pass
        rows[0]["record"] = json.dumps(record)
        return rows

    return change


RECORDS = {
    "spectrum a string": ({"spectrum": "x"}, "'spectrum' is 'x', not an object"),
    "config a list": ({"config": [1, 2]}, "'config' is [1, 2], not an object"),
    "steps a string": ({"config": {"steps": "3", "canvas": 32}}, "'config.steps' is '3', not an integer"),
    "seed 2**70": ({"seed": 2**70}, "'seed' is 1180591620717411303424, not an integer"),
    "a record that is a list": (None, "a record that is a list, not a JSON object"),
}


@pytest.mark.parametrize("case", list(RECORDS))
def test_records_of_another_shape_are_refused_and_repair_drops_them(tiny_zoo, maco_cli, gallery, case):
    fields, message = RECORDS[case]

    def as_list(rows):
        rows[0]["record"] = "[1, 2]"
        return rows

    _rewrite_shard(gallery, 0, as_list if fields is None else _with_record(**fields))
    for command in (
        ["gallery", "show", str(gallery)],
        ["gallery", "html", str(gallery)],
        _explain_into(tiny_zoo, gallery, "3"),
    ):
        _refused(maco_cli(*command), "Row 0 of the gallery shard", message)
    with pytest.raises(GalleryError, match="Row 0"):
        maco_hub.save_gallery(maco_hub.load_gallery(gallery), gallery.parent / "copy")
    repaired = maco_cli("gallery", "repair", str(gallery))
    assert repaired.returncode == 0 and message in repaired.stdout
    assert maco_cli("gallery", "show", str(gallery)).returncode == 0


# ------------------------------------------------------------------------------- size limits


@pytest.mark.parametrize("column", ["objective", "label", "model_id"])
def test_a_huge_string_in_a_tiny_shard_is_refused_before_it_is_read(maco_cli, gallery, column):
    """5 MB of text in a zstd shard of a few kB: refused from the parquet metadata."""

    def change(rows):
        rows[0][column] = "a" * (5 << 20)
        table = pq.read_table(io.BytesIO(parquet_bytes(rows)))
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="zstd")
        return buffer.getvalue()

    name = _rewrite_shard(gallery, 0, change)
    assert (gallery / name).stat().st_size < 100_000
    for command in ("show", "html"):
        _refused(
            maco_cli("gallery", command, str(gallery)),
            f"Column {column!r}",
            "over its limit of 65536 characters a row",
        )


def test_a_30_gib_shard_is_refused_from_its_size_and_repair_keeps_it(gallery):
    name = _manifest(gallery)["shards"][0]["file"]
    os.truncate(gallery / name, 30 << 30)  # sparse: nothing is written
    for command in (["gallery", "show", str(gallery)], ["gallery", "repair", str(gallery)]):
        result = subprocess_cli(*command, timeout=60)
        if command[1] == "show":
            _refused(result, repr(name), "is 32212254720 bytes (limit 2147483648)")
        else:
            assert result.returncode == 0, result.stderr
            assert f"dropped {name}" in result.stdout and f"kept {name}" in result.stdout
    assert (gallery / name).stat().st_size == 30 << 30
    assert len(maco_hub.load_gallery(gallery)) == 1


def test_big_appends_are_split_into_shards(monkeypatch, tmp_path):
    """A copy of a big gallery is not one shard over the reading limit: appends start a new
    shard once a shard's PNGs reach SHARD_TARGET_BYTES."""
    rows = [
        Visualization(
            image=Image.new("RGB", (32, 32), (i, 0, 0)),
            alpha=Image.new("L", (32, 32)),
            score=1.0,
            objective=f"row {i}",
            kind="class",
            record=minimal_record(i),
        )
        for i in range(3)
    ]
    monkeypatch.setattr(gallery_format, "SHARD_TARGET_BYTES", 1)
    folder = maco_hub.save_gallery(Gallery(tuple(rows)), tmp_path / "g")
    assert [len(entry["keys"]) for entry in _manifest(folder)["shards"]] == [1, 1, 1]
    assert [item.objective for item in maco_hub.load_gallery(folder)] == ["row 0", "row 1", "row 2"]


# ---------------------------------------------------------------------- failing file systems


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@pytest.fixture
def read_only(gallery):
    """The gallery, bind-mounted read-only onto itself (read-only for root too)."""
    if not (_mount("--bind", str(gallery), str(gallery))):
        pytest.skip("this machine does not allow bind mounts (needs root in a mount namespace)")
    try:
        if not _mount("-o", "remount,ro,bind", str(gallery)):
            pytest.skip("this machine does not allow a read-only remount")
        yield gallery
    finally:
        subprocess.run(["umount", str(gallery)], check=True)


def test_a_read_only_gallery_is_read_and_refuses_writes_in_one_line(tiny_zoo, maco_cli, read_only):
    assert maco_cli("gallery", "show", str(read_only)).returncode == 0
    for command in (
        _explain_into(tiny_zoo, read_only, "3"),
        ["gallery", "html", str(read_only)],
        ["gallery", "repair", str(read_only)],
    ):
        _refused(maco_cli(*command), "Read-only file system", "choose a folder you can write to")


def _limit_file_size():
    resource.setrlimit(resource.RLIMIT_FSIZE, (30_000, 30_000))  # EFBIG past 30 kB: a 2-row shard


def test_a_full_disk_is_one_line_and_the_rerun_completes(tiny_zoo, tmp_path):
    """A file size limit (EFBIG, what a full disk's ENOSPC looks like to maco_hub) in the middle
    of a batch: one line, the folder stays a consistent gallery, the same command then finishes."""
    out = tmp_path / "g"
    command = [
        sys.executable,
        "-m",
        "maco_hub.cli",
        *_explain_into(tiny_zoo, out, "0", "1", "2"),
        "--batch-size",
        "2",
        "--canvas",
        "96",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    full = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env=env, preexec_fn=_limit_file_size
    )
    _refused(full, "Could not update the gallery", "File too large", "run the same command again")
    assert len(maco_hub.load_gallery(out)) in (0, 2)  # what is listed is complete
    assert not list(out.rglob("*.maco_hub.tmp"))
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert sorted(item.class_id for item in maco_hub.load_gallery(out)) == [0, 1, 2]
    assert len(datasets.load_dataset(str(out), split="train")) == 3


# ----------------------------------------------------------------------------- terminal escapes


@pytest.fixture(scope="module")
def escaping_model(tiny_zoo, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("escapes") / "vit"
    shutil.copytree(tiny_zoo["vit"].path, folder)
    config = json.loads((folder / "config.json").read_text())
    config["id2label"] = {**config["id2label"], "0": f"cat{ESCAPES}\u202eevil\u200b"}
    config["label2id"] = {label: int(i) for i, label in config["id2label"].items()}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_labels_ids_and_file_names_are_printed_as_visible_escapes(escaping_model, maco_cli, tmp_path):
    out = tmp_path / "g"
    results = [
        maco_cli("labels", str(escaping_model)),
        maco_cli("explain", str(escaping_model), "--classes", "0", "--out", str(out), *CLI_QUICK),
    ]
    (out / f"notes{ESCAPES}.txt").write_text("stray")
    results += [
        maco_cli("gallery", "show", str(out)),
        maco_cli("gallery", "repair", str(out)),
        maco_cli(
            "explain",
            str(escaping_model),
            "--classes",
            "1",
            "--out",
            str(out),
            "--steps",
            "2",
            "--canvas",
            "32",
        ),
    ]
    for result in results:
        assert result.returncode == 0, result.stderr
        for char in "\x1b\x07\u202e\u200b":
            assert char not in result.stdout + result.stderr
    assert "cat\\x1b]0;pwned\\x07\\x1b[2J\\u202eevil\\u200b" in results[0].stdout
    assert "\\x1b]0;pwned" in results[2].stdout  # the objective names the label
    assert f"kept notes{ESCAPES.encode('unicode_escape').decode()}.txt" in results[3].stdout
    assert "notes\\x1b]0;pwned" in results[4].stderr  # the log line about the stray file


def test_spectrum_show_prints_metadata_as_visible_escapes(maco_cli, tmp_path):
    from maco_hub.spectra.spectrum import Spectrum

    spectrum = Spectrum(torch.rand(3, 8, 5) + 0.1, {"dataset": ESCAPES, "note\u202e": "x"})
    path = spectrum.save(tmp_path / "s.safetensors")
    result = maco_cli("spectrum", "show", str(path))
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\u202e" not in result.stdout
    assert "\\x1b]0;pwned\\x07\\x1b[2J" in result.stdout and "note\\u202e" in result.stdout


def test_bidi_and_zero_width_characters_are_visible_in_card_and_page(escaping_model, tmp_path):
    out = tmp_path / "g"
    maco_hub.explain(str(escaping_model), classes=[0], out=out, steps=2, canvas=32, progress=False)
    maco_hub.save_gallery(maco_hub.load_gallery(out), out, title="Title \u202eevil\u2066")
    card, page = (out / "README.md").read_text(), (out / "index.html").read_text()
    for text in (card, page):
        assert not {"\x1b", "\x07", "\u202e", "\u200b", "\u2066"} & set(text)
    assert "\\\\u202eevil\\\\u200b" in card  # Markdown shows the escape as text: \u202eevil\u200b
    assert "\\\\u202eevil\\\\u200b" in page  # in the row JSON: the text \u202eevil\u200b
    assert "Title \\u202eevil\\u2066" in page.split("<title>")[1]


# ---------------------------------------------------------------------------------- the rest


def test_a_deleted_manifest_is_rebuilt_by_repair(maco_cli, evaluated, tmp_path):
    gallery = evaluated
    before = maco_hub.load_gallery(gallery)
    (gallery / MANIFEST_NAME).unlink()
    _refused(maco_cli("gallery", "show", str(gallery)), "not a maco_hub gallery")
    repaired = maco_cli("gallery", "repair", str(gallery))
    assert repaired.returncode == 0, repaired.stderr
    assert "added the finished shard" in repaired.stdout and "3 rows" in repaired.stdout
    after = maco_hub.load_gallery(gallery)
    assert sorted(i.key for i in after) == sorted(i.key for i in before)
    assert after.evaluation == before.evaluation  # evaluation.json is listed again
    (tmp_path / "empty").mkdir()
    _refused(maco_cli("gallery", "repair", str(tmp_path / "empty")), "not a maco_hub gallery")
    assert not list((tmp_path / "empty").iterdir())


@pytest.mark.parametrize("number", ["Infinity", "-Infinity", "NaN"])
def test_non_finite_numbers_in_evaluation_json_are_refused(maco_cli, evaluated, number):
    gallery = evaluated
    text = (gallery / EVALUATION_NAME).read_text()
    record = json.loads(text)
    record["summary"][0]["top1"] = float(number.replace("Infinity", "inf"))
    forged = json.dumps(record)
    assert number in forged
    (gallery / EVALUATION_NAME).write_text(forged)
    manifest = _manifest(gallery)
    manifest["evaluation"]["sha256"] = hashlib.sha256(forged.encode()).hexdigest()
    (gallery / MANIFEST_NAME).write_text(json.dumps(manifest))
    _refused(maco_cli("gallery", "show", str(gallery)), "evaluation.json", "the top1")


def test_an_evaluation_with_a_non_finite_number_is_not_stored(evaluated):
    gallery = evaluated
    stored = maco_hub.load_gallery(gallery).evaluation
    nan = Evaluation(stored.rows, ({**stored.summary[0], "prob": float("nan")},), stored.settings)
    with pytest.raises(ConfigError, match="NaN or infinite"):
        maco_hub.save_evaluation(gallery, nan)
    assert maco_hub.load_gallery(gallery).evaluation == stored
