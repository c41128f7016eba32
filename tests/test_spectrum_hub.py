"""Spectra on the Hub: push_spectrum and load_spectrum against the loopback Hub, real clients."""

from __future__ import annotations

import ast
import re
import time
from pathlib import Path

import pytest
import torch

from maco_hub.errors import ConfigError, HubError, SpectrumError
from maco_hub.spectra.hub import push_spectrum
from maco_hub.spectra.loading import load_spectrum
from maco_hub.spectra.spectrum import Spectrum


@pytest.fixture(scope="module")
def small() -> Spectrum:
    """The shipped spectrum resized to 32x32: small, and with provenance metadata to carry."""
    return load_spectrum().resized(32, 32)


def _other(spectrum: Spectrum, factor: float) -> Spectrum:
    keep = {k: v for k, v in spectrum.metadata.items() if k not in ("sha256", "source", "revision")}
    return Spectrum(spectrum.magnitude * factor, {**keep, "note": f"scaled by {factor}"})


def _commit(url: str) -> str:
    commit = url.rstrip("/").rsplit("/", 1)[-1]
    assert len(commit) == 40, url
    return commit


def test_push_object_and_file_load_back_by_commit(online_hub, small: Spectrum, tmp_path: Path) -> None:
    repo_id = online_hub.new_repo_id("spectrum")
    url = push_spectrum(small, repo_id, name="small.safetensors")
    assert repo_id in url
    commit = _commit(url)
    assert commit == online_hub.commit_ids(repo_id)[0]
    loaded = load_spectrum(repo_id, name="small.safetensors", revision=commit)
    assert torch.equal(loaded.magnitude, small.magnitude)
    assert loaded.sha256 == small.sha256
    assert (loaded.metadata["source"], loaded.metadata["revision"]) == (repo_id, commit)
    assert loaded.reference() == {
        "id": repo_id,
        "name": "small.safetensors",
        "revision": commit,
        "sha256": small.metadata["source_sha256"],
    }
    assert online_hub.is_lfs(repo_id, "small.safetensors")

    other = _other(small, 2.0)
    path = other.save(tmp_path / "other.safetensors")
    file_commit = _commit(push_spectrum(path, repo_id))  # a file, default name
    from_file = load_spectrum(repo_id, revision=file_commit)
    assert torch.equal(from_file.magnitude, other.magnitude)
    assert from_file.sha256 == other.sha256 != small.sha256
    assert from_file.metadata["note"] == "scaled by 2.0"
    # the local path a file was loaded from is not published
    assert str(tmp_path).encode() not in online_hub.read_file(repo_id, "spectrum.safetensors")
    assert online_hub.list_files(repo_id) == [
        ".gitattributes",
        "README.md",
        "small.safetensors",
        "spectrum.safetensors",
    ]


def test_second_push_keeps_the_first_by_revision(online_hub, small: Spectrum) -> None:
    repo_id = online_hub.new_repo_id("spectrum")
    first = _commit(push_spectrum(small, repo_id))
    second_spectrum = _other(small, 0.5)
    second = _commit(push_spectrum(second_spectrum, repo_id, commit_message="Rescale"))
    assert first != second
    assert load_spectrum(repo_id, revision=first).sha256 == small.sha256
    latest = load_spectrum(repo_id)
    assert latest.sha256 == second_spectrum.sha256
    assert latest.metadata["revision"] == second
    assert online_hub.commit_ids(repo_id)[:2] == [second, first]


def test_push_to_a_branch(online_hub, small: Spectrum) -> None:
    repo_id = online_hub.new_repo_id("spectrum")
    push_spectrum(small, repo_id)
    push_spectrum(_other(small, 3.0), repo_id, revision="v2")
    assert load_spectrum(repo_id, revision="v2").metadata["note"] == "scaled by 3.0"
    assert load_spectrum(repo_id).sha256 == small.sha256  # main untouched


