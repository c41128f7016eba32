"""The maco-hub command line, run as users run it (a subprocess of the installed entry point)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from PIL import Image


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "maco_hub.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=os.environ.copy())


def test_help_is_fast_and_lists_the_commands():
    start = time.perf_counter()
    result = run_cli("--help")
    elapsed = time.perf_counter() - start
    assert result.returncode == 0
    for command in ("explain", "demo", "layers", "gallery", "spectrum"):
        assert command in result.stdout
    assert elapsed < 5, f"--help took {elapsed:.1f}s"


def test_import_stays_light():
    heavy = "('torch', 'transformers', 'datasets')"
    code = f"import sys, maco_hub; print(sorted(m for m in {heavy} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_layers_prints_a_table(tiny_zoo):
    tiny = tiny_zoo["vit"]
    result = run_cli("layers", str(tiny.path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["layer", "kind", "shape", "units"]
    assert any(line.split()[0] == tiny.middle_layer and line.split()[1] == "tokens" for line in lines[1:])


def test_explain_writes_a_gallery_folder(tiny_zoo, tmp_path):
    tiny = tiny_zoo["resnet"]
    out = tmp_path / "gallery"
    result = run_cli("explain", str(tiny.path), "--objective", "class:espresso", "class:1",
                     f"{tiny.middle_layer}:0", "--steps", "2", "--canvas", "48",
                     "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    assert {"README.md", "index.html", "manifest.json", "data", "images"} <= {p.name for p in out.iterdir()}
    pngs = sorted(p.name for p in (out / "images").glob("*.png"))
    assert len(pngs) == 6
    assert Image.open(out / "images" / pngs[0]).size == (48, 48)
    assert "class 3 'espresso'" in result.stdout
    shown = run_cli("gallery", "show", str(out))
    assert shown.returncode == 0 and len(shown.stdout.splitlines()) == 4
    assert "espresso" in shown.stdout


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--layer", "no.such.layer", "--channels", "0"], "no.such.layer"),
        (["--classes", "espreso"], "espreso"),
        (["--channels", "1"], "needs layer"),
        (["--classes", "-1"], "Class index -1 is out of range"),
        (["--classes", "cat"], "'tabby, tabby cat'"),
        (["--classes", "1", "--objective", "class:2"], "not both"),
        (["--objective", "resnet.encoder.stages.0.layers.0:999"], "999"),
    ],
)
def test_errors_are_one_clear_line_with_exit_code_2(tiny_zoo, tmp_path, args, named):
    result = run_cli("explain", str(tiny_zoo["resnet"].path), *args, "--steps", "1",
                     "--canvas", "48", "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and named in result.stderr
    assert "hint:" in result.stderr
    assert not (tmp_path / "out").exists()


def test_debug_shows_the_traceback(tiny_zoo):
    result = run_cli("explain", str(tiny_zoo["resnet"].path), "--classes", "espreso", "--debug")
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_unknown_model_is_a_clear_error(tmp_path):
    result = run_cli("layers", "no-such-org/no-such-model")
    assert result.returncode == 2 and "no-such-org/no-such-model" in result.stderr
