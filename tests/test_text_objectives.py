"""Text objectives on tiny CLIP and SigLIP checkpoints: the checkpoint's own towers, the joint space,
algebra, records and keys, hostile prompts and models without a text tower."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import transformers as T
from helpers import QUICK
from tiny_models import TEXT_POSITIONS, cache_repo, loaded

import maco_hub
from maco_hub import objectives as obj
from maco_hub.engine import EngineConfig, optimize
from maco_hub.errors import ConfigError, ModelLoadError, NoTextTowerError
from maco_hub.gallery.folder import GalleryFolder
from maco_hub.models.hooks import capture
from maco_hub.models.joint import joint_space
from maco_hub.objectives.records import objective_from_record, objective_to_record
from maco_hub.objectives.scoring import scoring

TEXT_FAMILIES = ("clip", "siglip")


def _inputs(tiny_path, family: str, prompt: str) -> dict:
    tokenizer = T.AutoTokenizer.from_pretrained(tiny_path)
    padding = {"padding": "max_length", "max_length": TEXT_POSITIONS} if family == "siglip" else {}
    return dict(tokenizer([prompt], return_tensors="pt", **padding))


@pytest.mark.parametrize("family", TEXT_FAMILIES)
def test_embeddings_are_the_checkpoints_own(tiny_zoo, family):
    """Text: the checkpoint's get_text_features, normalized; image: get_image_features of the same
    pixels (CLIP's visual projection applied, SigLIP's pooled output as it is)."""
    tiny = tiny_zoo[family]
    model = loaded(family)
    space = joint_space(model)
    assert space.pooled_layer == {"clip": "post_layernorm", "siglip": "head"}[family]
    full = T.AutoModel.from_pretrained(tiny.path).eval()
    with torch.no_grad():
        text = full.get_text_features(**_inputs(tiny.path, family, "a red car")).pooler_output[0]
        pixels = torch.randn(3, 3, *tiny.size)
        image = full.get_image_features(pixel_values=pixels).pooler_output
        with capture(model, [space.pooled_layer]) as store:
            model.forward(pixels)
            pooled = store.take()[space.pooled_layer]
    torch.testing.assert_close(space.embed_text("a red car"), torch.nn.functional.normalize(text, dim=0))
    torch.testing.assert_close(space.image_embeddings(pooled), image)
    assert not space.embed_text("a red car").requires_grad
    assert space.embed_text("a red car") is space.embed_text("a red car")  # embedded once
    with scoring(model, [obj.Text("a red car")]) as score_fn:
        scores = score_fn(pixels, torch.zeros(3, dtype=torch.long))
    expected = torch.nn.functional.cosine_similarity(image, text[None], dim=-1)
    torch.testing.assert_close(scores, expected)


@pytest.mark.parametrize("family", TEXT_FAMILIES)
def test_the_text_cosine_rises_over_the_run(tiny_zoo, family):
    """Maximizing a prompt raises the cosine of the crops' image embeddings to it; minimizing it
    (the same seed) lowers it: the gradient goes through the projection the right way.

    At phase_std = contrast = 1: at the defaults (2.5 / 2.0) these tiny random CLIP / SigLIP towers
    let one of the two prompts collapse after ~15 steps (README, "Engine defaults")."""
    model = loaded(family)
    red_car, dog = obj.Text("a red car"), obj.Text("a dog on the grass")
    with scoring(model, [red_car, dog, -red_car]) as score_fn:
        result = optimize(
            score_fn,
            model.preprocessing,
            seeds=[0, 1, 0],
            config=EngineConfig(steps=24, canvas=64, phase_std=1.0, contrast=1.0),
            device="cpu",
            progress=False,
        )
    first, last = result.history[:2].mean(dim=0), result.history[-4:].mean(dim=0)
    assert (last[:2] > first[:2] + 0.03).all(), (first, last)
    assert result.scores[0] > -result.scores[2] + 0.1  # whole canvas: maximized above minimized
    assert result.history.abs().max() <= 1.0 + 1e-5  # a cosine


def test_algebra_records_and_keys(tiny_zoo, tmp_path):
    model = loaded("clip")
    mixed = obj.Text("a dog") - obj.Text("a cat") + 0.5 * obj.Channel("encoder.layers.0", 2)
    assert mixed.description == (
        "text 'a dog' (cosine) - text 'a cat' (cosine) + 0.5 × encoder.layers.0 channel 2 "
        "(mean over space or tokens)"
    )
    powered = obj.Text("a dog", cosine_power=2)
    for objective in (mixed, powered, obj.Text("a dog")):
        assert objective_from_record(objective_to_record(objective)) == objective
    out = tmp_path / "gallery"
    gallery = maco_hub.explain(model, objectives=[mixed, powered, obj.Text("a dog")], out=out, **QUICK)
    assert [item.kind for item in gallery] == ["sum", "text", "text"]
    assert gallery[2].label == "a dog" and gallery[2].layer is None
    assert len({item.key for item in gallery}) == 3  # the prompt and the power are in the key
    record = gallery[2].record.objective_record
    assert record == {"type": "Text", "prompt": "a dog", "cosine_power": None}
    again = maco_hub.explain(model, texts=["a dog"], out=out, **QUICK)  # the same row: not run again
    assert len(again) == 3
    assert len(GalleryFolder.open(out).identity_keys()) == 3
    other = maco_hub.explain(model, texts=["a dog."], **QUICK)
    assert other[0].key not in {item.key for item in gallery}


def test_texts_with_classes_and_channels_on_a_hub_repo(tiny_zoo, hf_cache):
    """By repo id from the cache, as `openai/clip-vit-base-patch32` loads: the text side comes
    from the same commit."""
    commit = cache_repo(hf_cache, "tiny-org/clip-text", tiny_zoo["clip"].path)
    gallery = maco_hub.explain(
        "tiny-org/clip-text", texts=["a red car"], layer="encoder.layers.1", channels=[0], **QUICK
    )
    assert [item.kind for item in gallery] == ["channel", "text"]
    assert {item.record.model_revision for item in gallery} == {commit}
    model = maco_hub.load_model("tiny-org/clip-text")
    assert model.checkpoint.hub["revision"] == commit
    again = maco_hub.regenerate(gallery[1])  # from the record: the repo at its commit, the prompt
    assert again.key == gallery[1].key and again.label == "a red car"
    difference = np.abs(np.asarray(again.image, float) - np.asarray(gallery[1].image, float))
    assert difference.mean() < 1.0  # the same picture, up to float rounding


@pytest.mark.parametrize(
    ("prompt", "named"),
    [
        ("", "blank"),
        ("  \n", "blank"),
        (None, "must be a string"),
        (b"a car", "must be a string"),
        ("x" * 1001, "1001 characters"),
    ],
)
def test_hostile_prompts_are_refused_where_built(prompt, named):
    with pytest.raises(ConfigError, match=named):
        obj.Text(prompt)


def test_prompt_longer_than_the_text_tower_is_refused(tiny_zoo):
    too_long = rf"is {TEXT_POSITIONS + 8} tokens long; .* at most {TEXT_POSITIONS}"
    with pytest.raises(ConfigError, match=too_long):
        maco_hub.explain(loaded("clip"), texts=["a" * (TEXT_POSITIONS + 6)], **QUICK)


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"cosine_power": -1}, "cosine_power=-1"),
        ({"cosine_power": float("nan")}, "cosine_power=nan"),
        ({"cosine_power": "2"}, "cosine_power='2'"),
    ],
)
def test_bad_cosine_power(arguments, named):
    with pytest.raises(ConfigError, match=named):
        obj.Text("a car", **arguments)


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"texts": "a red car"}, "not a list"),
        ({"texts": []}, "texts=\\[\\] is empty"),
        ({"texts": ["a car"], "objectives": [obj.Text("a dog")]}, "not both"),
    ],
)
def test_bad_texts_arguments(tiny_zoo, arguments, named):
    with pytest.raises(ConfigError, match=named):
        maco_hub.explain(loaded("clip"), **{**QUICK, **arguments})


@pytest.mark.parametrize(
    ("family", "named"),
    [
        ("vit", "'vit' model without a CLIP/SigLIP text tower"),
        ("clip_vision", "holds only a vision tower \\(clip_vision_model\\)"),
        ("siglip_vision", "holds only a vision tower \\(siglip_vision_model\\)"),
    ],
)
def test_models_without_a_text_tower_name_what_would_work(tiny_zoo, family, named):
    with pytest.raises(NoTextTowerError, match=named) as caught:
        maco_hub.explain(loaded(family), texts=["a red car"], **QUICK)
    assert "openai/clip-vit-base-patch32" in str(caught.value)


def test_a_plain_module_has_no_text_tower(tiny_zoo):
    tower = loaded("clip")
    module = maco_hub.load_model(tower.module, preprocessing=tower.preprocessing)
    with pytest.raises(NoTextTowerError, match="passed as a module"):
        obj.Text("a car").validate(module)


def test_the_tokenizers_remote_code_is_refused(tiny_zoo, tmp_path):
    """A tokenizer_config.json that names code is refused before the text side loads, as every
    config file of the checkpoint is (also one changed after the vision tower loaded)."""
    folder = tmp_path / "clip"
    shutil.copytree(tiny_zoo["clip"].path, folder)
    model = maco_hub.load_model(folder)
    config = folder / "tokenizer_config.json"
    data = json.loads(config.read_text())
    data["auto_map"] = {"AutoTokenizer": ["evil.EvilTokenizer", None]}
    config.write_text(json.dumps(data))
    with pytest.raises(ModelLoadError, match=r"tokenizer_config\.json has auto_map"):
        obj.Text("a car").validate(model)
    with pytest.raises(ModelLoadError, match=r"tokenizer_config\.json"):
        maco_hub.load_model(folder)


def test_a_folder_changed_after_loading_is_refused(tiny_zoo, tmp_path):
    folder = tmp_path / "clip"
    shutil.copytree(tiny_zoo["clip"].path, folder)
    model = maco_hub.load_model(folder)
    torch.manual_seed(5)  # other weights than the builder's
    T.CLIPModel(T.CLIPModel.config_class.from_pretrained(folder)).save_pretrained(folder)
    with pytest.raises(ModelLoadError, match="changed since its vision tower was loaded"):
        obj.Text("a car").validate(model)


def test_missing_tokenizer_is_one_clear_error(tiny_zoo, tmp_path):
    folder = tmp_path / "clip"
    shutil.copytree(tiny_zoo["clip"].path, folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folder / name).unlink()
    with pytest.raises(ModelLoadError, match=r"tokenizer of 'clip' has no vocabulary \(2 special"):
        maco_hub.explain(str(folder), texts=["a car"], **QUICK)  # transformers would build an empty one


def test_a_tokenizer_of_another_model_is_refused(tiny_zoo, tmp_path):
    folder = tmp_path / "clip"
    shutil.copytree(tiny_zoo["clip"].path, folder)
    vocab = {f"w{i}": i for i in range(600)}
    T.CLIPTokenizer(vocab=vocab, merges=[]).save_pretrained(folder)
    with pytest.raises(ModelLoadError, match=r"has 60[0-9] tokens but its text tower embeds 514"):
        maco_hub.explain(str(folder), texts=["a car"], **QUICK)


HOSTILE = "<b>bold</b>\x1b]0;pwned\x07\u202e"


def test_hostile_prompt_is_shown_escaped(tiny_zoo, tmp_path, maco_cli, browser):
    from browser import console_errors
    from selenium.webdriver.common.by import By

    out = tmp_path / "gallery"
    done = maco_cli(
        "explain", str(tiny_zoo["clip"].path), "--text", HOSTILE, "--steps", "2", "--canvas", "32",
        "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout + done.stderr and "\u202e" not in done.stdout + done.stderr
    assert "\\x1b]0;pwned\\x07\\u202e" in done.stdout
    card = (out / "README.md").read_text()
    assert "<b>" not in card and "&lt;b&gt;bold&lt;/b&gt;" in card and "\x1b" not in card
    assert "<b>bold" not in (out / "index.html").read_text()
    browser.get((out / "index.html").as_uri())
    assert browser.find_elements(By.CSS_SELECTOR, "#grid b") == []
    tile = browser.find_element(By.CSS_SELECTOR, ".tile").text
    assert "<b>bold</b>\\x1b]0;pwned\\x07\\u202e" in tile
    assert console_errors(browser) == []


def test_cli_text_and_its_errors(tiny_zoo, tmp_path, maco_cli):
    out = tmp_path / "gallery"
    done = maco_cli(
        "explain", str(tiny_zoo["siglip"].path), "--text", "a red car", "a dog", "--steps", "2",
        "--canvas", "32", "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "text 'a red car' (cosine): score" in done.stdout and "text 'a dog' (cosine)" in done.stdout
    refused = maco_cli("explain", str(tiny_zoo["resnet"].path), "--text", "a red car", "--out", str(out))
    assert refused.returncode == 2
    assert "CLIP or SigLIP checkpoint" in refused.stderr and "openai/clip-vit-base-patch32" in refused.stderr


def test_the_cosine_benchmark_script_at_toy_size(tiny_zoo):
    """scripts/benchmark_text.py, the README's cosine vs dot × cos^p table, on the tiny towers."""
    from conftest import PROJECT_ROOT

    done = subprocess.run(
        [
            sys.executable, str(PROJECT_ROOT / "scripts" / "benchmark_text.py"),
            str(tiny_zoo["clip"].path), str(tiny_zoo["siglip"].path),
            "--steps", "2", "--canvas", "32", "--crops", "2", "--prompts", "a car", "a dog", "--powers", "2",
            "--device", "cpu",
        ],
        capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [line.split(" | ") for line in done.stdout.splitlines()[2:]]
    assert [(row[0], row[1]) for row in rows] == [
        (f"| {model}", form) for model in ("clip", "siglip") for form in ("cosine", "dot × cos^2")
    ]
    for row in rows:
        whole, crops = float(row[2]), float(row[3])
        assert -1 <= whole <= 1 and -1 <= crops <= 1
