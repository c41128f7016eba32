"""Objectives on tiny checkpoints: scores, gradients, validation errors, algebra, parsing."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest
import torch
from helpers import hook_count
from tiny_models import BACKBONES, BUILDERS, CLASSIFIERS, loaded

from maco_hub.errors import (
    ClassNotFoundError,
    ConfigError,
    LayerNotFoundError,
    NoClassifierHeadError,
    UnitOutOfRangeError,
)
from maco_hub.models.hooks import capture, layer_table
from maco_hub.models.loader import load_model
from maco_hub.objectives import Channel, ClassLogit, Direction, LayerEnergy, Neuron, Objective, Sum, parse
from maco_hub.objectives.records import objective_from_record, objective_to_record
from maco_hub.objectives.scoring import scoring

INDEX = torch.tensor([0, 1, 0, 1])


def _pixels(model, rows: int = 4, *, grad: bool = False) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randn(rows, 3, *model.preprocessing.size, generator=generator)
    return pixels.requires_grad_(grad)


def _activation(model, layer: str, pixels: torch.Tensor) -> torch.Tensor:
    with torch.no_grad(), capture(model, [layer]) as store:
        model.forward(pixels)
        return store.take()[layer]


def _scores(model, objectives, pixels, index=INDEX) -> torch.Tensor:
    with scoring(model, objectives) as score_fn:
        return score_fn(pixels, index)


@pytest.mark.parametrize("family", CLASSIFIERS)
def test_class_objective_scores_are_the_logits(tiny_zoo, family):
    model = loaded(family)
    pixels = _pixels(model)
    scores = _scores(model, [ClassLogit(3), ClassLogit("tiger cat")], pixels)
    with torch.no_grad():
        logits = model.logits(model.forward(pixels))
    expected = torch.stack([logits[0, 3], logits[1, 1], logits[2, 3], logits[3, 1]])
    assert scores.dtype == torch.float32 and scores.shape == (4,)
    torch.testing.assert_close(scores.detach(), expected)


@pytest.mark.parametrize("family", list(BUILDERS))
def test_channel_objective_on_a_middle_layer_has_gradients(tiny_zoo, family):
    tiny, model = tiny_zoo[family], loaded(family)
    before = hook_count(model.module)
    pixels = _pixels(model, grad=True)
    scores = _scores(model, [Channel(tiny.middle_layer, 1), Channel(tiny.middle_layer, 2)], pixels)
    assert hook_count(model.module) == before
    act = _activation(model, tiny.middle_layer, pixels.detach())
    if tiny.middle_kind == "conv":
        per_unit = act.mean(dim=(2, 3))
    else:
        per_unit = act.mean(dim=1)
    expected = torch.stack([per_unit[0, 1], per_unit[1, 2], per_unit[2, 1], per_unit[3, 2]])
    torch.testing.assert_close(scores.detach(), expected)
    scores.sum().backward()
    assert pixels.grad is not None and pixels.grad.abs().sum() > 0
    assert all(pixels.grad[r].abs().sum() > 0 for r in range(4))


@pytest.mark.parametrize("family", BACKBONES)
def test_class_objective_on_a_backbone(tiny_zoo, family):
    model = loaded(family)
    with pytest.raises(NoClassifierHeadError, match="channel"):
        _scores(model, [ClassLogit(0)], _pixels(model, 1), torch.tensor([0]))


def test_token_choices_select_the_right_tokens(tiny_zoo):
    model = loaded("deit")  # CLS + distillation token
    pixels = _pixels(model, 2)
    act = _activation(model, "deit.layers.1", pixels)
    index = torch.tensor([0, 0])
    for tokens, expected in [
        ("all", act[:, :, 5].mean(1)),
        ("patch", act[:, 2:, 5].mean(1)),
        ("cls", act[:, 0, 5]),
    ]:
        scores = _scores(model, Channel("deit.layers.1", 5, tokens=tokens), pixels, index)
        torch.testing.assert_close(scores.detach(), expected)


def test_cls_tokens_on_siglip_is_refused(tiny_zoo):
    model = loaded("siglip_vision")
    with pytest.raises(ConfigError, match="no CLS token"):
        Channel("encoder.layers.0", 0, tokens="cls").validate(model)
    Channel("encoder.layers.0", 0, tokens="patch").validate(model)


def test_validation_errors(tiny_zoo):
    model = loaded("vit")
    with pytest.raises(LayerNotFoundError, match=r"vit\.layers\.1"):
        Channel("vit.layer.1", 0).validate(model)
    with pytest.raises(LayerNotFoundError, match="not a conv map"):
        Channel("vit.layers.0.dropout", 0).validate(model)
    with pytest.raises(UnitOutOfRangeError) as info:
        Channel("vit.layers.1", 32).validate(model)
    assert "32" in str(info.value) and "0..31" in str(info.value)
    with pytest.raises(ClassNotFoundError, match="Egyptian cat"):
        ClassLogit("egyptain cat").validate(model)
    with pytest.raises(UnitOutOfRangeError, match=r"0\.\.16"):
        Neuron("vit.layers.1", 0, position=17).validate(model)
    with pytest.raises(ConfigError, match="32 units"):
        Direction("vit.layers.1", [1.0] * 8).validate(model)
    with pytest.raises(ConfigError, match="tokens"):
        Channel("vit.layers.1", 0, tokens="patches")
    with pytest.raises(ConfigError):
        Channel("vit.layers.1", 1.5)


def test_scoring_removes_hooks_on_error(tiny_zoo):
    model = loaded("resnet")
    before = hook_count(model.module)
    with pytest.raises(RuntimeError, match="engine failed"):
        with scoring(model, [LayerEnergy("resnet.encoder.stages.1")]) as score_fn:
            assert hook_count(model.module) == before + 1
            score_fn(_pixels(model, 2), torch.tensor([0, 0]))
            raise RuntimeError("engine failed")
    assert hook_count(model.module) == before


def test_micro_batches_score_like_the_full_batch(tiny_zoo):
    model = loaded("convnext")
    objectives = [Channel("convnext.encoder.stages.1", 3), ClassLogit(2, log_softmax=True)]
    pixels = _pixels(model)
    with scoring(model, objectives) as score_fn:
        full = score_fn(pixels, INDEX)
        halves = torch.cat([score_fn(pixels[:1], INDEX[:1]), score_fn(pixels[1:], INDEX[1:])])
        with pytest.raises(ConfigError, match=r"0\.\.1"):
            score_fn(pixels, torch.tensor([0, 1, 2, 0]))
    torch.testing.assert_close(full, halves)
    with torch.no_grad():
        log_p = model.logits(model.forward(pixels)).log_softmax(-1)
    torch.testing.assert_close(full[[1, 3]], log_p[[1, 3], 2])


def test_neuron_layer_energy_and_direction(tiny_zoo):
    model = loaded("resnet")
    layer = "resnet.encoder.stages.0"
    pixels = _pixels(model, 2)
    act = _activation(model, layer, pixels)  # (2, 16, 8, 8)
    neuron = Neuron(layer, 4).validate(model)
    assert neuron.position == (4, 4)
    vector = torch.linspace(-1, 1, 16)
    direction = Direction(layer, vector, cosine_power=0.5)
    index = torch.tensor([0, 0])
    torch.testing.assert_close(_scores(model, neuron, pixels, index), act[:, 4, 4, 4])
    torch.testing.assert_close(
        _scores(model, LayerEnergy(layer), pixels, index), act.pow(2).mean(dim=(1, 2, 3))
    )
    flat = act.flatten(2).transpose(1, 2)
    dot = flat @ vector
    cosine = (dot / (flat.norm(dim=-1) * vector.norm())).clamp_min(0.1)
    torch.testing.assert_close(_scores(model, direction, pixels, index), (dot * cosine**0.5).mean(1))
    anti = _scores(model, Direction(layer, -act[0].mean((1, 2)), cosine_power=0.3), pixels, index)
    assert torch.isfinite(anti).all()


def test_neuron_centre_token(tiny_zoo):
    neuron = Neuron("vit.layers.1", 3).validate(loaded("vit"))  # CLS + 4x4 grid
    assert neuron.position == 1 + 2 * 4 + 2
    assert neuron.description == "vit.layers.1 unit 3 at token 11"


def test_algebra_builds_new_objects(tiny_zoo):
    a, b = ClassLogit(3), Channel("vit.layers.1", 5, tokens="patch")
    a_copy, b_copy = dataclasses.replace(a), dataclasses.replace(b)
    total, diff, double = a + b, a - b, 2 * a
    for combined in (total, diff, double, -b, b / 4, a * 0.5):
        assert isinstance(combined, Sum) and combined.kind == "sum"
    assert a == a_copy and b == b_copy and a is not total
    assert total.description == "class 3 (logit) + vit.layers.1 channel 5 (mean over patch tokens)"
    assert diff.description == "class 3 (logit) - vit.layers.1 channel 5 (mean over patch tokens)"
    assert double.description == "2 × class 3 (logit)"
    assert (-b).description.startswith("-vit.layers.1")
    assert (2 * (a - b)).terms == ((2.0, a), (-2.0, b))
    assert sum([a, b]) == total
    assert total.layers == {"vit.layers.1"} and total.needs_logits
    with pytest.raises(TypeError):
        a + "b"


def test_combined_scores_are_linear(tiny_zoo):
    model = loaded("vit")
    a, b = ClassLogit(3), Channel("vit.layers.1", 5, tokens="patch")
    pixels = _pixels(model, 2)
    index = torch.tensor([0, 0])
    sa, sb = _scores(model, a, pixels, index), _scores(model, b, pixels, index)
    torch.testing.assert_close(_scores(model, a - 0.5 * b, pixels, index), sa - 0.5 * sb)
    torch.testing.assert_close(_scores(model, 2 * a + b / 4, pixels, index), 2 * sa + sb / 4)


def test_validate_resolves_names_and_metadata(tiny_zoo):
    model = loaded("vit")
    resolved = ClassLogit("Egyptian cat").validate(model)
    assert (resolved.class_id, resolved.label, resolved.kind) == (2, "Egyptian cat", "class")
    assert resolved.description == "class 2 'Egyptian cat' (logit)"
    channel = Channel("vit.layers.1", 7).validate(model)
    assert channel.description == "vit.layers.1 channel 7 (mean over all tokens)"
    assert (channel.layer, channel.unit, channel.class_id, channel.kind) == (
        "vit.layers.1",
        7,
        None,
        "channel",
    )
    conv = Channel("resnet.encoder.stages.0", 2).validate(loaded("resnet"))
    assert conv.description == "resnet.encoder.stages.0 channel 2 (mean over space)"
    assert LayerEnergy("vit.layers.1").kind == "layer"
    assert isinstance(resolved, Objective) and not channel.needs_logits


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("vit.layers.1:12", Channel("vit.layers.1", 12)),
        ("class:3", ClassLogit(3)),
        ("class:tabby cat", ClassLogit("tabby cat")),
        ("vit.layers.1", LayerEnergy("vit.layers.1")),
    ],
)
def test_parse(text, expected):
    assert parse(text) == expected


def test_parse_with_model_and_errors(tiny_zoo):
    assert parse("class:tabby cat", model=loaded("vit")).class_id == 0
    for bad in ("", "vit.layers.1:x", "class:", "two words", ":3"):
        with pytest.raises(ConfigError, match="LAYER:UNIT"):
            parse(bad)


def test_scores_are_float32_under_bfloat16_autocast(tiny_zoo):
    model = loaded("vit")
    pixels = _pixels(model)
    objectives = [ClassLogit(1), Channel("vit.layers.1", 3, tokens="patch")]
    reference = _scores(model, objectives, pixels)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = _scores(model, objectives, pixels)
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, reference, atol=0.1, rtol=0.05)


def test_score_fn_exposes_validated_objectives(tiny_zoo):
    model = loaded("vit")
    with scoring(model, [ClassLogit("tiger cat"), Channel("vit.layers.1", 3)]) as score_fn:
        assert [o.description for o in score_fn.objectives] == [
            "class 1 'tiger cat' (logit)",
            "vit.layers.1 channel 3 (mean over all tokens)",
        ]


@pytest.mark.parametrize(
    "make",
    [
        lambda layer: Channel(layer, 1, tokens="patch"),
        lambda layer: Channel(layer, 1, tokens="cls"),
        lambda layer: Direction(layer, [1.0] * 16, tokens="patch"),
    ],
)
def test_token_choice_on_a_conv_layer_is_refused(tiny_zoo, make):
    model = loaded("resnet")
    layer = next(i for i in layer_table(model).values() if i.kind == "conv" and i.units == 16).name
    with pytest.raises(ConfigError, match=f"layer '{layer}' is a conv"):
        make(layer).validate(model)
    Channel(layer, 1).validate(model)  # tokens="all", the default, is fine


@pytest.mark.parametrize("name", ["resnet", "vit"])
def test_device_path_scores_and_gradients_equal_the_host_path(tiny_zoo, name):
    """On an accelerator every objective scores all rows and keeps its own (no host sync); on the
    CPU each scores only its rows. Both give the same scores and the same gradients."""
    model = loaded(name)
    layer = {"resnet": "resnet.encoder.stages.1", "vit": "vit.layers.1"}[name]
    objectives = [
        ClassLogit(1),
        Channel(layer, 3),
        LayerEnergy(layer),
        Direction(layer, [1.0] * 32),
        ClassLogit(0, log_softmax=True),
    ]
    index = torch.tensor([4, 0, 2, 0, 1, 3, 3, 2])
    results = []
    with scoring(model, objectives) as score_fn:
        for path in ("grouped", "masked"):
            pixels = _pixels(model, len(index), grad=True)
            score_fn._store.clear()
            outputs = model.forward(pixels)
            acts, logits = score_fn._store.take(), model.logits(outputs)
            scores = (
                score_fn._grouped(index, pixels.device, acts, logits)
                if path == "grouped"
                else score_fn._masked(index, acts, logits)
            )
            (gradient,) = torch.autograd.grad(scores.sum(), pixels)
            results.append((scores.detach(), gradient))
        torch.testing.assert_close(results[0][0], score_fn(_pixels(model, len(index)), index))
    torch.testing.assert_close(results[1][0], results[0][0])
    torch.testing.assert_close(results[1][1], results[0][1])


@pytest.mark.gpu
def test_scoring_never_makes_the_cuda_step_loop_wait(tiny_zoo):
    """A real model's score function (hooks, several objectives) in the engine: after the first
    model call, nothing makes the host wait for the device (torch's sync debug mode errors)."""
    from maco_hub.engine import EngineConfig, optimize

    model = load_model(tiny_zoo["vit"].path, device="cuda")  # its own copy: loaded("vit") is shared
    layer = "vit.layers.1"
    calls = []
    with scoring(model, [ClassLogit(1), Channel(layer, 3), LayerEnergy(layer)]) as score_fn:

        def watched(pixels, index):
            calls.append(1)
            torch.cuda.set_sync_debug_mode("error" if torch.is_grad_enabled() and len(calls) > 1 else 0)
            return score_fn(pixels, index)

        try:
            result = optimize(
                watched,
                model.preprocessing,
                seeds=[0, 1, 2],
                device="cuda",
                config=EngineConfig(steps=6, canvas=64, crops=3, crops_per_forward=4),
            )
        finally:
            torch.cuda.set_sync_debug_mode(0)
    assert len(calls) > 6 and torch.isfinite(result.images).all()


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    ("build", "named"),
    [
        (lambda: ClassLogit(0) * NAN, "by nan: the weight nan is not a finite number"),
        (lambda: INF * ClassLogit(0), "by inf: the weight inf is not a finite number"),
        (lambda: ClassLogit(0) / 1e-320, "divide objective 'class 0 (logit)' by 1e-320: the weight inf"),
        (lambda: ClassLogit(0) / INF, "divide objective 'class 0 (logit)' by inf"),
        (lambda: ClassLogit(0) * 1e30 * 1e30, "weight 1.0000000000000001e+60 of 'class 0 (logit)'"),
        (lambda: ClassLogit(0) * 1e-320, "weight 1e-320 of 'class 0 (logit)' is unusable"),
        (lambda: Sum(((NAN, ClassLogit(0)),)), "weight nan of 'class 0 (logit)' is unusable"),
        (lambda: Sum(((1.0, "class:0"),)), "Sum term 'class:0' is not an objective"),
        (lambda: Sum(()), "at least one"),
    ],
)
def test_objective_weights_float32_cannot_carry_are_refused(build, named):
    """ClassLogit(0) * nan (also inf, / 1e-320) gave a black image, a NaN score and exit 0."""
    with pytest.raises(ConfigError, match=re.escape(named)):
        build()


