"""Tiny random-weight Hugging Face vision checkpoints for tests, built once per test session.

Each builder saves a model with ``save_pretrained`` plus an image processor config with
non-default mean/std (:data:`MEAN`, :data:`STD`) into a folder. :func:`zoo` builds all of them
once per process (the ``tiny_zoo`` fixture hands it to tests); :func:`cache_repo` lays a folder
out as a Hugging Face hub cache entry so it loads by repo id with ``HF_HUB_OFFLINE=1``.

Import from tests with ``from tiny_models import ...``.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

MEAN = (0.4, 0.5, 0.6)
STD = (0.2, 0.25, 0.3)
SIZE = 32  # input side of every tiny model unless the family says otherwise
LABELS = ("tabby, tabby cat", "tiger cat", "Egyptian cat", "espresso", "crane", "crane")
PROC = {"image_mean": list(MEAN), "image_std": list(STD)}


@dataclass(frozen=True)
class Tiny:
    """What a test needs to know about one tiny checkpoint."""

    family: str  # key in BUILDERS
    path: Path  # folder written by save_pretrained
    size: tuple[int, int]  # model input (height, width) the processor config implies
    has_classifier: bool  # whether the checkpoint holds a classification head
    middle_layer: str  # a mid-network module path (transformers 5 naming)
    middle_kind: str  # kind of middle_layer's output: "conv" or "tokens"
    prefix_tokens: int  # CLS/distillation tokens at middle_layer (0 for conv and SigLIP)


def _vit_dims(**extra) -> dict:
    return dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=SIZE,
        patch_size=8,
        **extra,
    )


def _labels() -> dict:
    return {"id2label": dict(enumerate(LABELS)), "label2id": {n: i for i, n in enumerate(LABELS)}}


def _save(model: torch.nn.Module, processor, folder: Path) -> None:
    torch.manual_seed(0)
    for module in model.modules():
        # some families initialize BatchNorm scales so small that a tiny random network's
        # activations vanish (zero logits, zero gradients); unit scales keep them alive
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and module.weight is not None:
            torch.nn.init.ones_(module.weight)
    model.save_pretrained(folder)
    if processor is not None:
        processor.save_pretrained(folder)


def _vit(folder: Path, *, head: bool = True) -> None:
    import transformers as T

    config = T.ViTConfig(**_vit_dims(), **_labels())
    model = T.ViTForImageClassification(config) if head else T.ViTModel(config)
    _save(model, T.ViTImageProcessor(**PROC, size={"height": SIZE, "width": SIZE}), folder)


def _deit(folder: Path) -> None:
    import transformers as T

    config = T.DeiTConfig(**_vit_dims(), **_labels())
    processor = T.DeiTImageProcessor(
        **PROC, size={"height": 40, "width": 40}, crop_size={"height": SIZE, "width": SIZE}
    )
    _save(T.DeiTForImageClassification(config), processor, folder)


def _swin(folder: Path) -> None:
    import transformers as T

    config = T.SwinConfig(
        image_size=SIZE,
        patch_size=4,
        embed_dim=16,
        depths=[1, 1],
        num_heads=[1, 2],
        window_size=4,
        **_labels(),
    )
    processor = T.ViTImageProcessor(**PROC, size={"height": SIZE, "width": SIZE})
    _save(T.SwinForImageClassification(config), processor, folder)


def _convnext(folder: Path) -> None:
    import transformers as T

    config = T.ConvNextConfig(num_stages=2, hidden_sizes=[16, 32], depths=[1, 1], **_labels())
    processor = T.ConvNextImageProcessor(**PROC, size={"shortest_edge": 48}, crop_pct=0.875)
    _save(T.ConvNextForImageClassification(config), processor, folder)


def _resnet(folder: Path) -> None:
    import transformers as T

    config = T.ResNetConfig(
        embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1], layer_type="basic", **_labels()
    )
    processor = T.ConvNextImageProcessor(**PROC, size={"shortest_edge": SIZE})
    _save(T.ResNetForImageClassification(config), processor, folder)


def _regnet(folder: Path) -> None:
    import transformers as T

    config = T.RegNetConfig(
        embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1], groups_width=8, **_labels()
    )
    processor = T.ConvNextImageProcessor(**PROC, size={"shortest_edge": SIZE})
    _save(T.RegNetForImageClassification(config), processor, folder)


def _mobilenet_v2(folder: Path) -> None:
    import transformers as T

    config = T.MobileNetV2Config(depth_multiplier=0.25, image_size=SIZE, **_labels())
    processor = T.MobileNetV2ImageProcessor(
        **PROC, size={"shortest_edge": 36}, crop_size={"height": SIZE, "width": SIZE}
    )
    _save(T.MobileNetV2ForImageClassification(config), processor, folder)


def _efficientnet(folder: Path) -> None:
    import transformers as T

    config = T.EfficientNetConfig(
        width_coefficient=0.1, depth_coefficient=0.1, image_size=SIZE, hidden_dim=128, **_labels()
    )
    processor = T.EfficientNetImageProcessor(
        **PROC,
        size={"height": SIZE, "width": SIZE},
        crop_size={"height": 40, "width": 40},
        do_center_crop=False,
    )
    _save(T.EfficientNetForImageClassification(config), processor, folder)


def _dinov2(folder: Path) -> None:
    import transformers as T

    config = T.Dinov2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=SIZE, patch_size=8
    )
    processor = T.BitImageProcessor(
        **PROC, size={"shortest_edge": 36}, crop_size={"height": SIZE, "width": SIZE}
    )
    _save(T.Dinov2Model(config), processor, folder)


def _clip_vision_dims() -> dict:
    return _vit_dims(projection_dim=16)


TEXT_POSITIONS = 32  # the tiny text towers' context, in tokens (CLIP's real one: 77)


def _tiny_tokenizer():
    """A CLIP BPE tokenizer built offline: its vocabulary is the 256 byte-level symbols, alone and
    ending a word, with no merges (one token per character)."""
    import transformers as T
    from tokenizers.pre_tokenizers import ByteLevel

    symbols = sorted(ByteLevel.alphabet())
    words = ["<|startoftext|>", "<|endoftext|>", *symbols, *(s + "</w>" for s in symbols)]
    vocab = {word: i for i, word in enumerate(words)}
    return T.CLIPTokenizer(vocab=vocab, merges=[], model_max_length=TEXT_POSITIONS)


def _seeded(cls, config, seed: int = 0):
    """``cls(config)`` with weights drawn from ``seed``, other builders' draws left as they were: the
    text-objective tests need a tower whose image embedding follows its input (some draws of a
    2-layer random ViT barely move it; the seeds used were picked by trying a few)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return cls(config)


