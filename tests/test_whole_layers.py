"""Whole layers: every unit of one or several layers in one call (a Microscope-style atlas), batched,
resumable, in unit order, and the gallery's ``layer``/``unit`` columns as the Hub viewer sees them."""

from __future__ import annotations

import logging

import pytest
import yaml
from helpers import QUICK, subprocess_cli
from tiny_models import loaded

import maco_hub
import maco_hub.explainer
from maco_hub.errors import ConfigError, LayerNotFoundError
from maco_hub.models.hooks import layer_table

RUN = ["--steps", "2", "--canvas", "32", "--batch-size", "8", "--device", "cpu", "--quiet"]


def _small_layers(family: str, count: int, kind: str = "conv") -> list[tuple[str, int]]:
    """The ``count`` layers of ``kind`` with the fewest units of a tiny model, in module order:
    (name, units)."""
    table = layer_table(loaded(family))
    smallest = sorted((i for i in table.values() if i.kind == kind), key=lambda info: info.units)[:count]
    order = list(table)
    return [(info.name, info.units) for info in sorted(smallest, key=lambda info: order.index(info.name))]


def _atlas(gallery) -> list[tuple[str, int]]:
    return [(item.layer, item.unit) for item in gallery]


def test_channels_all_is_every_unit_in_unit_order(tiny_zoo):
    (name, units), = _small_layers("resnet", 1)  # fmt: skip
    gallery = maco_hub.explain(loaded("resnet"), layer=name, channels="all", batch_size=5, **QUICK)
    assert _atlas(gallery) == [(name, unit) for unit in range(units)]
    assert {item.kind for item in gallery} == {"channel"}
    assert len({item.key for item in gallery}) == units


def test_several_layers_layer_by_layer(tiny_zoo, caplog):
    layers = _small_layers("vit", 2, "tokens")
    with caplog.at_level(logging.INFO, logger="maco_hub"):
        gallery = maco_hub.explain(
            loaded("vit"), layers=[name for name, _ in layers], channels="all", batch_size=16, **QUICK
        )
    assert _atlas(gallery) == [(name, unit) for name, units in layers for unit in range(units)]
    for name, units in layers:
        assert f"Visualizing all {units} units of layer {name}" in caplog.text
    total = sum(units for _, units in layers)
    assert f"{total} objectives in {-(-total // 16)} batches of up to 16 images" in caplog.text
    picked = maco_hub.explain(loaded("vit"), layers=[name for name, _ in layers], channels=[1, 0], **QUICK)
    assert _atlas(picked) == [(name, unit) for name, _ in layers for unit in (1, 0)]


def test_an_interrupted_layer_resumes_and_reads_back_in_unit_order(tiny_zoo, tmp_path, monkeypatch):
    (name, units), = _small_layers("resnet", 1)  # fmt: skip
    out = tmp_path / "atlas"
    real_run_batch = maco_hub.explainer.run_batch
    calls = []

    def dies_on_the_third_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_run_batch(*args, **kwargs)

    monkeypatch.setattr(maco_hub.explainer, "run_batch", dies_on_the_third_batch)
    with pytest.raises(KeyboardInterrupt):
        maco_hub.explain(loaded("resnet"), layer=name, channels="all", batch_size=4, out=out, **QUICK)
    assert len(maco_hub.load_gallery(out)) == 8  # two batches were kept
    monkeypatch.setattr(maco_hub.explainer, "run_batch", real_run_batch)
    gallery = maco_hub.explain(loaded("resnet"), layer=name, channels="all", batch_size=4, out=out, **QUICK)
    assert sorted(_atlas(gallery)) == [(name, unit) for unit in range(units)]  # each unit once
    assert _atlas(gallery) == [(name, unit) for unit in range(units)]  # appended in unit order

    # the Hub viewer's columns: the card's features and what `datasets` reads
    import datasets

    card = (out / "README.md").read_text()
    features = yaml.safe_load(card.split("---")[1])["dataset_info"]["features"]
    assert {"name": "layer", "dtype": "string"} in features and {"name": "unit", "dtype": "int64"} in features
    table = datasets.load_dataset(str(out), split="train")
    assert table.features["unit"].dtype == "int64" and table.features["layer"].dtype == "string"
    assert sorted(zip(table["layer"], table["unit"], strict=True)) == [(name, u) for u in range(units)]


def test_cli_repeated_layer_and_channels_all(tiny_zoo, tmp_path, maco_cli):
    layers = _small_layers("resnet", 2)
    out = tmp_path / "atlas"
    arguments = [arg for name, _ in layers for arg in ("--layer", name)]
    done = maco_cli(
        "explain", str(tiny_zoo["resnet"].path), *arguments, "--channels", "all", "--out", str(out), *RUN
    )
    assert done.returncode == 0, done.stderr
    total = sum(units for _, units in layers)
    assert f"gallery of {total} rows" in done.stdout
    assert _atlas(maco_hub.load_gallery(out)) == [(n, u) for n, units in layers for u in range(units)]
    again = maco_cli(
        "explain", str(tiny_zoo["resnet"].path), *arguments, "--channels", "all", "--out", str(out), *RUN
    )
    assert again.returncode == 0 and f"gallery of {total} rows" in again.stdout


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (["--channels", "0", "x"], "argument --channels: 'x' is not a unit index: give integers"),
        (["--channels", "every"], "'every' is not a unit index"),
    ],
)
def test_cli_bad_channels_exit_2(tiny_zoo, tmp_path, arguments, named):
    done = subprocess_cli("explain", "m", "--layer", "a", *arguments, "--out", str(tmp_path / "g"))
    assert done.returncode == 2 and named in done.stderr


def test_cli_unknown_layer_exit_2(tiny_zoo, tmp_path, maco_cli):
    model = str(tiny_zoo["resnet"].path)
    done = maco_cli("explain", model, "--layer", "resnet.nope", "--channels", "all", *RUN)
    assert done.returncode == 2 and "Layer 'resnet.nope' is not a hookable module" in done.stderr


@pytest.mark.parametrize(
    ("arguments", "error", "named"),
    [
        ({"layer": "a", "layers": ["b"], "channels": "all"}, ConfigError, "not both"),
        ({"layers": [], "channels": "all"}, ConfigError, r"layers=\[\] is empty"),
        ({"layers": "resnet.encoder", "channels": "all"}, ConfigError, "is not a list"),
        ({"layers": ["resnet.encoder"]}, ConfigError, "needs channels"),
        ({"layer": "resnet.encoder", "channels": "some"}, ConfigError, "channels='some' is a single string"),
        ({"layer": "resnet.encoder"}, ConfigError, "or channels='all'"),
        ({"layers": [3], "channels": "all"}, ConfigError, "layer=3 must be a module path"),
        ({"layers": ["resnet.encodr"], "channels": "all"}, LayerNotFoundError, "resnet.encoder"),
    ],
)
def test_bad_layer_arguments_name_the_value(tiny_zoo, arguments, error, named):
    with pytest.raises(error, match=named):
        maco_hub.explain(loaded("resnet"), **{**QUICK, **arguments})


def test_a_large_run_without_a_folder_is_warned_about(tiny_zoo, monkeypatch, caplog):
    monkeypatch.setattr(maco_hub.explainer, "LARGE_RUN", 4)
    (name, units), = _small_layers("resnet", 1)  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="maco_hub"):
        maco_hub.explain(loaded("resnet"), layer=name, channels="all", batch_size=8, **QUICK)
    assert f"{units} images will be kept in memory" in caplog.text and "pass out=DIR" in caplog.text
