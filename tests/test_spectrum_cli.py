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

from maco_hub.spectra.loading import load_spectrum
from maco_hub.spectra.spectrum import Spectrum

ROOT = Path(__file__).resolve().parents[1]


def _run(
    *args: str, env: dict | None = None, cwd: Path = ROOT, timeout: float = 120
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "maco_hub.cli", "spectrum", *args],
        cwd=cwd,
        env={**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _one_error(result: subprocess.CompletedProcess, *named: str) -> str:
    """The one ``error:`` line of a run that exited with 2, checked to name every ``named``."""
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and all(n in errors[0] for n in named), result.stderr
    return errors[0]


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
    code = (
        "import sys; from maco_hub.cli.commands import _parser; "
        "_parser().parse_args(['spectrum', 'estimate', '--folder', 'x', '--out', 'y']); "
        "print(sorted(m for m in ('torch', 'numpy', 'PIL', 'huggingface_hub', 'datasets', 'skimage')"
        " if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
    )
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
    result = _run(
        "estimate",
        "--folder",
        str(noise_folder),
        "--count",
        "3",
        "--resolution",
        "64",
        "--out",
        str(out),
        "--push",
        repo_id,
        "--name",
        "photos.safetensors",
        env=online_hub.client_env(),
    )
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

    shown = _run(
        "show", repo_id, "--name", "photos.safetensors", "--revision", commit, env=online_hub.client_env()
    )
    assert shown.returncode == 0, shown.stderr
    assert saved.sha256 in shown.stdout and commit in shown.stdout and "3x64x33" in shown.stdout
    quiet = _run("show", repo_id, "--name", "photos.safetensors", "--quiet", env=online_hub.client_env())
    assert quiet.returncode == 0 and quiet.stderr == ""  # no HTTP request lines of the Hub client


def test_estimate_push_only_writes_nothing_locally(online_hub, noise_folder: Path, tmp_path: Path) -> None:
    work = tmp_path / "cwd"
    work.mkdir()
    repo_id = online_hub.new_repo_id("cli-spectrum")
    result = _run(
        "estimate",
        "--folder",
        str(noise_folder),
        "--resolution",
        "32",
        "--push",
        repo_id,
        "--revision",
        "photos",
        "--quiet",
        env=online_hub.client_env(),
        cwd=work,
    )
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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "--out FILE, --push REPO_ID"),
        (["--out", "x.safetensors", "--revision", "v1"], "--dataset-revision"),
        (["--out", "x.safetensors", "--scales", "0.5,2"], "scales=[0.5, 2.0]"),
        (["--out", "x.safetensors", "--count", "0"], "count=0"),
        (["--push", "me/spectrum", "--name", "spectrum.bin"], "'spectrum.bin'"),
    ],
)
def test_estimate_usage_errors(
    args: list[str], message: str, noise_folder: Path, tmp_path: Path, maco_cli, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = maco_cli("spectrum", "estimate", "--folder", str(noise_folder), *args)
    assert result.returncode == 2 and message in result.stderr
    assert not (tmp_path / "x.safetensors").exists()


@pytest.mark.slow
def test_script_reproduces_the_shipped_default(tmp_path: Path) -> None:
    pytest.importorskip("skimage")
    out = tmp_path / "default.safetensors"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "estimate_spectrum.py"),
            "--builtin-photos",
            "--out",
            str(out),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    made, shipped = Spectrum.load(out), load_spectrum()
    if made.metadata["photos"] != shipped.metadata["photos"]:
        pytest.skip("photo packages differ from the versions the default was made with")
    assert made.sha256 == shipped.sha256


# ------------------------------------------------------------------------- hostile inputs (issue 14)


def _bomb_png(path: Path, side: int = 30_000) -> Path:
    """A 1x1 PNG whose header claims side x side pixels (over PIL's bomb limit), CRC fixed."""
    import io
    import struct
    import zlib

    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    header = b"IHDR" + struct.pack(">II", side, side) + bytes(data[24:29])
    data[12:33] = header + struct.pack(">I", zlib.crc32(header))
    path.write_bytes(bytes(data))
    return path


