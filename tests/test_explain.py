"""explain() end to end on tiny checkpoints of every family (CPU, a few steps)."""

from __future__ import annotations

import json
import logging
import re
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import QUICK, hook_count
from tiny_models import BUILDERS, loaded

import maco_hub
from maco_hub import objectives as obj
from maco_hub.engine import EngineConfig
from maco_hub.errors import (
    ConfigError,
    LayerNotFoundError,
    NoClassifierHeadError,
    NonFiniteError,
    UnitOutOfRangeError,
)
from maco_hub.gallery.folder import GalleryFolder
from maco_hub.gallery.keys import canonical_json, seed_for


@pytest.mark.parametrize("family", list(BUILDERS))
def test_explain_every_family(tiny_zoo, family):
    tiny = tiny_zoo[family]
    classes = [0] if tiny.has_classifier else None
    gallery = maco_hub.explain(
        str(tiny.path), classes=classes, layer=tiny.middle_layer, channels=[0, 1], batch_size=2, **QUICK
    )
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
    gallery = maco_hub.explain(model, classes=["tiger cat", "espresso", 2], batch_size=2, seed=10, **QUICK)
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


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"classes": [True]}, "class_id=True"),  # used to visualize class 1
        ({"classes": [1.5]}, "class_id=1.5"),
        ({"classes": 3}, "classes=3 is not a list: pass a list such as classes=[3]"),
        ({"classes": []}, "classes=[] is empty"),  # used to run the defaults silently
        ({"layer": "vit.layers.0", "channels": []}, "channels=[] is empty"),
        ({"layer": "vit.layers.0", "channels": [1.5]}, "unit=1.5"),  # used to be truncated to 1
        ({"layer": 3, "channels": [1]}, "layer=3"),
        ({"objectives": [3]}, "objectives entry 3 is not an objective"),
        ({"objectives": "class:0"}, "objectives='class:0' is not a list"),
        ({"classes": [0], "steps": 2.5}, "steps=2.5"),
        ({"classes": [0], "steps": True}, "steps=True"),
        ({"classes": [0], "steps": 3_000_000}, "steps=3000000"),
        ({"classes": [0], "canvas": "32"}, "canvas='32'"),
        ({"classes": [0], "canvas": 32.5}, "canvas=32.5 is invalid"),  # was blamed on "Spectrum height"
        ({"classes": [0], "seed": "abc"}, "seed='abc'"),
        ({"classes": [0], "seed": None}, "seed=None"),
        ({"classes": [0], "seed": 1.5}, "seed=1.5"),  # used to be truncated to 1
        ({"classes": [0], "seed": 2**70}, f"seed={2**70}"),  # used to give seed 0's rows
        ({"classes": [0], "seed": -1}, "seed=-1"),  # -1 and 2**31 - 1 gave the same rows
        ({"classes": [0], "batch_size": "8"}, "batch_size='8'"),
        ({"classes": [0], "batch_size": True}, "batch_size=True"),
        ({"classes": [0], "config": {"steps": 2}}, "config={'steps': 2} is not an EngineConfig"),
    ],
)
def test_arguments_of_another_type_are_one_clear_error_before_any_model_loads(tmp_path, arguments, named):
    with pytest.raises(ConfigError, match=re.escape(named)):
        maco_hub.explain(str(tmp_path / "no-such-model"), **{**QUICK, **arguments})


def test_objectives_given_as_strings_are_read_like_the_command_line(tiny_zoo):
    """objectives=['class:0'] ended in a raw AttributeError; it now means what --objective does."""
    tiny = tiny_zoo["resnet"]
    layer = tiny.middle_layer
    written = maco_hub.explain(loaded("resnet"), objectives=["class:tabby cat", f"{layer}:1", layer], **QUICK)
    built = maco_hub.explain(
        loaded("resnet"),
        objectives=[obj.ClassLogit(0), obj.Channel(layer, 1), obj.LayerEnergy(layer)],
        **QUICK,
    )
    assert [item.key for item in written] == [item.key for item in built]


def test_numpy_integers_give_the_rows_of_plain_ints(tiny_zoo):
    model, layer = loaded("resnet"), tiny_zoo["resnet"].middle_layer
    plain = maco_hub.explain(model, classes=[1, 2], layer=layer, channels=[0], seed=3, batch_size=2, **QUICK)
    numpy = maco_hub.explain(
        model,
        classes=np.array([1, 2]),
        layer=layer,
        channels=[np.int64(0)],
        seed=np.int64(3),
        batch_size=np.int64(2),
        **QUICK,
    )
    assert [item.key for item in numpy] == [item.key for item in plain]
    json.dumps(numpy[0].record.to_dict())


