"""The README's ``py`` examples (sections "Text prompts (CLIP, SigLIP)" and "Whole layers") run as
written, on tiny stand-ins cached under the real repo ids (12 layers, as the real models have)."""

from __future__ import annotations

import re

import transformers as T
from conftest import PROJECT_ROOT
from tiny_models import MEAN, SIZE, STD, _text_dims, _tiny_tokenizer, cache_repo
from tiny_models import _save as save_tiny

import maco_hub
import maco_hub.explainer


def _py_blocks(markdown: str) -> list[str]:
    return re.findall(r"```py\n(.*?)```", markdown, flags=re.DOTALL)


def test_readme_text_and_whole_layer_examples_run(tmp_path, hf_cache, monkeypatch):
    dims = dict(num_hidden_layers=12, num_attention_heads=2, image_size=SIZE, patch_size=8)
    processor = T.CLIPImageProcessor(
        image_mean=list(MEAN), image_std=list(STD), size={"shortest_edge": SIZE},
        crop_size={"height": SIZE, "width": SIZE},
    )  # fmt: skip
    vision = dict(hidden_size=48, intermediate_size=64, **dims)  # unit 42 exists
    clip = T.CLIPModel(T.CLIPConfig(text_config=_text_dims(), vision_config=vision, projection_dim=16))
    save_tiny(clip, processor, tmp_path / "clip")
    _tiny_tokenizer().save_pretrained(tmp_path / "clip")
    save_tiny(
        T.Dinov2Model(T.Dinov2Config(hidden_size=16, intermediate_size=32, **dims)),
        processor,
        tmp_path / "dino",
    )
    cache_repo(hf_cache, "openai/clip-vit-base-patch32", tmp_path / "clip")
    cache_repo(hf_cache, "facebook/dinov2-small", tmp_path / "dino")
    real_explain = maco_hub.explainer.explain
    calls = []

    def quick_explain(*args, **kwargs):  # same call, fewer steps
        calls.append(kwargs)
        return real_explain(*args, **{**kwargs, "steps": 2, "canvas": 32, "progress": False})

    monkeypatch.setattr(maco_hub.explainer, "explain", quick_explain)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    blocks = _py_blocks((PROJECT_ROOT / "README.md").read_text())
    assert len(blocks) == 2
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    assert len(calls) == 3
    assert [item.label for item in namespace["gallery"]] == ["a red car", "a dog"]
    atlas = namespace["atlas"]
    assert [(item.layer, item.unit) for item in atlas] == [
        (layer, unit) for layer in ("encoder.layer.6", "encoder.layer.11") for unit in range(16)
    ]
    assert (tmp_path / "dino-atlas" / "index.html").is_file()
