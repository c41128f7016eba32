"""layers() and capture() on tiny checkpoints: real module paths, scoped hooks."""

from __future__ import annotations

import pytest
import torch
from helpers import hook_count
from tiny_models import BUILDERS, loaded

from maco_hub.errors import ConfigError, LayerNotFoundError
from maco_hub.models.hooks import LayerInfo, capture
from maco_hub.models.inspection import layers


@pytest.mark.parametrize("family", list(BUILDERS))
def test_layers_are_real_module_paths_with_right_kinds(tiny_zoo, family):
    tiny, model = tiny_zoo[family], loaded(family)
    before = hook_count(model.module)
    infos = layers(model)
    order = {name: i for i, (name, _) in enumerate(model.module.named_modules())}
    assert infos and all(isinstance(info, LayerInfo) for info in infos)
    assert all(info.name in order for info in infos)
    assert [order[i.name] for i in infos] == sorted(order[i.name] for i in infos)
    for info in infos:
        assert info.kind == {3: "conv", 2: "tokens", 1: "vector"}[len(info.shape)]
        assert info.units == (info.shape[-1] if info.kind == "tokens" else info.shape[0])
        assert "Dropout" not in info.module_type and "Identity" not in info.module_type
    middle = {info.name: info for info in infos}[tiny.middle_layer]
    assert middle.kind == tiny.middle_kind and middle.prefix_tokens == tiny.prefix_tokens
    assert hook_count(model.module) == before


def test_layer_shapes_match_hidden_states(tiny_zoo):
    model = loaded("vit")
    pixels = torch.rand(2, 3, 32, 32)
    hidden = model.module(pixel_values=pixels, output_hidden_states=True).hidden_states
    info = {i.name: i for i in layers(model)}["vit.layers.1"]
    assert info.shape == tuple(hidden[2].shape[1:])
    with capture(model, ["vit.layers.1"]) as store:
        model.forward(pixels)
        captured = store.take()
    torch.testing.assert_close(captured["vit.layers.1"], hidden[2])


def test_convnext_channels_last_internals_are_not_listed(tiny_zoo):
    names = {info.name for info in layers(loaded("convnext"))}
    assert "convnext.encoder.stages.0.layers.0.dwconv" in names
    assert "convnext.encoder.stages.0.layers.0.pwconv1" not in names


def test_layers_accepts_folders_and_modules(tiny_zoo):
    by_path = [info.name for info in layers(tiny_zoo["resnet"].path)]
    assert by_path == [info.name for info in layers(loaded("resnet"))]
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten())
    infos = layers(net, preprocessing={"mean": (0.5,) * 3, "std": (0.5,) * 3, "size": 10})
    assert [(i.name, i.kind, i.shape) for i in infos] == [
        ("0", "conv", (4, 8, 8)),
        ("1", "conv", (4, 8, 8)),
        ("2", "vector", (256,)),
    ]


def test_capture_hooks_only_named_layers_and_clears(tiny_zoo):
    model = loaded("deit")
    names = ["deit.layers.0", "deit.layernorm"]
    before = hook_count(model.module)
    with capture(model, names) as store:
        assert hook_count(model.module) == before + 2
        model.forward(torch.rand(3, 3, 32, 32))
        first = store.take()
        assert set(first) == set(names) and first["deit.layers.0"].shape == (3, 18, 32)
        assert store.take() == {}
    assert hook_count(model.module) == before


def test_capture_removes_hooks_on_error(tiny_zoo):
    model = loaded("swin")
    before = hook_count(model.module)
    with pytest.raises(RuntimeError, match="boom"), capture(model, ["swin.layernorm"]):
        assert hook_count(model.module) == before + 1
        raise RuntimeError("boom")
    assert hook_count(model.module) == before


def test_unknown_layer_lists_close_names(tiny_zoo):
    model = loaded("vit")
    before = hook_count(model.module)
    with pytest.raises(LayerNotFoundError) as info:
        with capture(model, ["vit.layer.0"]):
            pass
    message = str(info.value)
    assert "'vit.layer.0'" in message and "vit.layers.0" in message
    assert "maco_hub.layers(model)" in message and "maco-hub layers" in message
    assert hook_count(model.module) == before


def test_conv_output_with_channels_equal_to_height_is_kept():
    """Conv2d(3, 16) on a 16x24 input gives (16, 16, 24): channels-first, not channels-last."""
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(16, 24, 1), torch.nn.Flatten()
    )
    infos = layers(net, preprocessing={"mean": (0.5,) * 3, "std": (0.5,) * 3, "size": (16, 24)})
    assert [(i.name, i.kind, i.units) for i in infos[:3]] == [
        ("0", "conv", 16),
        ("1", "conv", 16),
        ("2", "conv", 24),
    ]


def test_layers_filters_by_name_and_kind(tiny_zoo):
    model = loaded("vit")
    every = layers(model)
    some = layers(model, grep="LAYERS.1", kind="tokens")
    assert 0 < len(some) < len(every)
    assert all("layers.1" in i.name and i.kind == "tokens" for i in some)
    assert [i.name for i in some] == [i.name for i in every if i in some]  # module order kept
    with pytest.raises(ConfigError, match="'conv2d'"):
        layers(model, kind="conv2d")


def test_unknown_layer_suggests_the_full_path_of_a_suffix(tiny_zoo):
    with pytest.raises(LayerNotFoundError, match=r"Closest: vit\.layers\.1[,.]"):
        with capture(loaded("vit"), ["layers.1"]):
            pass
