"""explain() end to end on tiny checkpoints of every family (CPU, a few steps)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import QUICK, hook_count
from tiny_models import BUILDERS, loaded

import maco_hub
from maco_hub import objectives as obj
from maco_hub.engine import EngineConfig
from maco_hub.errors import ConfigError, LayerNotFoundError, NoClassifierHeadError, UnitOutOfRangeError


@pytest.mark.parametrize("family", list(BUILDERS))
def test_explain_every_family(tiny_zoo, family):
    tiny = tiny_zoo[family]
    classes = [0] if tiny.has_classifier else None
    gallery = maco_hub.explain(str(tiny.path), classes=classes, layer=tiny.middle_layer,
                               channels=[0, 1], batch_size=2, **QUICK)
    assert len(gallery) == (3 if tiny.has_classifier else 2)
    for item in gallery:
        assert item.image.mode == "RGB" and item.image.size == (48, 48)
        assert item.alpha.mode == "L" and item.alpha.size == (48, 48)
        assert np.isfinite(item.score)
        assert item.record.model_id == tiny.path.name  # portable: the folder name, no path
        assert item.record.spectrum["sha256"] == maco_hub.load_spectrum().sha256
        assert EngineConfig.from_record(item.record.config).steps == 3
    # a random tiny network may have a dead unit (zero gradient), but not everywhere
    assert max(np.asarray(item.alpha).max() for item in gallery) > 0
    channels = [item for item in gallery if item.kind == "channel"]
    assert [(c.layer, c.unit) for c in channels] == [(tiny.middle_layer, 0), (tiny.middle_layer, 1)]
    if tiny.has_classifier:
        assert gallery[0].kind == "class" and gallery[0].class_id == 0
        assert gallery[0].label == "tabby, tabby cat" and "tabby" in gallery[0].objective


def test_class_names_resolve_and_seeds_follow_the_objective_not_its_position(tiny_zoo):
    model = loaded("resnet")
    gallery = maco_hub.explain(model, classes=["tiger cat", "espresso", 2], batch_size=2, seed=10,
                               **QUICK)
    assert [item.class_id for item in gallery] == [1, 3, 2]
    assert len({item.seed for item in gallery}) == 3
    # the third image ran alone in the second batch: explaining it alone, first in its list,
    # gives it the same seed and the same pixels; another base seed gives another image
    alone = maco_hub.explain(model, classes=[2], seed=10, **QUICK)
    assert alone[0].seed == gallery[2].seed
    assert np.array_equal(np.asarray(alone[0].image), np.asarray(gallery[2].image))
    other = maco_hub.explain(model, classes=[2], seed=11, **QUICK)
    assert other[0].seed != gallery[2].seed


def test_objectives_list_and_algebra(tiny_zoo):
    tiny = tiny_zoo["vit"]
    model = loaded("vit")
    mixed = obj.ClassLogit(3) - 0.5 * obj.Channel(tiny.middle_layer, 2)
    gallery = maco_hub.explain(model, objectives=[mixed, obj.LayerEnergy(tiny.middle_layer)], **QUICK)
    assert [item.kind for item in gallery] == ["sum", "layer"]
    assert "class 3" in gallery[0].objective and "channel 2" in gallery[0].objective


@pytest.mark.parametrize(
    ("arguments", "error", "named"),
    [
        ({"classes": [0], "objectives": [obj.ClassLogit(0)]}, ConfigError, "not both"),
        ({"channels": [1]}, ConfigError, "channels=[1] needs layer"),
        ({"layer": "vit.layers.0"}, ConfigError, "layer='vit.layers.0' needs channels"),
        ({"classes": [0], "batch_size": 0}, ConfigError, "batch_size=0"),
        ({"objectives": []}, ConfigError, "objectives=[] is empty"),
        ({"layer": "vit.layer.0", "channels": [0]}, LayerNotFoundError, "vit.layers.0"),
        ({"layer": "vit.layers.0", "channels": [999]}, UnitOutOfRangeError, "999"),
    ],
)
def test_bad_arguments_name_the_value(tiny_zoo, arguments, error, named):
    with pytest.raises(error, match=named.replace("[", r"\[").replace("]", r"\]")):
        maco_hub.explain(loaded("vit"), **{**QUICK, **arguments})


def test_class_objective_on_a_backbone_is_refused(tiny_zoo):
    with pytest.raises(NoClassifierHeadError, match="backbone"):
        maco_hub.explain(loaded("dinov2"), classes=[0], **QUICK)


def test_no_hooks_left_after_success_or_failure(tiny_zoo):
    model = loaded("convnext")
    layer = tiny_zoo["convnext"].middle_layer
    before = hook_count(model.module)
    maco_hub.explain(model, layer=layer, channels=[0], **QUICK)
    assert hook_count(model.module) == before

    def failing_schedule(step: int, total: int):
        if step == 1:
            raise RuntimeError("schedule failed on purpose")
        return (0.5, 1.0)

    config = EngineConfig(steps=3, canvas=48, crop_scale=failing_schedule)
    with pytest.raises(RuntimeError, match="on purpose"):
        maco_hub.explain(model, layer=layer, channels=[0], config=config, progress=False)
    assert hook_count(model.module) == before


def test_gallery_saves_images(tiny_zoo, tmp_path):
    gallery = maco_hub.explain(loaded("vit"), classes=["espresso"], **QUICK)
    paths = gallery.save_images(tmp_path / "out")
    assert [p.name for p in paths] == [f"{gallery[0].key}.png", f"{gallery[0].key}-transparent.png"]
    from PIL import Image

    assert Image.open(paths[1]).mode == "RGBA"
    assert np.array_equal(np.asarray(Image.open(paths[0])), np.asarray(gallery[0].image))


def test_a_loaded_model_runs_where_it_is_or_where_asked(tiny_zoo):
    from maco_hub.models.loader import load_model

    model = load_model(tiny_zoo["resnet"].path)  # its own copy: it is moved below
    gallery = maco_hub.explain(model, classes=[0], steps=2, canvas=32, progress=False)
    assert gallery[0].record.device == "cpu"
    assert next(model.module.parameters()).device.type == "cpu"


@pytest.mark.gpu
def test_a_loaded_model_moves_where_asked_and_stays(tiny_zoo):
    from maco_hub.models.loader import load_model

    model = load_model(tiny_zoo["resnet"].path)  # its own copy: it is moved below
    moved = maco_hub.explain(model, classes=[0], steps=2, canvas=32, progress=False, device="cuda")
    assert moved[0].record.device == "cuda"
    assert next(model.module.parameters()).device.type == "cuda"
    again = maco_hub.explain(model, classes=[1], steps=2, canvas=32, progress=False)  # stays there
    assert again[0].record.device == "cuda"