def test_cached_spectrum_loads_offline(online_hub, small: Spectrum) -> None:
    from huggingface_hub import constants

    repo_id = online_hub.new_repo_id("spectrum")
    commit = _commit(push_spectrum(small, repo_id))
    assert load_spectrum(repo_id).sha256 == small.sha256  # downloads into the cache
    # online_hub puts the suite's offline mode back when the test ends (a monkeypatch undone after
    # that would restore the online value and leave every later test online)
    constants.HF_HUB_OFFLINE = True
    with online_hub.unreachable():
        for revision in (None, commit):
            cached = load_spectrum(repo_id, revision=revision)
            assert torch.equal(cached.magnitude, small.magnitude)
            assert cached.metadata["revision"] == commit
        with pytest.raises(SpectrumError, match="offline"):  # never downloaded: clear error
            load_spectrum(repo_id, name="missing.safetensors")


def test_card_records_provenance(online_hub, small: Spectrum) -> None:
    from huggingface_hub import ModelCard

    repo_id = online_hub.new_repo_id("spectrum")
    noted = small._with(note="{{ not jinja }} a|b\nnext line")
    push_spectrum(noted, repo_id, name="s32.safetensors")
    card = ModelCard.load(repo_id)  # through the client: front matter must parse
    assert card.data.library_name == "maco_hub"
    assert "maco" in card.data.tags
    text = card.text
    for key in ("sha256", "resized_from", "source_sha256", "preprocessing", "dataset"):
        assert f"| `{key}` | {small.metadata[key]}"[:60] in text, key
    assert f'load_spectrum("{repo_id}", name="s32.safetensors")' in text
    assert "(3, 32, 17)" in text
    assert r"| `note` | {{ not jinja }} a\|b next line |" in text  # one table row, taken literally
    assert "| `source` |" not in text  # where it was loaded from locally is not provenance


def test_malformed_repo_id_and_name(hub, small: Spectrum) -> None:
    before = len(hub.requests)
    for bad in ("no-namespace", "a/b/c", "me/bad name", "me/"):
        with pytest.raises(ConfigError, match=re.escape(repr(bad))):
            push_spectrum(small, bad)
    for bad in ("notes.txt", "../up.safetensors", "/abs.safetensors", "a//b.safetensors"):
        with pytest.raises(ConfigError, match=re.escape(repr(bad))):
            push_spectrum(small, "me/spectrum", name=bad)
    with pytest.raises(SpectrumError, match=re.escape("missing.safetensors")):
        push_spectrum("missing.safetensors", "me/spectrum")
    assert len(hub.requests) == before  # refused before any network call


def test_write_denied_is_a_permission_error(online_hub, small: Spectrum) -> None:
    repo_id = online_hub.new_repo_id("spectrum")
    online_hub.deny_write(repo_id)
    with pytest.raises(HubError, match="permission") as caught:
        push_spectrum(small, repo_id)
    assert repo_id in str(caught.value)
    assert "403" in str(caught.value)


def test_unreachable_hub_fails_fast(online_hub, small: Spectrum) -> None:
    repo_id = online_hub.new_repo_id("spectrum")
    start = time.monotonic()
    with online_hub.unreachable(), pytest.raises(HubError, match="unreachable") as caught:
        push_spectrum(small, repo_id)
    assert time.monotonic() - start < 10  # repo creation is not retried
    assert repo_id in str(caught.value)


def test_failed_commit_then_push_again(online_hub, small: Spectrum) -> None:
    repo_id = online_hub.new_repo_id("spectrum")
    online_hub.fail_next(1, method="POST", path_contains="/commit/")
    with pytest.raises(HubError, match="500"):
        push_spectrum(small, repo_id)
    assert "spectrum.safetensors" not in online_hub.list_files(repo_id)
    push_spectrum(small, repo_id)
    assert load_spectrum(repo_id).sha256 == small.sha256