def test_seeds_at_both_ends_of_the_range_have_their_own_rows(tiny_zoo):
    model = loaded("resnet")
    seeds = {maco_hub.explain(model, classes=[0], seed=seed, **QUICK)[0].seed for seed in (0, 1, 2**31 - 1)}
    assert len(seeds) == 3
    record = {"type": "ClassLogit", "class_id": 0}
    assert seed_for(7, record) == (7 * 1_000_003 + zlib.crc32(canonical_json(record).encode())) % 2**31
    assert seed_for(np.int64(7), record) == seed_for(7, record)
    for bad in (2**31, 2**70, -1, 1.0, True):
        with pytest.raises(ConfigError, match=re.escape(f"seed={bad!r} is invalid")):
            seed_for(bad, record)


def test_an_objective_asked_twice_is_visualized_once_and_said_so(tiny_zoo, tmp_path, caplog):
    """[1, 1, 'tiger cat'] was optimized three times and, without out, returned three times."""
    model = loaded("resnet")
    with caplog.at_level(logging.WARNING, logger="maco_hub"):
        gallery = maco_hub.explain(model, classes=[1, 1, "tiger cat", 2], **QUICK)
    assert [item.class_id for item in gallery] == [1, 2]
    assert "2 repeated objective(s) dropped, each is visualized once: class 1 'tiger cat'" in caplog.text
    folder = maco_hub.explain(model, objectives=["class:1", obj.ClassLogit(1)], out=tmp_path / "g", **QUICK)
    assert len(folder) == 1


@pytest.fixture(scope="module")
def overflowing(tiny_zoo, tmp_path_factory) -> Path:
    """A copy of the tiny ResNet whose logits overflow float32 (a crafted or broken checkpoint)."""
    import transformers

    source, folder = tiny_zoo["resnet"].path, tmp_path_factory.mktemp("overflowing") / "resnet"
    model = transformers.AutoModelForImageClassification.from_pretrained(source)
    with torch.no_grad():
        model.classifier[-1].weight.fill_(3e38)
        model.classifier[-1].bias.fill_(3e38)
    model.save_pretrained(folder)
    shutil.copy(source / "preprocessor_config.json", folder)
    return folder


def test_a_run_that_goes_non_finite_keeps_no_row_of_its_batch(tiny_zoo, overflowing, tmp_path):
    """A score or image that becomes NaN or infinite is an error naming the objective, never a row."""
    layer = tiny_zoo["resnet"].middle_layer
    named = re.escape("""objective "class 0 'tabby, tabby cat' (logit)" (seed """)
    with pytest.raises(NonFiniteError, match=rf"^{named}\d+\) became NaN or infinite.*cause: .*overflows"):
        maco_hub.explain(
            str(overflowing),
            objectives=[obj.LayerEnergy(layer), obj.ClassLogit(0)],
            batch_size=1,
            out=tmp_path / "g",
            **QUICK,
        )
    kept = GalleryFolder.open(tmp_path / "g").read()
    assert [item.kind for item in kept] == ["layer"]  # the batch before, which stayed finite


def test_cli_reports_a_non_finite_run_in_one_line_and_saves_no_row(overflowing, tmp_path, maco_cli):
    result = maco_cli(
        "explain",
        str(overflowing),
        "--classes",
        "0",
        "--steps",
        "2",
        "--canvas",
        "32",
        "--out",
        str(tmp_path / "g"),
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "objective \"class 0 'tabby, tabby cat' (logit)\"" in errors[0], result.stderr
    assert "became NaN or infinite" in errors[0] and "Likely cause" in errors[0]
    assert len(GalleryFolder.open(tmp_path / "g").read()) == 0


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--steps", "3000000"], "steps=3000000 is invalid: use an integer from 1 to 100000"),
        (["--seed", str(2**31)], "seed=2147483648 is invalid: use an integer from 0 to 2147483647"),
        (["--seed", "-1"], "seed=-1 is invalid"),
        (["--canvas", "100000"], "canvas=100000 is invalid"),
    ],
)
def test_cli_limits_are_one_clear_line_and_nothing_is_written(tiny_zoo, tmp_path, maco_cli, args, named):
    """--steps 3000000 died with std::bad_alloc at 3.5 GB; --seed 2**70 silently gave seed 0's rows."""
    result = maco_cli(
        "explain",
        str(tiny_zoo["resnet"].path),
        "--classes",
        "0",
        "--steps",
        "1",
        "--canvas",
        "32",
        *args,
        "--out",
        str(tmp_path / "g"),
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and named in errors[0], result.stderr
    assert not (tmp_path / "g").exists()


def test_cli_repeated_objectives_run_once(tiny_zoo, tmp_path, maco_cli):
    result = maco_cli(
        "explain",
        str(tiny_zoo["resnet"].path),
        "--objective",
        "class:1",
        "class:tiger cat",
        "--steps",
        "1",
        "--canvas",
        "32",
        "--out",
        str(tmp_path / "g"),
    )
    assert result.returncode == 0, result.stderr
    assert "1 repeated objective(s) dropped" in result.stderr
    assert len(GalleryFolder.open(tmp_path / "g").read()) == 1
