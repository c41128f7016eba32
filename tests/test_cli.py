"""The maco-hub command line: end to end in a subprocess as users run it, and the many error
and listing cases in this process (``maco_cli``), which spares a torch import per case."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from helpers import subprocess_cli as run_cli
from PIL import Image

from maco_hub.errors import ClassNotFoundError


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


def test_layers_prints_a_table(tiny_zoo, maco_cli):
    tiny = tiny_zoo["vit"]
    result = maco_cli("layers", str(tiny.path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["layer", "kind", "shape", "units"]
    assert any(line.split()[0] == tiny.middle_layer and line.split()[1] == "tokens" for line in lines[1:])


def test_explain_writes_a_gallery_folder(tiny_zoo, tmp_path):
    tiny = tiny_zoo["resnet"]
    out = tmp_path / "gallery"
    result = run_cli(
        "explain",
        str(tiny.path),
        "--objective",
        "class:espresso",
        "class:1",
        f"{tiny.middle_layer}:0",
        "--steps",
        "2",
        "--canvas",
        "48",
        "--out",
        str(out),
        "--quiet",
    )
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
def test_errors_are_one_clear_line_with_exit_code_2(tiny_zoo, tmp_path, maco_cli, args, named):
    result = maco_cli(
        "explain",
        str(tiny_zoo["resnet"].path),
        *args,
        "--steps",
        "1",
        "--canvas",
        "48",
        "--out",
        str(tmp_path / "out"),
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and named in errors[0], result.stderr
    assert result.stderr.rstrip().endswith("hint: run again with --debug for the full traceback")
    assert not (tmp_path / "out").exists()


def test_debug_shows_the_traceback(tiny_zoo):
    result = run_cli("--debug", "explain", str(tiny_zoo["resnet"].path), "--classes", "espreso")
    assert result.returncode != 0 and "Traceback" in result.stderr and "ClassNotFoundError" in result.stderr


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_works_before_or_after_the_command(tiny_zoo, maco_cli, where):
    command = ["explain", str(tiny_zoo["resnet"].path), "--classes", "espreso"]
    with pytest.raises(ClassNotFoundError):  # re-raised for the traceback instead of exit code 2
        maco_cli(*(["--debug", *command] if where == "before" else [*command, "--debug"]))
    assert maco_cli(*command).returncode == 2


def test_labels_lists_and_greps_class_names(tiny_zoo, maco_cli):
    every = maco_cli("labels", str(tiny_zoo["vit"].path))
    assert every.returncode == 0, every.stderr
    assert [line.split()[0] for line in every.stdout.splitlines()] == ["index", "0", "1", "2", "3", "4", "5"]
    cats = maco_cli("labels", str(tiny_zoo["vit"].path), "--grep", "CAT")
    assert [line.split()[0] for line in cats.stdout.splitlines()[1:]] == ["0", "1", "2"]
    backbone = maco_cli("labels", str(tiny_zoo["dinov2"].path))
    assert backbone.returncode == 2 and "is a backbone" in backbone.stderr


def test_layers_filters(tiny_zoo, maco_cli):
    path = str(tiny_zoo["vit"].path)
    every = [row.split() for row in maco_cli("layers", path).stdout.splitlines()[1:]]
    some = [
        row.split()
        for row in maco_cli("layers", path, "--grep", "layers.1", "--kind", "tokens").stdout.splitlines()[1:]
    ]
    assert 0 < len(some) < len(every) and all(row in every for row in some)
    assert all("layers.1" in row[0] and row[1] == "tokens" for row in some)
    bad = maco_cli("layers", path, "--kind", "pixels")
    assert bad.returncode == 2 and "'pixels'" in bad.stderr


def test_missing_folder_is_reported_as_a_folder(tmp_path, maco_cli):
    result = maco_cli("layers", str(tmp_path / "no-such-model"))
    assert result.returncode == 2 and "does not exist" in result.stderr
    assert "spelling" not in result.stderr


def test_unknown_model_is_a_clear_error(tmp_path, maco_cli):
    result = maco_cli("layers", "no-such-org/no-such-model")
    assert result.returncode == 2 and "no-such-org/no-such-model" in result.stderr
