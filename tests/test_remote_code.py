"""No code from a checkpoint runs unless the user trusts remote code, and transformers never asks.

Each hostile checkpoint carries a module that writes a marker file when imported: the marker must
never appear, also with "y" on stdin (transformers' prompt would take it as a yes).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import subprocess_cli
from tiny_models import build_efficientnet_lite, cache_repo

from maco_hub.errors import ConfigError, ModelLoadError
from maco_hub.models.loader import load_model

EVIL_CLASS = "evil_code.EvilProcessor"


@pytest.fixture(scope="module")
def lite_folder(tmp_path_factory) -> Path:
    """A tiny EfficientNet-Lite: transformers maps its model type to no image processor, so an
    auto_map in its processor config is what transformers would load (after asking)."""
    return build_efficientnet_lite(tmp_path_factory.mktemp("lite") / "lite")


def _evil_copy(source: Path, folder: Path, marker: Path) -> Path:
    """``source`` with a processor config whose auto_map names a module that writes ``marker``."""
    shutil.copytree(source, folder)
    path = folder / "preprocessor_config.json"
    processor = json.loads(path.read_text())
    processor.pop("image_processor_type")
    processor["auto_map"] = {"AutoImageProcessor": EVIL_CLASS}
    path.write_text(json.dumps(processor))
    (folder / "evil_code.py").write_text(
        f"open({str(marker)!r}, 'w').write('code ran')\n"
        "from transformers import BitImageProcessorPil as EvilProcessor\n"
    )
    return folder


def _one_error(result: subprocess.CompletedProcess, *named: str) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "[y/N]" not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert all(word in errors[0] for word in named), errors[0]
    return errors[0]


@pytest.mark.parametrize(
    "command", [["labels"], ["layers"], ["explain", "--classes", "0", "--steps", "1", "--canvas", "32"]]
)
def test_processor_code_never_runs_through_the_cli_even_with_yes_on_stdin(lite_folder, tmp_path, command):
    marker = tmp_path / "MARKER"
    folder = _evil_copy(lite_folder, tmp_path / "model", marker)
    extra = ["--out", str(tmp_path / "gallery")] if command[0] == "explain" else []
    result = subprocess_cli(
        command[0], str(folder), *command[1:], *extra, input="y\n", timeout=120, cwd=tmp_path
    )
    _one_error(result, "preprocessor_config.json", "auto_map", "--trust-remote-code")
    assert not marker.exists()
    assert not (tmp_path / "gallery").exists()


@pytest.mark.parametrize(
    ("filename", "content", "named"),
    [
        ("preprocessor_config.json", {"auto_map": {"AutoImageProcessor": EVIL_CLASS}}, "auto_map"),
        (
            "processor_config.json",
            {"image_processor": {"auto_map": {"AutoImageProcessor": EVIL_CLASS}}},
            "image_processor.auto_map",
        ),
        ("tokenizer_config.json", {"auto_map": {"AutoTokenizer": [EVIL_CLASS, None]}}, "auto_map"),
        ("video_preprocessor_config.json", {"auto_map": {"AutoVideoProcessor": EVIL_CLASS}}, "auto_map"),
        ("config.json", {"auto_map": {"AutoModelForImageClassification": EVIL_CLASS}}, "auto_map"),
        (
            "config.json",
            {"custom_pipelines": {"image-classification": {"impl": EVIL_CLASS}}},
            "custom_pipelines",
        ),
        ("config.json", {"attn_implementation": "kernels-community/flash-attn"}, "kernel"),
        ("config.json", {"_attn_implementation": "flash_attention_2"}, "kernel"),
    ],
)
def test_every_remote_code_pointer_in_any_config_file_is_refused(
    tiny_zoo, tmp_path, filename, content, named
):
    folder = shutil.copytree(tiny_zoo["vit"].path, tmp_path / "vit")
    path = folder / filename
    path.write_text(json.dumps({**(json.loads(path.read_text()) if path.exists() else {}), **content}))
    with pytest.raises(ModelLoadError) as info:
        load_model(folder)
    message = str(info.value)
    assert filename in message and named in message and "trust_remote_code=True" in message
    assert "\n" not in message


def test_a_config_file_that_is_no_regular_file_is_refused(tiny_zoo, tmp_path):
    folder = shutil.copytree(tiny_zoo["vit"].path, tmp_path / "vit")
    (folder / "preprocessor_config.json").unlink()
    subprocess.run(["mkfifo", str(folder / "preprocessor_config.json")], check=True)
    script = f"import maco_hub; maco_hub.load_model({str(folder)!r})"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "ModelLoadError" in result.stderr and "not a regular file" in result.stderr


def test_a_checkpoint_in_the_hub_cache_is_checked_too(lite_folder, tmp_path, hf_cache):
    marker = tmp_path / "MARKER"
    cache_repo(hf_cache, "evil-org/lite", _evil_copy(lite_folder, tmp_path / "model", marker))
    with pytest.raises(ModelLoadError, match=r"'evil-org/lite' ships its own code \(preprocessor"):
        load_model("evil-org/lite")
    assert not marker.exists()


def test_processor_loading_passes_trust_explicitly_so_nothing_asks(lite_folder, tmp_path):
    """Behind the file check, the processor is loaded with trust_remote_code=False, not None."""
    marker = tmp_path / "MARKER"
    folder = _evil_copy(lite_folder, tmp_path / "model", marker)
    script = textwrap.dedent(f"""
        import maco_hub.models.efficientnet_lite.modeling
        from transformers import AutoConfig
        from maco_hub.models.preprocessing import checkpoint_preprocessing
        config = AutoConfig.from_pretrained({str(folder)!r})
        print(checkpoint_preprocessing({str(folder)!r}, {{}}, config).mean)
    """)
    result = subprocess.run(
        [sys.executable, "-c", script], input="y\n", capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(0.4, 0.5, 0.6)" and "[y/N]" not in result.stdout
    assert not marker.exists()


def test_regenerate_of_a_row_naming_such_a_hub_model_runs_no_code(lite_folder, tiny_zoo, tmp_path, hf_cache):
    marker = tmp_path / "MARKER"
    commit = cache_repo(hf_cache, "evil-org/lite2", _evil_copy(lite_folder, tmp_path / "model", marker))
    script = textwrap.dedent(f"""
        import dataclasses, maco_hub
        from maco_hub.errors import MacoHubError
        row = maco_hub.explain({str(tiny_zoo["resnet"].path)!r}, classes=[0], steps=1, canvas=32,
                               progress=False, device="cpu")[0]
        record = dataclasses.replace(row.record, model_id="evil-org/lite2", model_revision={commit!r})
        try:
            maco_hub.regenerate(dataclasses.replace(row, record=record))
        except MacoHubError as error:
            print(type(error).__name__, error)
    """)
    result = subprocess.run(
        [sys.executable, "-c", script], input="y\n", capture_output=True, text=True, timeout=120
    )
    assert result.stdout.startswith("ModelLoadError Model 'evil-org/lite2' ships its own code"), (
        result.stdout + result.stderr
    )
    assert not marker.exists()


def test_trusting_remote_code_runs_it(lite_folder, tmp_path):
    marker = tmp_path / "MARKER"
    folder = _evil_copy(lite_folder, tmp_path / "model", marker)
    loaded = load_model(folder, trust_remote_code=True)
    assert marker.read_text() == "code ran" and loaded.preprocessing.mean == (0.4, 0.5, 0.6)


def test_trust_remote_code_must_be_a_bool(tiny_zoo):
    with pytest.raises(ConfigError, match="trust_remote_code='no' must be True or False"):
        load_model(tiny_zoo["vit"].path, trust_remote_code="no")
