"""The loopback Hub server (tests/hub_server.py) driven by the real huggingface_hub and datasets clients."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from hub_server import DUMMY_TOKEN, HubServer
from PIL import Image


@pytest.fixture
def api(online_hub: HubServer):
    from huggingface_hub import HfApi

    return HfApi()


def _repo(online_hub: HubServer, api, name: str, repo_type: str = "model") -> str:
    repo_id = online_hub.new_repo_id(name)
    api.create_repo(repo_id, repo_type=repo_type)
    return repo_id


def test_create_repo_model_and_dataset_with_exist_ok(online_hub, api):
    from huggingface_hub.errors import HfHubHTTPError

    repo_id = online_hub.new_repo_id("both")
    model_url = api.create_repo(repo_id)
    dataset_url = api.create_repo(repo_id, repo_type="dataset")
    assert (model_url.repo_id, model_url.repo_type) == (repo_id, "model")
    assert (dataset_url.repo_id, dataset_url.repo_type) == (repo_id, "dataset")
    assert api.create_repo(repo_id, repo_type="dataset", exist_ok=True).repo_id == repo_id
    with pytest.raises(HfHubHTTPError) as info:
        api.create_repo(repo_id)
    assert info.value.response.status_code == 409
    # A name without a namespace lands in the user's namespace, as on the Hub.
    bare = online_hub.new_repo_id("bare").split("/")[1]
    assert api.create_repo(bare).repo_id == f"maco-tester/{bare}"
    private_id = online_hub.new_repo_id("private")
    api.create_repo(private_id, private=True)
    assert api.repo_info(private_id).private
    assert api.whoami()["name"] == "maco-tester"
    assert (
        api.repo_info(repo_id, repo_type="dataset").sha
        == online_hub.commit_ids(repo_id, repo_type="dataset")[0]
    )
    assert {r.token for r in online_hub.requests} == {DUMMY_TOKEN}


def test_upload_text_and_binary_files_then_download(online_hub, api, tmp_path):
    from huggingface_hub import hf_hub_download

    repo_id = _repo(online_hub, api, "files")
    weights = np.arange(4096, dtype=np.float32).tobytes()
    api.upload_file(path_or_fileobj=b"# Card\n", path_in_repo="README.md", repo_id=repo_id)
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "weights.safetensors").write_bytes(weights)
    (folder / "notes.txt").write_text("plain text")
    images = {f"img/{i}.png": bytes([137, 80, 78, 71, 0, i]) * 50 for i in range(8)}  # parallel LFS uploads
    for path, content in images.items():
        (folder / path).parent.mkdir(exist_ok=True)
        (folder / path).write_bytes(content)
    info = api.upload_folder(folder_path=folder, repo_id=repo_id, commit_message="Add folder")

    files = [".gitattributes", "README.md", *sorted(images), "notes.txt", "sub/weights.safetensors"]
    assert api.list_repo_files(repo_id) == files
    assert all(online_hub.read_file(repo_id, p) == content for p, content in images.items())
    assert online_hub.is_lfs(repo_id, "sub/weights.safetensors")
    assert not online_hub.is_lfs(repo_id, "notes.txt")
    assert api.repo_info(repo_id).sha == info.oid
    assert len(info.oid) == 40
    assert Path(hf_hub_download(repo_id, "sub/weights.safetensors")).read_bytes() == weights
    assert Path(hf_hub_download(repo_id, "README.md")).read_text() == "# Card\n"
    assert api.file_exists(repo_id, "notes.txt")
    assert not api.file_exists(repo_id, "missing.txt")
    siblings = {s.rfilename: s for s in api.repo_info(repo_id, files_metadata=True).siblings}
    assert siblings["sub/weights.safetensors"].lfs.size == len(weights)
    assert siblings["notes.txt"].lfs is None
    assert [c.title for c in api.list_repo_commits(repo_id)] == [
        "Add folder",
        "Upload README.md with huggingface_hub",
        "initial commit",
    ]


def test_old_revision_stays_downloadable_after_a_new_commit(online_hub, api):
    from huggingface_hub import hf_hub_download, snapshot_download

    repo_id = _repo(online_hub, api, "history", "dataset")
    first = api.upload_file(
        path_or_fileobj=b"v1", path_in_repo="data.txt", repo_id=repo_id, repo_type="dataset"
    )
    second = api.upload_file(
        path_or_fileobj=b"v2", path_in_repo="data.txt", repo_id=repo_id, repo_type="dataset"
    )
    assert first.oid != second.oid

    def read(revision: str | None) -> bytes:
        return Path(hf_hub_download(repo_id, "data.txt", repo_type="dataset", revision=revision)).read_bytes()

    assert (read(None), read(first.oid), read(second.oid)) == (b"v2", b"v1", b"v2")
    old = Path(snapshot_download(repo_id, repo_type="dataset", revision=first.oid))
    assert old.name == first.oid
    assert sorted(p.name for p in old.iterdir()) == [".gitattributes", "data.txt"]
    assert (old / "data.txt").read_bytes() == b"v1"
    api.create_tag(repo_id, tag="v1", revision=first.oid, repo_type="dataset")
    assert read("v1") == b"v1"


def test_create_commit_with_deletions(online_hub, api):
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    repo_id = _repo(online_hub, api, "deletions")
    adds = [CommitOperationAdd(p, p.encode()) for p in ("keep.txt", "drop.txt", "old/a.txt", "old/b/c.txt")]
    before = api.create_commit(repo_id, adds, commit_message="add")
    deletes = [CommitOperationDelete("drop.txt"), CommitOperationDelete("old/")]
    api.create_commit(repo_id, [*deletes, CommitOperationAdd("new.txt", b"new")], commit_message="prune")
    assert api.list_repo_files(repo_id) == [".gitattributes", "keep.txt", "new.txt"]
    assert "old/b/c.txt" in api.list_repo_files(repo_id, revision=before.oid)


def test_tree_listing_follows_pages(online_hub, api, monkeypatch):
    from huggingface_hub import CommitOperationAdd, HfFileSystem

    repo_id = _repo(online_hub, api, "pages", "dataset")
    paths = [f"data/part-{i:02d}.txt" for i in range(7)] + ["top.txt"]
    api.create_commit(
        repo_id,
        [CommitOperationAdd(p, p.encode()) for p in paths],
        repo_type="dataset",
        commit_message="many files",
    )
    monkeypatch.setattr(online_hub, "tree_page_size", 3)
    online_hub.clear_requests()
    listed = [e.path for e in api.list_repo_tree(repo_id, repo_type="dataset", recursive=True)]
    assert sorted(listed) == sorted(["data", ".gitattributes", *paths])
    assert sum("/tree/" in r.path for r in online_hub.requests) == 4  # 10 entries, 3 a page
    fs = HfFileSystem()
    assert sorted(fs.glob(f"datasets/{repo_id}/data/*.txt")) == [
        f"datasets/{repo_id}/{p}" for p in paths[:-1]
    ]
    with fs.open(f"datasets/{repo_id}/data/part-03.txt", "rb", block_size=4) as handle:
        handle.seek(5)
        assert handle.read(4) == b"part"  # served by Range requests
    assert any(r.status == 206 for r in online_hub.requests)


def test_dataset_with_images_round_trips(online_hub, api):
    import datasets

    rng = np.random.default_rng(0)
    pixels = [rng.integers(0, 256, (8 + i, 6, 3), dtype=np.uint8) for i in range(3)]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("string")})
    rows = {"image": [Image.fromarray(p) for p in pixels], "label": ["a", "b", "c"]}
    repo_id = online_hub.new_repo_id("gallery")
    datasets.Dataset.from_dict(rows, features=features).push_to_hub(repo_id)
    first = api.repo_info(repo_id, repo_type="dataset").sha
    assert any(
        p.endswith(".parquet") and online_hub.is_lfs(repo_id, p, repo_type="dataset")
        for p in online_hub.list_files(repo_id, repo_type="dataset")
    )

    loaded = datasets.load_dataset(repo_id, split="train")
    assert loaded["label"] == ["a", "b", "c"]
    for image, expected in zip(loaded["image"], pixels, strict=True):
        np.testing.assert_array_equal(np.asarray(image), expected)

    datasets.Dataset.from_dict({"image": rows["image"][:1], "label": ["z"]}, features=features).push_to_hub(
        repo_id
    )
    assert datasets.load_dataset(repo_id, split="train")["label"] == ["z"]
    assert datasets.load_dataset(repo_id, split="train", revision=first)["label"] == ["a", "b", "c"]


def test_errors_map_to_the_clients_typed_exceptions(online_hub, api):
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    repo_id = _repo(online_hub, api, "errors")
    with pytest.raises(RepositoryNotFoundError):
        api.repo_info(online_hub.new_repo_id("missing"))
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(online_hub.new_repo_id("missing"), "config.json")
    with pytest.raises(RepositoryNotFoundError):  # exists, but as a model
        api.repo_info(repo_id, repo_type="dataset")
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(repo_id, "missing.json")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(repo_id, ".gitattributes", revision="no-such-branch")

    online_hub.deny_write(repo_id)
    with pytest.raises(HfHubHTTPError) as info:
        api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo_id)
    assert info.value.response.status_code == 403
    assert "rights" in str(info.value)
    assert api.create_repo(repo_id, exist_ok=True).repo_id == repo_id  # exists: the Hub client copes


def test_model_repo_loaded_as_dataset_is_not_found(online_hub, api):
    import datasets

    repo_id = _repo(online_hub, api, "model-only")
    with pytest.raises(datasets.exceptions.DatasetNotFoundError):
        datasets.load_dataset(repo_id, split="train")


def test_injected_commit_failure_then_retry_leaves_one_copy(online_hub, api):
    from huggingface_hub.errors import HfHubHTTPError

    repo_id = _repo(online_hub, api, "retry")
    online_hub.fail_next(1, method="POST", path_contains="/commit/")
    with pytest.raises(HfHubHTTPError) as info:
        api.upload_file(path_or_fileobj=b"\x89PNG\0data", path_in_repo="img.png", repo_id=repo_id)
    assert info.value.response.status_code == 500
    assert api.list_repo_files(repo_id) == [".gitattributes"]
    api.upload_file(path_or_fileobj=b"\x89PNG\0data", path_in_repo="img.png", repo_id=repo_id)
    assert api.list_repo_files(repo_id) == [".gitattributes", "img.png"]
    assert len(online_hub.commit_ids(repo_id)) == 2  # creation + the one successful upload


def test_injected_lfs_upload_failure_is_retried_by_the_client(online_hub, api):
    repo_id = _repo(online_hub, api, "lfs-retry")
    online_hub.fail_next(1, method="PUT", path_contains="/_lfs/", status=503)
    online_hub.clear_requests()
    api.upload_file(path_or_fileobj=b"\0" * 100, path_in_repo="zeros.bin", repo_id=repo_id)  # http_backoff
    assert [r.status for r in online_hub.requests if r.method == "PUT"] == [503, 200]
    assert online_hub.read_file(repo_id, "zeros.bin") == b"\0" * 100


def test_server_down_raises_a_connection_error(online_hub, api):
    import httpx2
    from huggingface_hub import hf_hub_download

    repo_id = _repo(online_hub, api, "down")
    api.upload_file(path_or_fileobj=b"cached", path_in_repo="cached.txt", repo_id=repo_id)
    cached = hf_hub_download(repo_id, "cached.txt")
    with online_hub.unreachable():
        start = time.monotonic()
        with pytest.raises(httpx2.ConnectError):
            api.repo_info(repo_id)
        assert hf_hub_download(repo_id, "cached.txt") == cached  # falls back to the cache
        assert time.monotonic() - start < 5  # neither call retries (a download not cached would, ~23 s)
    assert api.repo_info(repo_id).id == repo_id  # same port again


def test_offline_mode_is_back_after_the_online_fixture(hub):
    import datasets.config
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import OfflineModeIsEnabled

    assert constants.HF_HUB_OFFLINE and datasets.config.HF_HUB_OFFLINE
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    with pytest.raises(OfflineModeIsEnabled):
        HfApi().repo_info("maco-tester/anything")
    assert hub.running and os.environ["HF_ENDPOINT"] == hub.endpoint