def _text_dims() -> dict:
    return dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        vocab_size=2 + 2 * 256,  # _tiny_tokenizer's vocabulary
        max_position_embeddings=TEXT_POSITIONS,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )


def _clip(folder: Path) -> None:
    import transformers as T

    config = T.CLIPConfig(text_config=_text_dims(), vision_config=_clip_vision_dims(), projection_dim=16)
    processor = T.CLIPImageProcessor(
        **PROC, size={"shortest_edge": SIZE}, crop_size={"height": SIZE, "width": SIZE}
    )
    _save(_seeded(T.CLIPModel, config, seed=1), processor, folder)
    _tiny_tokenizer().save_pretrained(folder)


def _siglip(folder: Path) -> None:
    import transformers as T

    config = T.SiglipConfig(text_config=_text_dims(), vision_config=_vit_dims())
    processor = T.SiglipImageProcessor(**PROC, size={"height": SIZE, "width": SIZE})
    _save(_seeded(T.SiglipModel, config), processor, folder)
    _tiny_tokenizer().save_pretrained(folder)


def _clip_vision(folder: Path) -> None:
    import transformers as T

    processor = T.CLIPImageProcessor(
        **PROC, size={"shortest_edge": SIZE}, crop_size={"height": SIZE, "width": SIZE}
    )
    _save(T.CLIPVisionModel(T.CLIPVisionConfig(**_clip_vision_dims())), processor, folder)


def _siglip_vision(folder: Path) -> None:
    import transformers as T

    config = T.SiglipVisionConfig(**_vit_dims())
    processor = T.SiglipImageProcessor(**PROC, size={"height": SIZE, "width": SIZE})
    _save(T.SiglipVisionModel(config), processor, folder)


def _bert(folder: Path) -> None:
    import transformers as T

    config = T.BertConfig(
        vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    )
    _save(T.BertModel(config), None, folder)


