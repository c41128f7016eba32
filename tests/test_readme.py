"""The README's Python example runs as written, on tiny stand-ins cached under the real repo ids."""

from __future__ import annotations

import re

import pytest
import transformers as T
from conftest import PROJECT_ROOT
from tiny_models import MEAN, SIZE, STD, cache_repo
from tiny_models import _save as save_tiny  # the saving rules every tiny checkpoint follows

import maco_hub
import maco_hub.explainer
from maco_hub.models.efficientnet_lite.modeling import imagenet_labels


def _python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.DOTALL)


@pytest.fixture
def hub_stand_ins(tmp_path, hf_cache):
    """12-layer tiny ViT classifier with the 1000 ImageNet labels and a 12-layer tiny DINOv2."""
    labels = imagenet_labels()
    dims = dict(
        hidden_size=16,
        num_hidden_layers=12,
        num_attention_heads=2,
        intermediate_size=32,
        image_size=SIZE,
        patch_size=8,
    )
    processor = T.ViTImageProcessor(
        image_mean=list(MEAN), image_std=list(STD), size={"height": SIZE, "width": SIZE}
    )
    vit = T.ViTForImageClassification(
        T.ViTConfig(**dims, id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)})
    )
    save_tiny(vit, processor, tmp_path / "vit")
    save_tiny(T.Dinov2Model(T.Dinov2Config(**dims)), processor, tmp_path / "dinov2")
    cache_repo(hf_cache, "google/vit-base-patch16-224", tmp_path / "vit")
    cache_repo(hf_cache, "facebook/dinov2-small", tmp_path / "dinov2")


def test_readme_python_example_runs(hub_stand_ins, online_hub, tmp_path, monkeypatch):
    """Models come from the offline cache; the push and load_gallery go to the loopback Hub."""
    blocks = _python_blocks((PROJECT_ROOT / "README.md").read_text())
    assert blocks, "README.md has no python example"
    real_explain = maco_hub.explainer.explain
    calls = []

    def quick_explain(*args, **kwargs):  # same call, fewer steps: the example's defaults take minutes
        calls.append(kwargs)
        return real_explain(*args, **{**kwargs, "steps": 2, "canvas": 48, "progress": False})

    monkeypatch.setattr(maco_hub.explainer, "explain", quick_explain)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    assert len(calls) == 3
    gallery = namespace["gallery"]
    assert [item.class_id for item in gallery] == [281, 285]
    assert (tmp_path / "out").is_dir() and len(list((tmp_path / "out").glob("*.png"))) == 4
    assert (tmp_path / "vit-gallery" / "index.html").is_file()
    assert len(namespace["again"]) == 2
    pushed = online_hub.list_files("my-user/vit-base-maco", repo_type="dataset")
    assert any(name.startswith("data/train-") and name.endswith(".parquet") for name in pushed)
    assert ".maco_hub.lock" not in pushed
