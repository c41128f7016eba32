"""load_model on tiny checkpoints of every supported family, from folders and a hub cache."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_models import BUILDERS, LABELS, MEAN, STD, cache_repo, loaded

import maco_hub
from maco_hub.errors import (
    ClassNotFoundError,
    ConfigError,
    ModelLoadError,
    NoClassifierHeadError,
    NotAVisionModelError,
)
from maco_hub.models.loader import LoadedModel, folder_fingerprint, load_model
from maco_hub.models.preprocessing import IMAGENET_MEAN, Preprocessing


def _copy(tiny_zoo, family: str, dest: Path) -> Path:
    shutil.copytree(tiny_zoo[family].path, dest)
    return dest


def _edit_config(folder: Path, **changes) -> None:
    path = folder / "config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


@pytest.mark.parametrize("family", list(BUILDERS))
def test_loads_every_family_with_checkpoint_preprocessing(tiny_zoo, family):
    tiny = tiny_zoo[family]
    model = loaded(family)
    assert isinstance(model, LoadedModel)
    assert model.has_classifier is tiny.has_classifier
    assert model.preprocessing.mean == MEAN and model.preprocessing.std == STD
    assert model.preprocessing.size == tiny.size
    assert model.model_id == tiny.path.name  # portable: no absolute path
    assert model.revision == folder_fingerprint(tiny.path) and model.revision.startswith("local-")
    assert not model.module.training
    assert not any(p.requires_grad for p in model.module.parameters())
    assert all(p.dtype == torch.float32 for p in model.module.parameters())
    if tiny.has_classifier:
        assert model.id2label == dict(enumerate(LABELS))
        pixels = torch.rand(3, 3, *tiny.size)
        logits = model.logits(model.forward(pixels))
        assert logits.shape == (3, len(LABELS))
    else:
        assert model.id2label is None
        with pytest.raises(NoClassifierHeadError, match="backbone"):
            model.resolve_class(0)


def test_dual_model_keeps_the_vision_tower(tiny_zoo):
    model = loaded("clip")
    assert type(model.module).__name__ == "CLIPVisionModel"
    assert not any(name.startswith("text_model") for name, _ in model.module.named_modules())
    assert model.family == "clip_vision_model"


def test_classifier_checkpoint_without_head_weights_is_a_backbone(tiny_zoo, tmp_path, caplog):
    folder = _copy(tiny_zoo, "vit_backbone", tmp_path / "vit")
    _edit_config(folder, architectures=["ViTForImageClassification"])
    with caplog.at_level(logging.WARNING, logger="maco_hub.models.loader"):
        model = load_model(folder)
    assert not model.has_classifier and model.id2label is None
    assert type(model.module).__name__ == "ViTModel"
    assert "no trained classification head" in caplog.text
    reference = load_model(tiny_zoo["vit_backbone"].path).module.state_dict()
    weights = model.module.state_dict()
    key = "layers.0.attention.q_proj.weight"
    assert torch.equal(weights[key], reference[key])


@pytest.mark.parametrize(
    ("name", "index"),
    [
        ("tabby cat", 0),
        ("Tabby-Cat", 0),
        ("tabby, tabby cat", 0),
        ("TIGER  cat", 1),
        ("egyptian_cat", 2),
        (3, 3),
        ("3", 3),
    ],
)
def test_resolve_class(tiny_zoo, name, index):
    assert loaded("vit").resolve_class(name) == index


def test_resolve_class_errors(tiny_zoo):
    model = loaded("vit")
    with pytest.raises(ClassNotFoundError, match="tabby") as info:
        model.resolve_class("tabby kat")
    assert "0 'tabby, tabby cat'" in str(info.value)
    with pytest.raises(ClassNotFoundError, match="ambiguous"):
        model.resolve_class("crane")
    with pytest.raises(ClassNotFoundError, match=r"0\.\.5"):
        model.resolve_class(len(LABELS))
    with pytest.raises(ClassNotFoundError):
        model.resolve_class(-1)


def test_loads_by_repo_id_from_the_hub_cache(tiny_zoo, tmp_path):
    commit = cache_repo(tmp_path, "tiny-org/tiny-vit", tiny_zoo["vit"].path)
    model = load_model("tiny-org/tiny-vit", cache_dir=tmp_path)
    assert model.model_id == "tiny-org/tiny-vit"
    assert model.revision == commit and len(commit) == 40
    assert model.has_classifier and model.preprocessing.mean == MEAN
    assert (tmp_path / "models--tiny-org--tiny-vit" / "refs" / "main").read_text() == commit


def test_alias_resolves_to_the_cached_classifier(tiny_zoo, hf_cache, caplog):
    commit = cache_repo(hf_cache, "google/vit-base-patch16-224", tiny_zoo["vit"].path)
    with caplog.at_level(logging.INFO, logger="maco_hub.models.loader"):
        model = load_model("google/vit-base")
    assert model.model_id == "google/vit-base-patch16-224"
    assert model.revision == commit
    assert "google/vit-base-patch16-224" in caplog.text
    assert model.resolve_class("tabby cat") == 0


def test_unknown_repo_id(tmp_path):
    with pytest.raises(ModelLoadError, match="no-such-org/no-such-model") as info:
        load_model("no-such-org/no-such-model", cache_dir=tmp_path)
    message = str(info.value)
    assert "HF_HUB_OFFLINE" in message and "local folder" in message
    assert info.value.__cause__ is not None


def test_text_model_is_rejected(tiny_zoo):
    bert = tiny_zoo["vit"].path.parent / "bert"
    with pytest.raises(NotAVisionModelError, match="'bert'") as info:
        load_model(bert)
    assert "Supported" in str(info.value)


def test_remote_code_needs_trust(tiny_zoo, tmp_path):
    folder = _copy(tiny_zoo, "vit", tmp_path / "vit")
    _edit_config(folder, auto_map={"AutoConfig": "configuration_x.XConfig"})
    with pytest.raises(ModelLoadError, match="trust_remote_code=True"):
        load_model(folder)


def test_unknown_model_type(tiny_zoo, tmp_path):
    folder = _copy(tiny_zoo, "vit", tmp_path / "vit")
    _edit_config(folder, model_type="no_such_type")
    with pytest.raises(ModelLoadError, match=r"'no_such_type'.*Upgrade transformers"):
        load_model(folder)


def test_missing_processor_falls_back_to_imagenet(tiny_zoo, tmp_path, caplog):
    folder = _copy(tiny_zoo, "vit", tmp_path / "vit")
    (folder / "preprocessor_config.json").unlink()
    with caplog.at_level(logging.WARNING, logger="maco_hub.models.loader"):
        model = load_model(folder)
    assert model.preprocessing.mean == IMAGENET_MEAN
    assert model.preprocessing.size == (32, 32)  # config.image_size
    assert "ImageNet mean/std" in caplog.text


def test_timm_style_pretrained_cfg(tiny_zoo, tmp_path):
    folder = _copy(tiny_zoo, "vit", tmp_path / "vit")
    (folder / "preprocessor_config.json").unlink()
    _edit_config(
        folder,
        pretrained_cfg={
            "mean": [0.1, 0.2, 0.3],
            "std": [0.3, 0.3, 0.3],
            "input_size": [3, 32, 32],
            "interpolation": "bilinear",
        },
    )
    prep = load_model(folder).preprocessing
    assert prep.mean == (0.1, 0.2, 0.3) and prep.std == (0.3, 0.3, 0.3)


def test_explicit_preprocessing_overrides_the_checkpoint(tiny_zoo):
    prep = Preprocessing(mean=(0.5,) * 3, std=(0.5,) * 3, size=32)
    model = load_model(tiny_zoo["vit"].path, preprocessing=prep, dtype=torch.float64)
    assert model.preprocessing == prep
    assert all(p.dtype == torch.float64 for p in model.module.parameters())


def test_plain_module_needs_preprocessing():
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 10)
    )
    with pytest.raises(ConfigError, match="preprocessing"):
        load_model(net)
    model = load_model(net, preprocessing={"mean": (0.5,) * 3, "std": (0.5,) * 3, "size": 16})
    assert model.has_classifier and model.id2label is None and model.revision is None
    assert model.model_id == "<Sequential module>" and model.family == "Sequential"
    assert model.resolve_class(9) == 9 and model.num_classes == 10
    with pytest.raises(ClassNotFoundError, match=r"0\.\.9"):
        model.resolve_class(10)
    with pytest.raises(ClassNotFoundError, match="no class names"):
        model.resolve_class("dog")
    backbone = load_model(net[:2], preprocessing={"mean": (0.5,) * 3, "std": (0.5,) * 3, "size": 16})
    assert not backbone.has_classifier


class _Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


@pytest.mark.parametrize("damage", ["truncated", "pickle"])
def test_unreadable_weights_name_the_file_and_the_fix(tiny_zoo, tmp_path, capfd, damage):
    folder = _copy(tiny_zoo, "vit", tmp_path / "vit")
    weights = folder / "model.safetensors"
    if damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:1000])
        bad = weights
    else:
        weights.unlink()
        bad = folder / "pytorch_model.bin"
        torch.save({"vit.embeddings.cls_token": _Payload()}, bad)
    with pytest.raises(ModelLoadError) as info:
        load_model(folder)
    message = str(info.value)
    assert str(bad) in message and "save_pretrained" in message and "\n" not in message
    assert "this must never run" not in capfd.readouterr().out


def test_missing_local_folder_is_not_called_a_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    (tmp_path / "a-file").write_text("x")
    for name in ("./no-such-model", str(tmp_path / "gone"), "../x/y", "models/mine", "a-file"):
        with pytest.raises(ModelLoadError, match="does not exist") as info:
            load_model(name)
        assert repr(name) in str(info.value) and "spelling" not in str(info.value), name


def test_local_folder_id_is_its_name_not_its_path(tiny_zoo, tmp_path):
    folder = _copy(tiny_zoo, "resnet", tmp_path / "deep" / "my-resnet")
    model = load_model(folder)
    assert model.model_id == "my-resnet" and model.source is None
    assert model.revision == load_model(tiny_zoo["resnet"].path).revision  # same weights, same revision


def test_folders_of_one_name_with_other_weights_get_other_revisions(tiny_zoo, tmp_path):
    first = _copy(tiny_zoo, "resnet", tmp_path / "a" / "net")
    second = _copy(tiny_zoo, "vit", tmp_path / "b" / "net")
    assert load_model(first).model_id == load_model(second).model_id == "net"
    assert folder_fingerprint(first) != folder_fingerprint(second)
    keys = [
        maco_hub.explain(folder, classes=[0], steps=1, canvas=32, progress=False)[0].key
        for folder in (first, second)
    ]
    assert keys[0] != keys[1]


@pytest.mark.slow  # huggingface_hub retries a refused connection for about 26 s
def test_unreachable_hub_is_not_blamed_on_spelling(online_hub, tmp_path):
    with online_hub.unreachable(), pytest.raises(ModelLoadError, match="Could not reach") as info:
        load_model("some-org/some-model", cache_dir=tmp_path)
    assert "spelling" not in str(info.value)


def _edit_processor(folder: Path, **changes) -> None:
    path = folder / "preprocessor_config.json"
    processor = json.loads(path.read_text())
    processor.update(changes)
    path.write_text(json.dumps(processor))  # NaN and Infinity as json writes (and reads) them


def test_head_size_mismatch_names_the_config_not_a_damaged_file(tiny_zoo, tmp_path):
    folder = _copy(tiny_zoo, "vit", tmp_path / "vit")
    _edit_config(
        folder, id2label={str(i): f"c{i}" for i in range(10)}, label2id={f"c{i}": i for i in range(10)}
    )
    with pytest.raises(ModelLoadError) as info:
        load_model(folder)
    message = str(info.value)
    assert "'classifier.weight' is (6, 32) in the weights, (10, 32) by the config" in message
    assert "num_labels (10 classes)" in message and "fix config.json" in message
    assert "truncated" not in message and "\n" not in message


def test_a_huge_processor_size_is_blamed_on_the_processor_config(tiny_zoo, tmp_path, maco_cli):
    folder = _copy(tiny_zoo, "vit", tmp_path / "vit")
    _edit_processor(folder, size={"height": 100000, "width": 100000})
    result = maco_cli(
        "explain",
        str(folder),
        "--classes",
        "0",
        "--steps",
        "1",
        "--canvas",
        "48",
        "--out",
        str(tmp_path / "g"),
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert "preprocessor_config.json" in errors[0] and "(100000, 100000)" in errors[0]
    assert "from 8 to 4096" in errors[0] and "canvas" not in errors[0]
    assert not (tmp_path / "g").exists()


@pytest.mark.parametrize(
    ("key", "value", "shown"),
    [
        ("image_mean", [float("nan")] * 3, "mean=[nan, nan, nan] must be finite"),
        ("image_std", float("inf"), "std=inf must be finite"),
        ("image_std", [1e300, 1.0, 1.0], "std=[1e+300, 1.0, 1.0] must be finite numbers between"),
        ("image_mean", "0.5", "mean='0.5' must be 3 numbers"),
        ("image_mean", [True, 0.5, 0.5], "mean=[True, 0.5, 0.5] must be 3 numbers"),
        ("image_mean", [0.5, 0.5], "mean=[0.5, 0.5] must be 3 numbers"),
        ("image_std", [0.0, 0.2, 0.2], "std=(0.0, 0.2, 0.2) must be positive"),
        ("image_std", [1e-320] * 3, "must be positive (at least 1e-06)"),
        ("size", {"height": "big", "width": 32}, "size=('big', 32) must be"),
        ("size", 32.5, "size=32.5 must be"),
        ("size", {"height": 4, "width": 4}, "size=(4, 4) must be"),
    ],
)
def test_unusable_processor_values_are_one_error_naming_the_file(tiny_zoo, tmp_path, key, value, shown):
    folder = _copy(tiny_zoo, "vit", tmp_path / "vit")
    _edit_processor(folder, **{key: value})
    with pytest.raises(ModelLoadError) as info:
        load_model(folder)
    message = str(info.value)
    assert "preprocessor_config.json" in message and shown in message, message
    assert "pass preprocessing=" in message and "\n" not in message


def test_unusable_timm_values_name_config_json(tiny_zoo, tmp_path):
    folder = _copy(tiny_zoo, "vit", tmp_path / "vit")
    (folder / "preprocessor_config.json").unlink()
    _edit_config(
        folder, pretrained_cfg={"mean": [0.5] * 3, "std": [float("inf")] * 3, "input_size": [3, 32, 32]}
    )
    with pytest.raises(ModelLoadError, match=r"config\.json \(pretrained_cfg\).*std=\[inf"):
        load_model(folder)


def test_odd_resample_settings_fall_back_to_bicubic(tiny_zoo, tmp_path):
    folder = _copy(tiny_zoo, "vit", tmp_path / "vit")
    for resample, name in (
        ([1], "bicubic"),
        ("<b>lanczos</b>", "bicubic"),
        ("BILINEAR", "bilinear"),
        (1, "lanczos"),
    ):
        _edit_processor(folder, resample=resample)
        assert load_model(folder).preprocessing.resample == name


def test_preprocessing_checks_its_values():
    prep = Preprocessing(mean=0.5, std=np.float32(0.25), size=np.int64(16))
    assert prep.mean == (0.5,) * 3 and prep.std == (0.25,) * 3 and prep.size == (16, 16)
    for bad in (
        {"mean": (float("nan"),) * 3},
        {"std": (0.5, 0.5, -0.5)},
        {"mean": "abc"},
        {"size": (16, True)},
        {"size": 5000},
        {"std": None},
    ):
        with pytest.raises(ConfigError, match="Preprocessing"):
            Preprocessing(**{"mean": (0.5,) * 3, "std": (0.5,) * 3, "size": 16, **bad})
