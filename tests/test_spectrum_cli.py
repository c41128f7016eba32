"""``maco-hub spectrum estimate | push | show`` as a user runs them: subprocesses, loopback Hub."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from maco_hub.spectra.spectrum import Spectrum, load_spectrum

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, env: dict | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "maco_hub.cli", "spectrum", *args], cwd=cwd,
                          env={**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def noise_folder(tmp_path: Path) -> Path:
    """Four random-noise PNGs of assorted sizes (enough to exercise estimation quickly)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for index, size in enumerate([(48, 56), (60, 44), (52, 52), (70, 40)]):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / f"{index}.png")
    return folder


def test_parser_imports_nothing_heavy() -> None:
    code = ("import sys; from maco_hub.cli.commands import _parser; "
            "_parser().parse_args(['spectrum', 'estimate', '--folder', 'x', '--out', 'y']); "
            "print(sorted(m for m in ('torch', 'numpy', 'PIL', 'huggingface_hub', 'datasets', 'skimage')"
            " if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    assert result.stdout.strip() == "[]"


def test_show_default() -> None:
    result = _run("show")
    assert result.returncode == 0, result.stderr
    default = load_spectrum()
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["key", "value"]
    assert f"sha256 {default.sha256}" in [" ".join(line.split()) for line in lines]
    assert "3x512x257" in result.stdout
    assert "maco_hub/default" in result.stdout
    assert "builtin-photos" in result.stdout  # the metadata table


def test_estimate_folder_and_push_end_to_end(online_hub, noise_folder: Path, tmp_path: Path) -> None:
    repo_id = online_hub.new_repo_id("cli-spectrum")
    out = tmp_path / "out" / "s.safetensors"
    result = _run("estimate", "--folder", str(noise_folder), "--count", "3", "--resolution", "64",
                  "--out", str(out), "--push", repo_id, "--name", "photos.safetensors",
                  env=online_hub.client_env())
    assert result.returncode == 0, result.stderr
    saved = Spectrum.load(out)
    assert (saved.metadata["num_images"], saved.metadata["resolution"]) == ("3", "64x64")
    assert saved.metadata["dataset"] == "folder:photos"
    commit = online_hub.commit_ids(repo_id)[0]
    assert commit in result.stdout and saved.sha256 in result.stdout
    pushed = load_spectrum(repo_id, name="photos.safetensors")
    assert torch.equal(pushed.magnitude, saved.magnitude)
    assert pushed.metadata["revision"] == commit
    assert "README.md" in online_hub.list_files(repo_id)

    shown = _run("show", repo_id, "--name", "photos.safetensors", "--revision", commit,
                 env=online_hub.client_env())
    assert shown.returncode == 0, shown.stderr
    assert saved.sha256 in shown.stdout and commit in shown.stdout and "3x64x33" in shown.stdout
    quiet = _run("show", repo_id, "--name", "photos.safetensors", "--quiet", env=online_hub.client_env())
    assert quiet.returncode == 0 and quiet.stderr == ""  # no HTTP request lines of the Hub client


def test_estimate_push_only_writes_nothing_locally(online_hub, noise_folder: Path, tmp_path: Path) -> None:
    work = tmp_path / "cwd"
    work.mkdir()
    repo_id = online_hub.new_repo_id("cli-spectrum")
    result = _run("estimate", "--folder", str(noise_folder), "--resolution", "32", "--push", repo_id,
                  "--revision", "photos", "--quiet", env=online_hub.client_env(), cwd=work)
    assert result.returncode == 0, result.stderr
    assert list(work.iterdir()) == []
    assert load_spectrum(repo_id, revision="photos").metadata["num_images"] == "4"
    assert "spectrum.safetensors" not in online_hub.list_files(repo_id)  # main untouched


def test_push_file_and_bad_repo_id(online_hub, tmp_path: Path) -> None:
    file = load_spectrum().resized(16, 16).save(tmp_path / "tiny.safetensors")
    repo_id = online_hub.new_repo_id("cli-spectrum")
    pushed = _run("push", str(file), repo_id, "--private", env=online_hub.client_env())
    assert pushed.returncode == 0, pushed.stderr
    assert load_spectrum(repo_id).sha256 == Spectrum.load(file).sha256

    bad = _run("push", str(file), "not a repo", env=online_hub.client_env())
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr and bad.stdout == ""
    errors = [line for line in bad.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "'not a repo'" in errors[0], bad.stderr


@pytest.mark.parametrize(("args", "message"), [
    ([], "--out FILE, --push REPO_ID"),
    (["--out", "x.safetensors", "--revision", "v1"], "--dataset-revision"),
    (["--out", "x.safetensors", "--scales", "0.5,2"], "scales=[0.5, 2.0]"),
    (["--out", "x.safetensors", "--count", "0"], "count=0"),
    (["--push", "me/spectrum", "--name", "spectrum.bin"], "'spectrum.bin'"),
])
def test_estimate_usage_errors(args: list[str], message: str, noise_folder: Path, tmp_path: Path,
                               maco_cli, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = maco_cli("spectrum", "estimate", "--folder", str(noise_folder), *args)
    assert result.returncode == 2 and message in result.stderr
    assert not (tmp_path / "x.safetensors").exists()


@pytest.mark.slow
def test_script_reproduces_the_shipped_default(tmp_path: Path) -> None:
    pytest.importorskip("skimage")
    out = tmp_path / "default.safetensors"
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "estimate_spectrum.py"),
                             "--builtin-photos", "--out", str(out)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    made, shipped = Spectrum.load(out), load_spectrum()
    if made.metadata["photos"] != shipped.metadata["photos"]:
        pytest.skip("photo packages differ from the versions the default was made with")
    assert made.sha256 == shipped.sha256