# family: (builder, input size, has_classifier, middle layer, its kind, prefix tokens there)
BUILDERS: dict[str, tuple[Callable[[Path], None], int, bool, str, str, int]] = {
    "vit": (_vit, SIZE, True, "vit.layers.0", "tokens", 1),
    "vit_backbone": (functools.partial(_vit, head=False), SIZE, False, "layers.0", "tokens", 1),
    "deit": (_deit, SIZE, True, "deit.layers.0", "tokens", 2),
    "swin": (_swin, SIZE, True, "swin.encoder.layers.0.blocks.0", "tokens", 0),
    "convnext": (_convnext, 48, True, "convnext.encoder.stages.1.layers.0", "conv", 0),
    "resnet": (_resnet, SIZE, True, "resnet.encoder.stages.0.layers.0", "conv", 0),
    "regnet": (_regnet, SIZE, True, "regnet.encoder.stages.0.layers.0", "conv", 0),
    "mobilenet_v2": (_mobilenet_v2, SIZE, True, "mobilenet_v2.layer.3", "conv", 0),
    "efficientnet": (_efficientnet, SIZE, True, "efficientnet.encoder.blocks.2", "conv", 0),
    "dinov2": (_dinov2, SIZE, False, "encoder.layer.0", "tokens", 1),
    "clip": (_clip, SIZE, False, "encoder.layers.0", "tokens", 1),
    "siglip": (_siglip, SIZE, False, "encoder.layers.0", "tokens", 0),
    "clip_vision": (_clip_vision, SIZE, False, "encoder.layers.0", "tokens", 1),
    "siglip_vision": (_siglip_vision, SIZE, False, "encoder.layers.0", "tokens", 0),
}
CLASSIFIERS = tuple(f for f, spec in BUILDERS.items() if spec[2])
BACKBONES = tuple(f for f, spec in BUILDERS.items() if not spec[2])


def build(family: str, folder: Path) -> Tiny:
    """Save the tiny ``family`` checkpoint into ``folder`` (created) and describe it."""
    builder, size, head, middle, kind, prefix = BUILDERS[family]
    folder.mkdir(parents=True, exist_ok=True)
    builder(folder)
    return Tiny(family, folder, (size, size), head, middle, kind, prefix)


@functools.cache
def zoo() -> dict[str, Tiny]:
    """Every tiny checkpoint, built once per process into a temporary folder."""
    root = Path(tempfile.mkdtemp(prefix="maco_hub_tiny_"))
    zoo_ = {family: build(family, root / family) for family in BUILDERS}
    build_bert(root / "bert")
    return zoo_


def build_bert(folder: Path) -> Path:
    """A tiny BERT (text-only) checkpoint, for the not-a-vision-model error."""
    folder.mkdir(parents=True, exist_ok=True)
    _bert(folder)
    return folder


@pytest.fixture(scope="session", name="tiny_zoo")
def tiny_zoo_fixture() -> dict[str, Tiny]:
    """``tiny_zoo``: all tiny checkpoints (family -> Tiny); the text model is ``<root>/bert``.

    Registered for every test file by ``pytest_plugins`` in conftest.py."""
    return zoo()


def cache_repo(cache_dir: Path, repo_id: str, folder: Path, *, commit: str | None = None) -> str:
    """Lay ``folder`` out as ``repo_id`` in a hub cache (blobs, refs/main, snapshots); return
    the commit id. Snapshot files are relative symlinks to content-addressed blobs."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    if commit is None:
        digest = hashlib.sha1(repo_id.encode())
        for path in files:
            digest.update(path.read_bytes())
        commit = digest.hexdigest()
    repo = Path(cache_dir) / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "blobs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)  # 40 hex characters, no newline
    snapshot = repo / "snapshots" / commit
    for path in files:
        data = path.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        if not blob.exists():
            shutil.copyfile(path, blob)
        link = snapshot / path.relative_to(folder)
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(os.path.relpath(blob, link.parent))
    return commit


@functools.cache
def loaded(family: str):
    """The tiny ``family`` checkpoint through ``maco_hub.load_model``, loaded once per process.

    Shared between tests: do not modify it (load a fresh one with load_model instead)."""
    from maco_hub.models.loader import load_model

    return load_model(zoo()[family].path)


def build_efficientnet_lite(folder: Path) -> Path:
    """A tiny maco_hub EfficientNet-Lite classifier (model_type ``maco_efficientnet_lite``, which
    transformers maps to no image processor class), with a stock BiT processor config."""
    import transformers as T

    import maco_hub.models.efficientnet_lite.modeling as enl

    config = enl.EfficientNetLiteConfig(
        image_size=SIZE,
        stem_channels=8,
        head_channels=16,
        kernel_sizes=[3, 3],
        strides=[1, 2],
        expand_ratios=[1, 2],
        out_channels=[8, 16],
        num_block_repeats=[1, 1],
        **_labels(),
    )
    config.architectures = [enl.EfficientNetLiteForImageClassification.__name__]
    folder.mkdir(parents=True, exist_ok=True)
    processor = T.BitImageProcessorPil(
        **PROC, size={"shortest_edge": SIZE}, crop_size={"height": SIZE, "width": SIZE}
    )
    _save(enl.EfficientNetLiteForImageClassification(config), processor, folder)
    return folder
