"""A gallery folder's pages while it grows: thumbnails made once per row (and again when lost),
pages written at a cost per batch that does not grow with the gallery, a usable page after a
killed run is rerun, and thumbnails that are not maco_hub's left alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import subprocess_cli
from PIL import Image
from test_gallery_hostile import _refused
from test_gallery_safety import CLI_QUICK

import maco_hub
from maco_hub._files import KILL_ENV
from maco_hub.gallery.folder import GalleryFolder
from maco_hub.gallery.layout import THUMBS_DIR
from maco_hub.gallery.pages import PageWriter, write_pages, write_thumbnails
from maco_hub.gallery.rows import thumbnail_names
from maco_hub.gallery.thumbnails import PAGE_SIDE

COMPAT = Path(__file__).parent / "data" / "compat-gallery"


@pytest.fixture
def old_gallery(tmp_path) -> Path:
    """A gallery written before thumbnails existed (tests/data/compat-gallery)."""
    folder = tmp_path / "g"
    shutil.copytree(COMPAT, folder)
    assert not (folder / THUMBS_DIR).exists()
    return folder


def _page_rows(folder: Path) -> list[dict]:
    from test_viewer import _embedded_rows

    return _embedded_rows((folder / "index.html").read_text(encoding="utf-8"))


def test_an_old_gallery_gets_thumbnails_on_its_next_page_write(old_gallery, maco_cli):
    assert maco_cli("gallery", "html", str(old_gallery)).returncode == 0
    gallery = maco_hub.load_gallery(old_gallery)
    for item, row in zip(gallery, _page_rows(old_gallery), strict=True):
        plain, transparent = (old_gallery / THUMBS_DIR / name for name in thumbnail_names(item.key))
        assert row["thumb"] == f"{THUMBS_DIR}/{plain.name}"
        assert row["thumb_transparent"] == f"{THUMBS_DIR}/{transparent.name}"
        with Image.open(plain) as thumb:
            assert thumb.format == "JPEG" and thumb.mode == "RGB" and thumb.size == item.image.size
        with Image.open(transparent) as thumb:
            assert thumb.format == "WEBP" and thumb.mode == "RGBA"
            alpha = thumb.getchannel("A")
        assert np.abs(np.asarray(alpha, dtype=int) - np.asarray(item.alpha, dtype=int)).max() <= 8


def test_thumbnails_are_made_once_and_again_when_lost(old_gallery):
    store = GalleryFolder.open(old_gallery, create=False)
    with store.locked():
        keys = write_thumbnails(store)
    assert keys == store.keys
    files = sorted((old_gallery / THUMBS_DIR).iterdir())
    stamps = {p: p.stat().st_mtime_ns for p in files}
    lost, emptied = files[0], files[1]
    lost.unlink()
    emptied.write_bytes(b"")  # what a crash can leave of a file written without fsync
    with store.locked():
        assert write_thumbnails(store) == keys
    assert lost.stat().st_size > 0 and emptied.stat().st_size > 0
    assert all(p.stat().st_mtime_ns == stamps[p] for p in files[2:])  # the others were not rewritten


def test_a_thumbnail_that_is_not_a_regular_file_is_left_and_the_row_shows_its_image(old_gallery, maco_cli):
    key = json.loads((old_gallery / "manifest.json").read_text())["shards"][0]["keys"][0]
    outside = old_gallery.parent / "elsewhere.jpg"
    outside.write_bytes(b"not yours")
    (old_gallery / THUMBS_DIR).mkdir()
    (old_gallery / THUMBS_DIR / thumbnail_names(key)[0]).symlink_to(outside)
    assert maco_cli("gallery", "html", str(old_gallery)).returncode == 0
    rows = {row["record"]["key"]: row for row in _page_rows(old_gallery)}
    assert rows[key]["thumb"] is None and rows[key]["image"] == f"images/{key}.png"
    assert all(row["thumb"] for k, row in rows.items() if k != key)
    assert (
        outside.read_bytes() == b"not yours"
        and (old_gallery / THUMBS_DIR / thumbnail_names(key)[0]).is_symlink()
    )
    model = str(Path(__file__).parent / "data" / "compat-vit")
    opened = maco_cli("explain", model, "--classes", "1", "--out", str(old_gallery), *CLI_QUICK)
    assert opened.returncode == 0, opened.stderr
    assert f"thumbs/{thumbnail_names(key)[0]}" in opened.stderr  # reported by the next writer, kept


def test_thumbs_as_a_plain_file_or_a_link_is_one_line(old_gallery, maco_cli, tmp_path):
    (old_gallery / THUMBS_DIR).write_text("a file")
    for command in (["gallery", "html"], ["gallery", "show"], ["gallery", "repair"]):
        _refused(maco_cli(*command, str(old_gallery)), "'thumbs'", "is a file, not a folder")
    (old_gallery / THUMBS_DIR).unlink()
    (tmp_path / "shared-thumbs").mkdir()
    (old_gallery / THUMBS_DIR).symlink_to(tmp_path / "shared-thumbs")
    _refused(maco_cli("gallery", "html", str(old_gallery)), "'thumbs'", "is a symbolic link")
    assert list((tmp_path / "shared-thumbs").iterdir()) == []  # nothing written through the link


def test_thumbnails_of_rows_no_longer_listed_are_removed(old_gallery, maco_cli):
    assert maco_cli("gallery", "html", str(old_gallery)).returncode == 0
    manifest = json.loads((old_gallery / "manifest.json").read_text())
    dropped = manifest["shards"].pop()
    (old_gallery / "manifest.json").write_text(json.dumps(manifest))  # as if its shard were unlisted
    (old_gallery / dropped["file"]).unlink()
    assert maco_cli("gallery", "repair", str(old_gallery)).returncode == 0
    left = {p.name for p in (old_gallery / THUMBS_DIR).iterdir()}
    assert left == {
        name for shard in manifest["shards"] for k in shard["keys"] for name in thumbnail_names(k)
    }


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0


def test_pages_are_written_at_a_bounded_share_of_the_run(old_gallery):
    """Batches 1 s apart, each page write 2 s long: with share 0.1 the pages are written after a
    batch only once 18 s passed since the last write (so page writing stays within ~10 % of the
    run), and at the end; with 60 s batches (a real model), after every batch."""
    clock, writes = _Clock(), []

    def write(folder):
        write_pages(folder)
        writes.append(clock.now)
        clock.now += 2.0

    store = GalleryFolder.open(old_gallery, create=False)
    pages = PageWriter(store, clock=lambda: clock.now, write=write)
    wrote = []
    for _ in range(40):
        clock.now += 1.0
        wrote.append(pages.batch_done())
    assert [k for k, w in enumerate(wrote) if w] == [0, 18, 36]  # the first, then every 18 s
    assert pages.finish() and len(writes) == 4  # the batches after the last write
    assert not pages.finish()  # nothing new since
    slow = PageWriter(store, clock=lambda: clock.now, write=write)
    for _ in range(3):
        clock.now += 60.0
        assert slow.batch_done()
    assert not slow.finish()  # the last batch's write left them current
    assert len(writes) == 7


def test_a_killed_run_leaves_a_usable_page_after_the_rerun(tiny_zoo, tmp_path):
    out = tmp_path / "g"
    run = ["explain", str(tiny_zoo["resnet"].path), "--classes", "0", "1", "2", "3", "--batch-size", "2"]
    run += ["--steps", "2", "--canvas", "32", "--quiet", "--out", str(out)]
    killed = subprocess_cli(*run, env={KILL_ENV: "after-manifest:2", "OMP_NUM_THREADS": "1"})
    assert killed.returncode == -9  # killed after its second batch was listed
    again = subprocess_cli(*run, env={"OMP_NUM_THREADS": "1"})
    assert again.returncode == 0, again.stderr
    rows = _page_rows(out)
    keys = [item.key for item in maco_hub.load_gallery(out)]
    assert [row["record"]["key"] for row in rows] == keys and len(keys) == 4
    assert all((out / row["thumb"]).is_file() and (out / row["thumb_transparent"]).is_file() for row in rows)
    with Image.open(out / rows[0]["thumb"]) as thumb:
        assert max(thumb.size) <= PAGE_SIDE