def test_weights_that_fit_keep_their_value_and_record():
    a = ClassLogit(0)
    assert (a * np.float32(2)).terms == ((2.0, a),) and type((a * np.float32(2)).terms[0][0]) is float
    assert (a * 0).terms == ((0.0, a),)
    assert Sum(((1, a),)).terms == ((1, a),)  # as given: its record (and row key) stays the same
    with pytest.raises(ConfigError, match="weight nan"):
        objective_from_record({"type": "Sum", "terms": [["NaN", objective_to_record(a)]]})


@pytest.mark.parametrize(
    ("vector", "options", "named"),
    [
        ([INF] + [1.0] * 15, {}, "entry 0 is inf (non-finite)"),
        ([1.0, NAN] + [1.0] * 14, {}, "entry 1 is nan (non-finite)"),
        ([NAN] * 16, {}, "entry 0 is nan (non-finite)"),  # was told to be "non-zero"
        ([1e300] + [1.0] * 15, {}, "largest entry 1e+300) does not fit float32"),
        ([1e38] * 16, {}, "does not fit float32"),  # each entry fits, their norm does not
        ([0.0] * 16, {}, "is zero"),
        ([1e-320] * 16, {}, "is zero (in float32)"),
        ([1.0] * 16, {"cosine_power": NAN}, "cosine_power=nan is invalid"),
        ([1.0] * 16, {"cosine_power": INF}, "cosine_power=inf is invalid"),
        ([1.0] * 16, {"cosine_power": -1}, "cosine_power=-1 is invalid"),
        ([1.0] * 16, {"cosine_power": "2"}, "cosine_power='2' is invalid"),
    ],
)
def test_direction_refuses_what_float32_scores_cannot_carry(vector, options, named):
    with pytest.raises(ConfigError, match=re.escape(named)):
        Direction("resnet.encoder.stages.0", vector, **options)


