"""Inversion, feature accentuation and diversity on tiny models: objectives, engine guides, rows."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from helpers import QUICK
from PIL import Image
from tiny_models import loaded

import maco_hub
from maco_hub import objectives as obj
from maco_hub._image_files import read_image
from maco_hub.engine import EngineConfig, optimize
from maco_hub.engine.guides import Guides, pixel_distance
from maco_hub.errors import ConfigError, ImageError, LayerNotFoundError
from maco_hub.models.preprocessing import Preprocessing
from maco_hub.objectives.guided import GramDiversity, bind_images, mean_gram_similarity
from maco_hub.objectives.records import objective_from_record, objective_to_record

PRE = Preprocessing(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), size=(24, 24))


@pytest.fixture(scope="module")
def picture() -> np.ndarray:
    """A smooth colour picture (not noise), 48 × 64."""
    y, x = np.mgrid[0:48, 0:64] / 64
    return (np.stack([np.sin(6 * x), np.cos(5 * y), np.sin(4 * (x + y))], axis=-1) * 110 + 128).astype(
        np.uint8
    )


@pytest.fixture(scope="module")
def resnet():
    return loaded("resnet")


def _pixels(item) -> np.ndarray:
    return np.asarray(item.image, dtype=np.float64) / 255


def _seed_at_canvas(picture, canvas) -> np.ndarray:
    return read_image(picture).at_canvas(canvas).astype(np.float64) / 255


# ------------------------------------------------------------------------------- objectives


def test_an_inversion_records_its_image_by_sha256_and_binds_it_back(picture, resnet, tiny_zoo):
    layer = tiny_zoo["resnet"].middle_layer
    inversion = obj.Inversion(picture, layer).validate(resnet)
    record = objective_to_record(inversion)
    assert record == {
        "type": "Inversion",
        "layer": layer,
        "image_sha256": read_image(picture).sha256,
        "layer_kind": "conv",
    }
    rebuilt = objective_from_record(record)
    assert rebuilt.image is None and rebuilt.description == inversion.description
    with pytest.raises(ConfigError, match="has no image: load its gallery row"):
        rebuilt.validate(resnet)
    with pytest.raises(ConfigError, match="is missing: pass it, or load the gallery"):
        bind_images(rebuilt, {})
    bound = bind_images(0.5 * rebuilt, {inversion.image_sha256: read_image(picture)})
    assert bound.terms[0][1].image == inversion.image
    with pytest.raises(ConfigError, match="not the image_sha256"):
        obj.Inversion(picture[::-1].copy(), layer, image_sha256=inversion.image_sha256)
    with pytest.raises(ImageError, match="does not exist"):
        obj.Inversion("no-such-photo.png", layer)
    with pytest.raises(ConfigError, match="one objective can bring one image"):
        (obj.Inversion(picture, layer) + obj.Inversion(picture[:, ::-1].copy(), layer)).reference_image  # noqa: B018


def test_the_gram_penalty_is_the_mean_similarity_to_the_other_variants():
    from maco_hub.models.hooks import LayerInfo

    conv = LayerInfo("l", "Conv2d", "conv", (4, 3, 3), 4)
    penalty = GramDiversity("l", 2.0, [0, 0, 1], conv)
    acts = torch.rand(3, 4, 3, 3, generator=torch.Generator().manual_seed(0))
    acts[1] = acts[0]
    first = penalty({"l": acts}, torch.tensor([0, 1, 2]))
    assert torch.allclose(first, torch.zeros(3))  # nothing known of the others yet
    second = penalty({"l": acts.requires_grad_(True)}, torch.tensor([0, 1, 2]))
    assert second[0].item() == pytest.approx(2.0, rel=1e-5) and second[1].item() == pytest.approx(
        2.0, rel=1e-5
    )
    assert second[2].item() == 0  # alone in its group
    second.sum().backward()
    assert acts.grad[2].abs().sum() == 0 and acts.grad[0].abs().sum() > 0
    assert mean_gram_similarity(acts[:2].detach(), conv) == pytest.approx(1.0, rel=1e-5)
    with pytest.raises(ConfigError, match="diversity=-1 must be a finite number >= 0"):
        GramDiversity("l", -1, [0], conv)


# ------------------------------------------------------------------------------- engine guides


@pytest.mark.parametrize("resample", ["per_crop", "batched"])
def test_references_are_cut_with_the_images_crops_and_noise(resample):
    """At step 0 the image is its start picture: its crops and the reference's must be equal."""
    picture = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(1))
    picture = (picture * 255).round() / 255
    seen = []

    def score(pixels, index, references):
        seen.append((pixels - references).abs().max().item())
        return -(pixels - references).pow(2).flatten(1).mean(1)

    config = EngineConfig(steps=2, canvas=40, crops=3, noise=0.1, resample=resample)
    optimize(
        score,
        PRE,
        seeds=[0, 1],
        config=config,
        device="cpu",
        guides=Guides(start=picture, references=picture),
    )
    assert seen[0] < 0.02  # same boxes, same noise: the seeded image is its picture (up to 1/512)
    assert len(seen) > 1


