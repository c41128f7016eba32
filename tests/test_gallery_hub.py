"""Galleries on a Hub-compatible server on 127.0.0.1, through the real huggingface_hub/datasets."""

from __future__ import annotations

import os
import subprocess
import sys

import datasets
import helpers
import numpy as np
import pytest
from tiny_models import loaded

import maco_hub
from maco_hub.errors import ConfigError, HubError

QUICK = {**helpers.QUICK, "steps": 2}
COLUMNS = {
    "image",
    "alpha",
    "model_id",
    "model_revision",
    "objective",
    "kind",
    "layer",
    "unit",
    "class_id",
    "label",
    "score",
    "seed",
    "steps",
    "canvas",
    "spectrum_id",
    "spectrum_revision",
    "spectrum_sha256",
    "maco_hub_version",
    "config",
}


@pytest.fixture(scope="module")
def small_gallery(tiny_zoo):
    return maco_hub.explain(
        loaded("vit"), classes=[0, 1], layer=tiny_zoo["vit"].middle_layer, channels=[3], **QUICK
    )


def assert_matches(rows, gallery) -> None:
    assert len(rows) == len(gallery)
    for row, item in zip(rows, gallery, strict=True):
        assert np.array_equal(np.asarray(row["image"].convert("RGB")), np.asarray(item.image))
        assert np.array_equal(np.asarray(row["alpha"]), np.asarray(item.alpha))
        assert (row["objective"], row["class_id"], row["unit"], row["seed"]) == (
            item.objective,
            item.class_id,
            item.unit,
            item.seed,
        )


def test_pushed_gallery_loads_with_datasets_by_repo_id(online_hub, small_gallery):
    repo_id = online_hub.new_repo_id("gallery")
    maco_hub.push_gallery(small_gallery, repo_id)
    rows = datasets.load_dataset(repo_id, split="train")
    assert COLUMNS <= set(rows.column_names)
    assert isinstance(rows.features["image"], datasets.Image)
    assert_matches(rows, small_gallery)
    files = set(online_hub.list_files(repo_id, repo_type="dataset"))
    shards = [name for name in files if name.startswith("data/train-") and name.endswith(".parquet")]
    assert {"README.md", "index.html", "manifest.json"} <= files and len(shards) == 1
    assert ".maco_hub.lock" not in files
    assert online_hub.is_lfs(repo_id, shards[0], repo_type="dataset")
    card = online_hub.read_file(repo_id, "README.md", repo_type="dataset").decode()
    assert "feature-visualization" in card and repo_id in card
    for request in online_hub.requests:  # the token travels in headers, never into a file
        assert os.environ["HF_TOKEN"] not in request.path
    assert all(
        os.environ["HF_TOKEN"].encode() not in online_hub.read_file(repo_id, name, repo_type="dataset")
        for name in files
    )
    loaded_back = maco_hub.load_gallery(repo_id)
    assert [item.record for item in loaded_back] == [item.record for item in small_gallery]


def test_append_and_revisions(online_hub, small_gallery):
    repo_id = online_hub.new_repo_id("append")
    from huggingface_hub import HfApi

    maco_hub.push_gallery(small_gallery, repo_id)
    first_commit = HfApi().repo_info(repo_id, repo_type="dataset").sha
    more = maco_hub.explain(loaded("vit"), classes=[1, 2], **QUICK)  # class 1 is already there
    maco_hub.push_gallery(more, repo_id)
    rows = datasets.load_dataset(repo_id, split="train")
    assert sorted(zip(rows["kind"], rows["class_id"], rows["unit"], strict=True), key=str) == sorted(
        [("class", 0, None), ("class", 1, None), ("channel", None, 3), ("class", 2, None)], key=str
    )
    assert len(set(rows["key"])) == 4
    old = maco_hub.load_gallery(repo_id, revision=first_commit)
    assert len(old) == 3
    maco_hub.push_gallery(small_gallery, repo_id)  # pushing the same rows again changes nothing
    assert len(datasets.load_dataset(repo_id, split="train")) == 4