def test_tampered_file_on_the_hub_fails_its_checksum(online_hub, small: Spectrum) -> None:
    from huggingface_hub import HfApi
    from safetensors.torch import save

    repo_id = online_hub.new_repo_id("spectrum")
    metadata = {k: v for k, v in small.metadata.items() if k not in ("source", "revision")}
    tampered = small.magnitude.clone()
    tampered[0, 1, 1] += 1.0  # edited after its sha256 was recorded
    api = HfApi()
    api.create_repo(repo_id)
    api.upload_file(
        path_or_fileobj=save({"magnitude": tampered}, metadata=metadata),
        path_in_repo="spectrum.safetensors",
        repo_id=repo_id,
    )
    with pytest.raises(SpectrumError, match="checksum") as caught:
        load_spectrum(repo_id)
    assert small.sha256 in str(caught.value)


# ------------------------------------------------------------------ hostile metadata (issue 14)

HOSTILE = {
    "k`<img src=x onerror=alert(1)>`": "key with markup",
    "note": "[click](https://evil.example) <script>alert(2)</script> **bold** `code` | pipe",
    "multi\nline key": "value\n| injected | row |\n---",
}


def test_card_escapes_every_metadata_key_and_value(online_hub, small: Spectrum) -> None:
    from huggingface_hub import ModelCard

    repo_id = online_hub.new_repo_id("spectrum")
    push_spectrum(small._with(**HOSTILE), repo_id, name="spectra/hostile_v1.safetensors")
    text = online_hub.read_file(repo_id, "README.md").decode()
    assert ModelCard.load(repo_id).data.library_name == "maco_hub"  # front matter intact
    for raw in ("<img", "<script", "[click](", "**bold**", "`code`", "k`<"):
        assert raw not in text, raw
    assert r"| k\`&lt;img src=x onerror=alert(1)&gt;\` | key with markup |" in text
    assert (
        r"| `note` | \[click\](https://evil.example) &lt;script&gt;alert(2)&lt;/script&gt; "
        r"\*\*bold\*\* \`code\` \| pipe |"
    ) in text
    assert r"| multi line key | value \| injected \| row \| --- |" in text
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    table = len(small.metadata) - sum(k in small.metadata for k in ("source", "revision", "filename"))
    assert len(rows) == 1 + table + len(HOSTILE)  # the header, then one row per key
    assert "`spectra/hostile_v1.safetensors` holds" in text


def test_card_escapes_a_name_and_repo_id_it_is_handed(small: Spectrum) -> None:
    """spectrum_card escapes even values push_spectrum refuses first (defence in depth)."""
    from maco_hub.spectra.card import spectrum_card

    name = "a`<img src=x onerror=alert(1)>`.safetensors\n```\n<script>"
    repo_id = 'me/x"); import os; ("'
    text = spectrum_card(small, repo_id, name)
    assert "<img" not in text and "<script" not in text and "a`<" not in text
    assert r"a\`&lt;img src=x onerror=alert(1)&gt;\`.safetensors \`\`\` &lt;script&gt; holds" in text
    call = next(line for line in text.splitlines() if "load_spectrum(" in line)
    parsed = ast.parse(call).body[0].value  # the snippet is one line of valid Python ...
    assert ast.literal_eval(parsed.args[0]) == repo_id  # ... whose strings are the values
    assert ast.literal_eval(parsed.keywords[0].value) == name


@pytest.mark.parametrize(
    "name",
    [
        "a`<img src=x onerror=alert(1)>`.safetensors",
        "a b.safetensors",
        "x\u202egpj.safetensors",
        "-rf.safetensors",
        ".hidden.safetensors",
    ],
)
def test_names_with_markup_are_refused_before_any_request(
    hub, small: Spectrum, maco_cli, tmp_path, name: str
) -> None:
    before = len(hub.requests)
    with pytest.raises(ConfigError, match=re.escape(repr(name))):
        push_spectrum(small, "me/spectrum", name=name)
    file = small.save(tmp_path / "s.safetensors")
    result = maco_cli("spectrum", "push", str(file), "me/spectrum", f"--name={name}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and repr(name) in errors[0], result.stderr
    assert len(hub.requests) == before