def test_references_pull_an_image_towards_them():
    target = torch.full((1, 3, 32, 32), 0.3)
    target[..., 8:24, 8:24] = 0.7

    def score(pixels, index, references):
        return -(pixels - references).pow(2).flatten(1).mean(1)

    def correlation(images):
        return float(torch.corrcoef(torch.stack([images.flatten(), target.flatten()]))[0, 1])

    config = EngineConfig(steps=30, canvas=32, crops=2, noise=0, method="fourier")  # any picture reachable
    runs = [
        optimize(
            score,
            PRE,
            seeds=[0],
            config=dataclasses.replace(config, steps=s),
            device="cpu",
            guides=Guides(references=target),
        ).images
        for s in (1, 30)
    ]
    assert correlation(runs[1]) > 0.6 and correlation(runs[1]) > correlation(runs[0]) + 0.3


@pytest.mark.parametrize(
    ("guides", "named"),
    [
        (Guides(start=torch.rand(2, 3, 32, 32)), r"guides.start is \(2, 3, 32, 32\)"),
        (Guides(references=torch.full((1, 3, 32, 32), 2.0)), "finite RGB values in"),
        (Guides(anchor_weights=[1.0]), "pass start too"),
        (Guides(start=torch.rand(1, 3, 32, 32), anchor_weights=[-1.0]), "finite numbers >= 0"),
    ],
)
def test_bad_guides_are_one_clear_error(guides, named):
    with pytest.raises(ConfigError, match=named):
        optimize(
            lambda p, i: p.mean((1, 2, 3)),
            PRE,
            seeds=[0],
            config=EngineConfig(steps=1, canvas=32),
            device="cpu",
            guides=guides,
        )


# ------------------------------------------------------------------------------- explain


def test_accentuation_starts_from_the_image_and_its_weight_keeps_it_close(picture, resnet):
    seed = _seed_at_canvas(picture, 48)
    settings = {**QUICK, "steps": 12}
    loose, close = (
        maco_hub.explain(resnet, classes=[2], image=picture, image_weight=w, **settings)[0]
        for w in (0.0, 200.0)
    )
    assert close.record.accentuation == {
        "image_sha256": read_image(picture).sha256,
        "layer": None,
        "weight": 200.0,
    }
    far, near = (np.abs(_pixels(item) - seed).mean() for item in (loose, close))
    assert near < 0.6 * far, (near, far)
    assert close.key != loose.key and set(close.inputs) == {read_image(picture).sha256}
    one_step = maco_hub.explain(resnet, classes=[2], image=picture, **{**QUICK, "steps": 1})[0]
    assert np.abs(_pixels(one_step) - seed).mean() < 0.05  # it starts as the picture