@pytest.mark.parametrize(
    ("build", "named"),
    [
        (lambda: ClassLogit(True), "class_id=True must be a class index"),
        (lambda: ClassLogit(1.0), "class_id=1.0 must be a class index"),
        (lambda: ClassLogit(None), "class_id=None"),
        (lambda: ClassLogit(0, log_softmax="yes"), "log_softmax='yes'"),
        (lambda: ClassLogit(0, label=3), "label=3"),
        (lambda: Channel("vit.layers.1", True), "unit=True"),
        (lambda: Channel("vit.layers.1", np.float64(3)), "unit=np.float64(3.0)"),
        (lambda: Channel(3, 0), "layer=3 must be a module path"),
        (lambda: LayerEnergy(""), "layer='' must be a module path"),
        (lambda: Neuron("vit.layers.1", 0, position=(1.5, 2)), "position y=1.5"),
        (lambda: Neuron("vit.layers.1", 0, position=True), "position=True"),
        (lambda: Neuron("vit.layers.1", 0, position="centre"), "position='centre'"),
    ],
)
def test_bools_floats_and_other_types_are_refused_in_one_line(build, named):
    with pytest.raises(ConfigError, match=re.escape(named)):
        build()


def test_numpy_integers_are_ints_so_records_stay_json(tiny_zoo):
    """Channel(layer, np.int64(3)) ended in "Object of type int64 is not JSON serializable"."""
    model = loaded("resnet")
    layer = "resnet.encoder.stages.0"
    made = [
        Channel(layer, np.int64(3)),
        Neuron(layer, np.int32(2), position=(np.int64(1), np.int8(2))),
        ClassLogit(np.int64(2)),
        ClassLogit(torch.tensor(1)),
    ]
    plain = [Channel(layer, 3), Neuron(layer, 2, position=(1, 2)), ClassLogit(2), ClassLogit(1)]
    assert made == plain
    for objective in made:
        record = json.loads(json.dumps(objective_to_record(objective.validate(model))))
        assert objective_from_record(record) == objective.validate(model)