def _hostile_files(folder: Path) -> list[str]:
    """Files named like images that are none: a FIFO, junk, a folder, EPS bytes, a broken link,
    a decompression bomb. Returns the names the reader must report as skipped."""
    os.mkfifo(folder / "pipe.png")
    (folder / "junk.png").write_bytes(bytes(range(256)) * 8)
    (folder / "folder.png").mkdir()
    (folder / "eps.png").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nshowpage\n")
    (folder / "broken.png").symlink_to(folder / "nowhere.png")
    _bomb_png(folder / "bomb.png")
    return ["junk.png", "eps.png", "bomb.png"]


def test_estimate_folder_skips_fifos_junk_folders_and_bombs(noise_folder: Path, tmp_path: Path) -> None:
    """No hang on the FIFO (timeout), no crash on the rest, no Ghostscript for EPS bytes."""
    skipped = _hostile_files(noise_folder)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    marker = tmp_path / "gs-ran"
    (bin_dir / "gs").write_text(f"#!/bin/sh\ntouch {marker}\n")
    (bin_dir / "gs").chmod(0o755)
    out = tmp_path / "s.safetensors"
    result = _run(
        "estimate",
        "--folder",
        str(noise_folder),
        "--resolution",
        "32",
        "--out",
        str(out),
        env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert Spectrum.load(out).metadata["num_images"] == "4"  # the four real photos
    for name in skipped:
        assert f"{name} skipped" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not marker.exists()


def test_estimate_folder_of_nothing_readable_is_one_error(tmp_path: Path) -> None:
    only_specials = tmp_path / "specials"
    only_specials.mkdir()
    os.mkfifo(only_specials / "pipe.png")
    (only_specials / "folder.png").mkdir()
    out = tmp_path / "s.safetensors"
    _one_error(
        _run("estimate", "--folder", str(only_specials), "--out", str(out), timeout=60), "holds no image file"
    )
    only_junk = tmp_path / "junk"
    only_junk.mkdir()
    _hostile_files(only_junk)
    _one_error(_run("estimate", "--folder", str(only_junk), "--out", str(out), timeout=60), "No usable image")
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--resolution", "100000"], ("resolution=100000", "8 to 8192")),
        (["--resolution", "4"], ("resolution=4",)),
        (["--seed", "-1"], ("seed=-1", "0 to 4294967295")),
        (["--crops-per-scale", "100000000", "--augment"], ("crops_per_scale=100000000", "1 to 1000")),
        (["--buffer-size", "0"], ("buffer_size=0",)),
    ],
)
def test_estimate_limits_are_one_error_and_write_nothing(
    args: list[str], named: tuple[str, ...], noise_folder: Path, tmp_path: Path, maco_cli
) -> None:
    out = tmp_path / "s.safetensors"
    command = ("spectrum", "estimate", "--folder", str(noise_folder), *args, "--out", str(out))
    _one_error(maco_cli(*command), *named)
    assert not out.exists()


def test_estimate_too_big_for_the_memory_left_is_refused_before_allocating(
    noise_folder: Path, tmp_path: Path, maco_cli, monkeypatch
) -> None:
    from maco_hub.spectra import estimation

    monkeypatch.setattr(estimation, "memory_available", lambda: 2**30)  # 1 GiB free
    out = tmp_path / "s.safetensors"
    error = _one_error(
        maco_cli(
            "spectrum", "estimate", "--folder", str(noise_folder), "--resolution", "8192", "--out", str(out)
        ),
        "resolution=8192",
        "8.0 GiB",
        "1.0 GiB",
    )
    assert "use resolution=2896 or less" in error
    assert not out.exists()
    assert (
        maco_cli(
            "spectrum", "estimate", "--folder", str(noise_folder), "--resolution", "64", "--out", str(out)
        ).returncode
        == 0
    )  # what fits still runs