def test_accentuation_in_a_layer_compares_the_same_crops(picture, resnet, tiny_zoo):
    layer = tiny_zoo["resnet"].middle_layer
    items = [
        maco_hub.explain(
            resnet, classes=[2], image=picture, image_layer=layer, image_weight=w, **{**QUICK, "steps": 12}
        )[0]
        for w in (0.0, 200.0)
    ]
    assert items[1].record.accentuation["layer"] == layer
    seed = torch.from_numpy(_seed_at_canvas(picture, 48)).permute(2, 0, 1)[None].float()
    far, near = (
        float(pixel_distance(torch.from_numpy(_pixels(i)).permute(2, 0, 1)[None].float(), seed))
        for i in items
    )
    assert near < far
    plain = maco_hub.explain(resnet, classes=[2], **QUICK)[0]
    assert plain.record.accentuation is None and "accentuation" not in plain.record.to_dict()


@pytest.mark.parametrize(
    ("arguments", "error", "named"),
    [
        ({"image": "no-such-photo.png"}, ImageError, "image 'no-such-photo.png' does not exist"),
        ({"image_layer": "layer1"}, ConfigError, "apply to image=...: pass the image"),
        ({"image": np.zeros((20, 20, 3), np.uint8), "image_weight": -1}, ConfigError, "image_weight=-1"),
        ({"variants": 0}, ConfigError, "variants=0 must be an integer from 1 to 64"),
        ({"variants": 1000}, ConfigError, "variants=1000 must be an integer from 1 to 64"),
        ({"variants": True}, ConfigError, "variants=True must be an integer"),
        ({"diversity": 1.0}, ConfigError, "diversity applies to variants > 1"),
        ({"variants": 2, "diversity": float("inf")}, ConfigError, "diversity=inf is invalid"),
    ],
)
def test_bad_method_options_are_refused_before_any_model_loads(arguments, error, named):
    with pytest.raises(error, match=named):
        maco_hub.explain("no-such/model-anywhere", classes=[0], **arguments)


def test_layers_of_the_options_are_checked_against_the_model(picture, resnet):
    with pytest.raises(LayerNotFoundError):
        maco_hub.explain(resnet, classes=[0], image=picture, image_layer="no.such.layer", **QUICK)
    with pytest.raises(LayerNotFoundError):
        maco_hub.explain(resnet, classes=[0], variants=2, diversity_layer="no.such.layer", **QUICK)
    with pytest.raises(ConfigError, match="explain Inversion objectives without image="):
        maco_hub.explain(
            resnet, objectives=[obj.Inversion(picture, "resnet.embedder")], image=picture, **QUICK
        )


def test_inversion_rows_get_closer_to_their_image(picture, resnet, tiny_zoo):
    inversion = obj.Inversion(picture, tiny_zoo["resnet"].middle_layer)
    short, longer = (
        maco_hub.explain(resnet, objectives=[inversion], **{**QUICK, "steps": s})[0] for s in (1, 25)
    )
    assert short.kind == "inversion" and short.score < 0
    assert longer.score > short.score  # -‖a - r‖² / ‖r‖² of the whole canvas: closer
    assert set(longer.inputs) == {inversion.image_sha256}


def test_variants_are_consecutive_rows_of_one_batch_keyed_by_their_index(resnet):
    gallery = maco_hub.explain(resnet, classes=[0, 1], variants=3, diversity=1.0, batch_size=4, **QUICK)
    assert [(item.class_id, item.record.variant) for item in gallery] == [
        (0, 0),
        (0, 1),
        (0, 2),
        (1, 0),
        (1, 1),
        (1, 2),
    ]
    assert len({item.seed for item in gallery}) == 6 and len({item.key for item in gallery}) == 6
    assert {item.record.batch_id for item in gallery[:3]} != {item.record.batch_id for item in gallery[3:]}
    assert len({item.record.batch_id for item in gallery[:3]}) == 1  # a batch never splits them
    assert gallery[0].record.diversity == {
        "variants": 3,
        "weight": 1.0,
        "layer": gallery[0].record.diversity["layer"],
    }
    plain = maco_hub.explain(resnet, classes=[0], **QUICK)[0]
    assert plain.record.variant is None and "variant" not in plain.record.to_dict()
    assert gallery[0].seed == plain.seed and gallery[0].key != plain.key  # variant 0 keeps the seed


