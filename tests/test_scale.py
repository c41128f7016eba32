"""Every class in one command, the headline call with nothing chosen, and torchrun ranks that
build the same gallery as one process (gloo on the CPU)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import QUICK
from tiny_models import LABELS, loaded

import maco_hub
from maco_hub.errors import ConfigError, NoClassifierHeadError

RUN = ["--steps", "2", "--canvas", "32", "--batch-size", "2", "--device", "cpu", "--quiet"]


def _rows(gallery) -> list[tuple]:
    return sorted((item.key, item.seed, item.class_id, item.label) for item in gallery)


def test_all_classes_in_label_order(tiny_zoo):
    gallery = maco_hub.explain(loaded("resnet"), classes="all", batch_size=4, **QUICK)
    assert [item.class_id for item in gallery] == list(range(len(LABELS)))
    assert [item.label for item in gallery] == list(LABELS)


def test_all_classes_of_a_backbone_is_a_clear_error(tiny_zoo):
    with pytest.raises(NoClassifierHeadError, match="backbone"):
        maco_hub.explain(loaded("dinov2"), classes="all", **QUICK)


def test_a_single_class_string_is_not_read_as_its_letters(tiny_zoo):
    with pytest.raises(ConfigError, match=r"\['espresso'\]"):
        maco_hub.explain(loaded("resnet"), classes="espresso", **QUICK)


def test_nothing_chosen_visualizes_the_documented_defaults(tiny_zoo, caplog):
    with caplog.at_level(logging.INFO, logger="maco_hub.choices"):
        classifier = maco_hub.explain(loaded("resnet"), **QUICK)
        backbone = maco_hub.explain(loaded("dinov2"), **QUICK)
    assert {item.kind for item in classifier} == {"class"} and len(classifier) == len(LABELS)
    assert {item.kind for item in backbone} == {"channel"} and len({i.unit for i in backbone}) > 1
    assert caplog.text.count("Nothing chosen to visualize; using the defaults") == 2


def test_cli_classes_all_is_resumable(tiny_zoo, tmp_path, maco_cli):
    out = tmp_path / "all"
    first = maco_cli("explain", str(tiny_zoo["resnet"].path), "--classes", "all", "--out", str(out), *RUN)
    assert first.returncode == 0, first.stderr
    manifest = (out / "manifest.json").read_bytes()
    again = maco_cli("explain", str(tiny_zoo["resnet"].path), "--classes", "all", "--out", str(out), *RUN)
    assert again.returncode == 0 and f"gallery of {len(LABELS)} rows" in again.stdout
    assert (out / "manifest.json").read_bytes() == manifest  # nothing was pending: nothing added
    assert sorted(item.class_id for item in maco_hub.load_gallery(out)) == list(range(len(LABELS)))


def _torchrun(model: Path, out: Path, *, env: dict | None = None) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "maco_hub",
        "explain",
        str(model),
        "--classes",
        "all",
        "--out",
        str(out),
        *RUN[:-1],
    ]  # not --quiet: the ranks log their shares
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )


@pytest.mark.slow
def test_torchrun_ranks_build_the_same_gallery_as_one_process(tiny_zoo, tmp_path):
    model = tiny_zoo["resnet"].path
    single = maco_hub.explain(
        str(model),
        classes="all",
        out=tmp_path / "one",
        batch_size=2,
        steps=2,
        canvas=32,
        device="cpu",
        progress=False,
    )
    job = _torchrun(model, tmp_path / "two")
    assert job.returncode == 0, job.stderr[-3000:]
    spread = maco_hub.load_gallery(tmp_path / "two")
    assert len(spread) == len(LABELS)
    assert _rows(spread) == _rows(single)
    assert "rank 1 of 2" in job.stderr  # both ranks took a share
    assert (tmp_path / "two" / "index.html").is_file() and (tmp_path / "two" / "README.md").is_file()
    assert job.stdout.count(f"gallery of {len(LABELS)} rows") == 1  # rank 0 reports alone


@pytest.mark.slow
def test_a_killed_rank_is_finished_by_rerunning_the_same_command(tiny_zoo, tmp_path):
    model, out = tiny_zoo["resnet"].path, tmp_path / "killed"
    killed = _torchrun(
        model, out, env={"MACO_HUB_TEST_KILL_AFTER": "after-shard", "MACO_HUB_TEST_KILL_RANK": "1"}
    )
    assert killed.returncode != 0
    partial = len(maco_hub.load_gallery(out))
    assert partial < len(LABELS)
    finished = _torchrun(model, out)
    assert finished.returncode == 0, finished.stderr[-3000:]
    complete = maco_hub.load_gallery(out)
    assert sorted(item.class_id for item in complete) == list(range(len(LABELS)))


def test_rank_shares_are_disjoint_balanced_and_keep_the_given_order():
    from maco_hub.distributed import World, my_share

    items = list("abcdefg")
    keys = ["k5", "k1", "k6", "k0", "k3", "k2", "k4"]
    shares = [my_share(items, keys, World(rank=r, size=3)) for r in range(3)]
    assert sorted(x for share in shares for x in share) == items
    assert sorted(len(share) for share in shares) == [2, 2, 3]
    assert all(share == sorted(share, key=items.index) for share in shares)
    assert my_share(items, keys, World()) == items


def test_thread_count_is_chosen_or_given_and_recorded_outside_the_key(tiny_zoo):
    model = loaded("resnet")
    auto = maco_hub.explain(model, classes=[0], **QUICK)[0]
    one = maco_hub.explain(model, classes=[0], threads=1, **QUICK)[0]
    assert 1 <= auto.record.engine_settings["threads"] <= (os.cpu_count() or 1)
    assert one.record.engine_settings["threads"] == 1
    assert auto.key == maco_hub.explain(model, classes=[0], **QUICK)[0].key  # auto: same key
    with pytest.raises(ConfigError, match="threads=0"):
        maco_hub.explain(model, classes=[0], threads=0, **QUICK)


def test_a_canvas_that_cannot_fit_is_refused_before_any_work(tiny_zoo, tmp_path):
    with pytest.raises(ConfigError, match="canvas"):
        maco_hub.explain(loaded("resnet"), classes=[0], out=tmp_path / "g", **{**QUICK, "canvas": 60000})
    assert not (tmp_path / "g").exists()