def test_failed_push_leaves_local_gallery_and_retry_completes(online_hub, small_gallery, tmp_path):
    repo_id = online_hub.new_repo_id("retry")
    folder = maco_hub.save_gallery(small_gallery, tmp_path / "local")
    before = sorted((p.relative_to(folder), p.read_bytes()) for p in folder.rglob("*") if p.is_file())
    online_hub.fail_next(1, method="POST", path_contains="/commit/")
    with pytest.raises(HubError, match="HTTP 500"):
        maco_hub.push_gallery(maco_hub.load_gallery(folder), repo_id)
    after = sorted((p.relative_to(folder), p.read_bytes()) for p in folder.rglob("*") if p.is_file())
    assert after == before
    maco_hub.push_gallery(maco_hub.load_gallery(folder), repo_id)
    assert_matches(datasets.load_dataset(repo_id, split="train"), small_gallery)


def test_bad_repos_give_clear_errors(online_hub, small_gallery):
    with pytest.raises(ConfigError, match="'not a repo!!'"):
        maco_hub.push_gallery(small_gallery, "not a repo!!")
    denied = online_hub.new_repo_id("denied")
    online_hub.deny_write(denied, repo_type="dataset")
    with pytest.raises(HubError, match="permission denied"):
        maco_hub.push_gallery(small_gallery, denied)
    model_repo = online_hub.new_repo_id("a-model")
    from huggingface_hub import HfApi

    HfApi().create_repo(model_repo, repo_type="model")
    with pytest.raises(HubError, match="a model repo of that name exists"):
        maco_hub.load_gallery(model_repo)
    with online_hub.unreachable(), pytest.raises(HubError, match="unreachable"):
        maco_hub.push_gallery(small_gallery, online_hub.new_repo_id("down"))


def test_cli_explain_push(online_hub, tiny_zoo, tmp_path):
    repo_id = online_hub.new_repo_id("cli")
    command = [
        sys.executable,
        "-m",
        "maco_hub.cli",
        "explain",
        str(tiny_zoo["resnet"].path),
        "--classes",
        "espresso",
        "--steps",
        "2",
        "--canvas",
        "48",
        "--out",
        str(tmp_path / "g"),
        "--push",
        repo_id,
        "--quiet",
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**os.environ, **online_hub.client_env()}
    )
    assert result.returncode == 0, result.stderr
    rows = datasets.load_dataset(repo_id, split="train")
    assert rows["label"] == ["espresso"]


@pytest.mark.skipif(
    not os.environ.get("MACO_HUB_LIVE_REPO"),
    reason="live Hub test: set MACO_HUB_LIVE_REPO "
    "(a dataset repo id you can write to), a real HF_TOKEN and network access",
)
def test_live_hub_round_trip(small_gallery, monkeypatch):  # pragma: no cover - opt-in
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "https://huggingface.co")
    repo_id = os.environ["MACO_HUB_LIVE_REPO"]
    maco_hub.push_gallery(small_gallery, repo_id, private=True)
    assert len(maco_hub.load_gallery(repo_id)) >= len(small_gallery)


def test_damaged_hub_gallery_is_refused_on_load_show_and_push(online_hub, small_gallery, tmp_path):
    import json
    import shutil

    from huggingface_hub import HfApi

    from maco_hub.errors import GalleryError

    folder = maco_hub.save_gallery(small_gallery[:1], tmp_path / "g")
    maco_hub.save_gallery(small_gallery[1:], folder)
    shards = json.loads((folder / "manifest.json").read_text())["shards"]
    shutil.copyfile(folder / shards[1]["file"], folder / shards[0]["file"])  # one shard replaced
    repo_id = online_hub.new_repo_id("damaged")
    api = HfApi()
    api.create_repo(repo_id, repo_type="dataset")
    api.upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=folder)
    commits = len(api.list_repo_commits(repo_id, repo_type="dataset"))
    with pytest.raises(GalleryError, match=f"{shards[0]['file']}.*sha256.*{repo_id}.*is damaged"):
        maco_hub.load_gallery(repo_id)
    result = subprocess.run(
        [sys.executable, "-m", "maco_hub.cli", "gallery", "show", repo_id],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **online_hub.client_env()},
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert shards[0]["file"] in result.stderr and "is damaged" in result.stderr
    with pytest.raises(GalleryError, match="is damaged"):
        maco_hub.push_gallery(small_gallery, repo_id)
    assert len(api.list_repo_commits(repo_id, repo_type="dataset")) == commits
