"""The default objectives of a model with nothing chosen: classes of a classifier, channels of a backbone."""

from __future__ import annotations

import re

import pytest
import torch
from tiny_models import LABELS, SIZE, loaded, tiny_zoo_fixture  # noqa: F401

import maco_hub
from maco_hub.errors import ConfigError
from maco_hub.models.hooks import layer_table
from maco_hub.objectives import Channel, ClassLogit
from maco_hub.objectives.defaults import IMAGENET_CLASSES, default_objectives, last_block, spread

PREP = {"mean": (0.5,) * 3, "std": (0.5,) * 3, "size": SIZE}


def _resnet_classifier(labels: list[str]):
    import transformers as T

    config = T.ResNetConfig(
        embedding_size=8,
        hidden_sizes=[8, 16],
        depths=[1, 1],
        layer_type="basic",
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={n: i for i, n in enumerate(labels)},
    )
    torch.manual_seed(0)
    return maco_hub.load_model(T.ResNetForImageClassification(config), preprocessing=PREP)


def test_spread_takes_the_centres_of_equal_slices():
    assert spread(1000, 8) == [62, 187, 312, 437, 562, 687, 812, 937]
    assert spread(6, 8) == list(range(6))  # fewer classes than asked: all of them
    assert spread(6, 3) == [1, 3, 5]
    assert spread(5, 1) == [2]


def test_small_classifier_gets_its_classes_evenly_spread(tiny_zoo):
    model = loaded("vit")
    choice = default_objectives(model, count=3)
    assert all(isinstance(o, ClassLogit) for o in choice.objectives)
    assert [o.class_id for o in choice.objectives] == [1, 3, 5]
    assert [o.label for o in choice.objectives] == [LABELS[1], LABELS[3], LABELS[5]]
    assert "evenly spread over the 6 labels" in choice.description
    assert all(repr(LABELS[i]) in choice.description for i in (1, 3, 5))
    assert default_objectives(model, count=3) == choice  # fixed, not random
    assert len(default_objectives(model).objectives) == len(LABELS)


def test_imagenet_head_gets_the_hand_picked_classes_by_name():
    from maco_hub.models.efficientnet_lite.modeling import imagenet_labels

    labels = imagenet_labels()
    choice = default_objectives(_resnet_classifier(labels))
    picked = [o.class_id for o in choice.objectives]
    assert len(set(picked)) == len(IMAGENET_CLASSES) == len(picked)
    for name, index in zip(IMAGENET_CLASSES, picked, strict=True):
        assert name in [part.strip() for part in labels[index].split(",")], (name, labels[index])
    assert choice.description.startswith("8 hand-picked ImageNet-1k classes")
    assert "'espresso'" in choice.description


def test_other_1000_class_heads_fall_back_to_evenly_spread():
    choice = default_objectives(_resnet_classifier([f"class {i}" for i in range(1000)]))
    assert [o.class_id for o in choice.objectives] == spread(1000, 8)
    assert "evenly spread over the 1000 labels" in choice.description


@pytest.mark.parametrize("family", ["vit_backbone", "dinov2", "clip_vision", "siglip_vision"])
def test_token_backbone_gets_first_channels_of_its_last_block(tiny_zoo, family):
    model = loaded(family)
    choice = default_objectives(model, count=5)
    layer = choice.objectives[0].layer
    blocks = [name for name in layer_table(model) if re.fullmatch(r"(.*\.)?layers?\.\d+", name)]
    assert layer == max(blocks, key=lambda name: int(name.rsplit(".", 1)[1]))  # the deepest block
    assert [(o.layer, o.unit) for o in choice.objectives] == [(layer, u) for u in range(5)]
    assert all(isinstance(o, Channel) and o.layer_kind == "tokens" for o in choice.objectives)
    prefix = layer_table(model)[layer].prefix_tokens
    assert {o.tokens for o in choice.objectives} == {"patch" if prefix else "all"}
    assert repr(layer) in choice.description and "last block" in choice.description


def test_conv_backbone_gets_the_outermost_last_block(tiny_zoo):
    model = maco_hub.load_model(loaded("resnet").module.resnet, preprocessing=PREP)
    assert not model.has_classifier
    info = last_block(model)
    # stages.1 (the last stage) returns after its last block, stages.1.layers.0, and after that
    # block's inner conv layers (stages.1.layers.0.layer.N): the outermost last block wins
    assert info.name == "encoder.stages.1" and info.kind == "conv"
    choice = default_objectives(model, count=64)  # more than the layer has: all its channels
    assert [o.unit for o in choice.objectives] == list(range(info.units))
    assert "mean over space" in choice.description


def test_default_objectives_run_through_explain(tiny_zoo):
    for family in ("resnet", "dinov2"):
        model = loaded(family)
        choice = default_objectives(model, count=2)
        gallery = maco_hub.explain(
            model, objectives=choice.objectives, steps=2, canvas=32, progress=False, device="cpu"
        )
        assert [item.objective for item in gallery] == [o.description for o in choice.objectives]


@pytest.mark.parametrize("count", [0, -1, 2.5, True, "8"])
def test_bad_count_is_one_clear_error(tiny_zoo, count):
    with pytest.raises(ConfigError, match="count="):
        default_objectives(loaded("vit"), count=count)