def test_without_diversity_variants_are_independent_seeds(resnet):
    independent = maco_hub.explain(resnet, classes=[0], variants=2, diversity=0, batch_size=1, **QUICK)
    alone = [maco_hub.explain(resnet, classes=[0], **QUICK)[0]]
    assert np.array_equal(np.asarray(independent[0].image), np.asarray(alone[0].image))
    pushed = maco_hub.explain(resnet, classes=[0], variants=2, diversity=50.0, batch_size=1, **QUICK)
    assert not np.array_equal(np.asarray(pushed[1].image), np.asarray(independent[1].image))


def test_every_kind_of_row_regenerates_from_its_gallery(picture, resnet, tiny_zoo, tmp_path):
    layer = tiny_zoo["resnet"].middle_layer
    rows = [
        *maco_hub.explain(resnet, classes=[1], image=picture, image_layer=layer, method="fourier", **QUICK),
        *maco_hub.explain(resnet, objectives=[obj.Inversion(picture, layer)], **QUICK),
        *maco_hub.explain(resnet, classes=[2], variants=2, **QUICK),
    ]
    maco_hub.save_gallery(rows, tmp_path / "g")
    back = maco_hub.load_gallery(tmp_path / "g")
    assert [item.key for item in back] == [item.key for item in rows]
    for item in back:
        again = maco_hub.regenerate(item, model=resnet, device="cpu")
        assert again.key == item.key
        assert np.abs(np.asarray(again.image, float) - np.asarray(item.image, float)).max() <= 1, (
            item.objective
        )
    bare = dataclasses.replace(back[0], inputs={})
    with pytest.raises(ConfigError, match="which it does not carry"):
        maco_hub.regenerate(bare, model=resnet)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--image", "{tmp}/missing.png"], "missing.png' does not exist"),
        (["--image", "{tmp}/text.png"], "text.png' is not a readable image"),
        (["--image", "{tmp}/huge.png"], "is 5000x8 px; use 8 to 4096 px a side"),
        (["--variants", "0"], "variants=0 must be an integer from 1 to 64"),
        (["--diversity", "2"], "diversity applies to variants > 1"),
    ],
)
def test_cli_bad_method_options_are_one_line_and_exit_2(tiny_zoo, tmp_path, maco_cli, options, named):
    (tmp_path / "text.png").write_text("not an image")
    Image.new("RGB", (5000, 8)).save(tmp_path / "huge.png")
    options = [o.format(tmp=tmp_path) for o in options]
    result = maco_cli(
        "explain", str(tiny_zoo["resnet"].path), "--classes", "0", *options, "--out", str(tmp_path / "g")
    )
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 2 and len(errors) == 1 and named in errors[0], result.stderr
    assert not (tmp_path / "g").exists()


def test_cli_accentuates_a_grayscale_file_and_makes_variants(picture, tiny_zoo, tmp_path, maco_cli):
    path = tmp_path / "photo.png"
    Image.fromarray(picture).convert("L").save(path)  # grayscale: read as RGB
    quick = ["--steps", "2", "--canvas", "32", "--out", str(tmp_path / "g")]
    model = str(tiny_zoo["resnet"].path)
    accented = maco_cli(
        "explain", model, "--classes", "0", "--image", str(path), "--image-weight", "2", *quick
    )
    assert accented.returncode == 0 and "[from image " in accented.stdout, accented.stderr
    varied = maco_cli("explain", model, "--classes", "1", "--variants", "2", "--diversity", "0.5", *quick)
    assert varied.returncode == 0 and "[variant 2 of 2]" in varied.stdout, varied.stderr
    rows = maco_hub.load_gallery(tmp_path / "g")
    assert [r.record.accentuation is not None for r in rows] == [True, False, False]
    assert rows[0].record.accentuation["weight"] == 2.0 and [r.record.variant for r in rows[1:]] == [0, 1]
    assert list(rows[0].inputs) == [read_image(path).sha256]
