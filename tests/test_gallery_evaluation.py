"""Evaluations stored in galleries: shard columns, evaluation.json, card, viewer, CLI and the Hub."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time

import datasets
import helpers
import numpy as np
import pytest
from browser import console_errors
from conftest import PROJECT_ROOT
from PIL import Image
from tiny_models import loaded

import maco_hub
from maco_hub.errors import ConfigError, GalleryError
from maco_hub.gallery.evaluation import ROW_FIELDS, Evaluation, artifact_column
from maco_hub.gallery.folder import GalleryFolder
from maco_hub.gallery.layout import EVALUATION_NAME, MANIFEST_NAME
from maco_hub.gallery.pages import write_pages
from maco_hub.gallery.viewer import render_index_html
from maco_hub.legibility.artifacts import MEASURES, artifact_measures

QUICK = {**helpers.QUICK, "steps": 2, "canvas": 32}


@pytest.fixture
def folder(tiny_zoo, tmp_path):
    """A gallery folder of two class rows and one channel row (not evaluated)."""
    out = tmp_path / "gallery"
    maco_hub.explain(
        loaded("vit"), classes=[0, 3], layer=tiny_zoo["vit"].middle_layer, channels=[1], out=out, **QUICK
    )
    return out


def _manifest(folder):
    return json.loads((folder / MANIFEST_NAME).read_text())


def _listed_and_present(folder):
    listed = sorted(entry["file"].split("/")[-1] for entry in _manifest(folder)["shards"])
    return listed, sorted(p.name for p in (folder / "data").iterdir())


def _forge(folder, record_text: str) -> None:
    """What an attacker who controls the whole folder (or Hub repo) writes: a crafted
    evaluation.json and a manifest whose sha256 matches it."""
    (folder / EVALUATION_NAME).write_text(record_text)
    manifest = _manifest(folder)
    manifest["evaluation"]["sha256"] = hashlib.sha256(record_text.encode()).hexdigest()
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))


def test_evaluate_is_the_function_even_after_its_module_is_imported():
    import maco_hub.legibility

    assert maco_hub.evaluate is maco_hub.legibility.evaluate and callable(maco_hub.evaluate)
    assert maco_hub.save_evaluation.__module__ == "maco_hub.gallery.storage"


def test_results_become_columns_card_section_and_json(folder):
    before = maco_hub.load_gallery(folder)
    old_shards = _listed_and_present(folder)[0]
    result = maco_hub.evaluate(folder, {"deit": loaded("deit")}, crops=2, seed=5, out=folder)

    rows = datasets.load_dataset(str(folder), split="train")
    assert set(result.columns) <= set(rows.column_names)
    for row in rows:
        values = result.rows[row["key"]]
        assert {c: row[c] for c in result.columns} == pytest.approx(dict(values))
    statuses = sorted(rows["eval_deit_status"])
    assert statuses == ["not a class row", "ok", "ok"]
    assert [
        p for p, s in zip(rows["eval_deit_prob"], rows["eval_deit_status"], strict=True) if s != "ok"
    ] == [None]

    listed, present = _listed_and_present(folder)
    assert listed == present and set(listed).isdisjoint(old_shards)  # rewritten, old ones removed
    again = maco_hub.load_gallery(folder)
    assert again.evaluation == result
    assert [i.record for i in again] == [i.record for i in before]  # rows, keys, images unchanged
    assert [i.image.tobytes() for i in again] == [i.image.tobytes() for i in before]
    assert [i.alpha.tobytes() for i in again] == [i.alpha.tobytes() for i in before]

    card = (folder / "README.md").read_text()
    section = card[card.index("## Legibility") : card.index("## Columns")]
    assert "- Judges: deit: deit" in section
    assert "- Crops: 2 per row, 25%–30% of the canvas, seed 5" in section
    assert "- Reference: none" in section and "- Rows evaluated: 3 of 3\n" in section
    assert re.search(r"\| deit \(deit\) \| 2/2 \| \d\.\d\d \|", section)
    assert "name: eval_deit_prob\n    dtype: float64" in card  # the Hub's schema lists the columns
    stored = json.loads((folder / EVALUATION_NAME).read_text())
    assert Evaluation.from_record(stored) == result


def test_integrity_holds_after_evaluation_extend_and_repair(folder):
    maco_hub.evaluate(folder, {"deit": loaded("deit")}, crops=1, out=folder)
    report = GalleryFolder.open(folder)._reconcile()  # opening for writing finds nothing to clean
    assert (report.removed, report.adopted, report.left) == ([], [], [])
    maco_hub.explain(loaded("vit"), classes=[4], out=folder, **QUICK)  # extend the evaluated gallery
    report = maco_hub.repair_gallery(folder)
    assert (report.rows, report.dropped, report.removed) == (4, [], [])
    rows = datasets.load_dataset(str(folder), split="train")
    assert len(rows) == 4 and list(rows["eval_deit_status"]).count(None) == 1  # the new row
    gallery = maco_hub.load_gallery(folder)
    assert len(gallery) == 4 and len(gallery.evaluation.rows) == 3
    assert "- Rows evaluated: 3 of 4 (evaluate again to judge the rest)" in (folder / "README.md").read_text()
    shard = folder / _manifest(folder)["shards"][0]["file"]
    shard.write_bytes(shard.read_bytes()[:-10])  # a damaged shard is still caught
    with pytest.raises(GalleryError, match="sha256"):
        maco_hub.load_gallery(folder)


def test_reevaluation_replaces_the_same_judge_and_keeps_others(folder, tiny_zoo):
    first = maco_hub.evaluate(folder, {"a": loaded("deit")}, crops=2, out=folder)
    maco_hub.evaluate(folder, {"b": loaded("swin")}, crops=2, out=folder)
    both = maco_hub.load_gallery(folder).evaluation
    assert [s["judge"] for s in both.summary] == ["a", "b"]
    assert all(both.rows[k]["eval_a_prob"] == v["eval_a_prob"] for k, v in first.rows.items())
    replaced = maco_hub.evaluate(folder, {"a": loaded("convnext")}, crops=2, out=folder)
    stored = maco_hub.load_gallery(folder).evaluation
    assert [s["judge"] for s in stored.summary] == ["b", "a"]
    assert stored.summary[1]["model_id"] == loaded("convnext").model_id
    for key, values in replaced.rows.items():
        assert stored.rows[key]["eval_a_prob"] == values["eval_a_prob"]
    assert any(
        stored.rows[k]["eval_a_prob"] != v["eval_a_prob"]
        for k, v in first.rows.items()
        if v["eval_a_prob"] is not None
    )
    other_seed = maco_hub.evaluate(folder, {"c": loaded("deit")}, crops=2, seed=9, out=folder)
    assert maco_hub.load_gallery(folder).evaluation == other_seed  # measured otherwise: replaced
    columns = datasets.load_dataset(str(folder), split="train").column_names
    assert [c for c in columns if c.startswith("eval_")] == other_seed.columns
    assert _listed_and_present(folder)[0] == _listed_and_present(folder)[1]


def _record(folder):
    return json.loads((folder / EVALUATION_NAME).read_text())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r["rows"][next(iter(r["rows"]))].update(eval_deit_prob="<script>"), "eval_deit_prob"),
        (lambda r: r["summary"][0].update(judge="<b>x</b>"), "judge 0"),
        (lambda r: r["summary"][0].update(rows=True), "rows"),
        (lambda r: r["settings"].update(crop_side="{{ x }}"), "crop_side"),
        (lambda r: r["rows"].update({"../../etc": {}}), "'../../etc'"),
        (lambda r: r.update(summary=r["summary"] * 2), "judge twice"),
        (lambda r: r.update(rows=[]), "'rows' \\(object\\)"),
    ],
)
def test_crafted_evaluation_json_is_refused(folder, change, message):
    maco_hub.evaluate(folder, {"deit": loaded("deit")}, crops=1, out=folder)
    record = _record(folder)
    change(record)
    _forge(folder, json.dumps(record))
    with pytest.raises(GalleryError, match=message):
        maco_hub.load_gallery(folder)


def test_oversized_or_deep_evaluation_json_is_refused_before_parsing(folder, monkeypatch):
    from maco_hub.gallery import folder as store

    maco_hub.evaluate(folder, {"deit": loaded("deit")}, crops=1, out=folder)
    monkeypatch.setattr(store, "MAX_EVALUATION_BYTES", 4096)
    _forge(folder, json.dumps({**_record(folder), "pad": "x" * 5000}))
    with pytest.raises(GalleryError, match="limit 4096"):
        maco_hub.load_gallery(folder)
    monkeypatch.undo()
    _forge(folder, "[" * 100_000 + "]" * 100_000)
    with pytest.raises(GalleryError, match="nested more than"):
        maco_hub.load_gallery(folder)


def test_an_evaluation_of_other_rows_is_not_stored(folder, tiny_zoo, tmp_path):
    other = tmp_path / "other"
    maco_hub.explain(loaded("vit"), classes=[4], out=other, **QUICK)
    with pytest.raises(ConfigError, match="None of the 3 evaluated rows"):
        maco_hub.evaluate(folder, {"deit": loaded("deit")}, crops=1, out=other)
    assert maco_hub.load_gallery(other).evaluation is None


def test_crafted_manifest_columns_are_refused(folder):
    maco_hub.evaluate(folder, {"deit": loaded("deit")}, crops=1, out=folder)
    manifest = _manifest(folder)
    for bad in (["eval_deit_prob", "object"], ["image", "string"], ["eval_<b>", "string"], "eval_x"):
        crafted = {**manifest, "evaluation": {**manifest["evaluation"], "columns": [bad]}}
        (folder / MANIFEST_NAME).write_text(json.dumps(crafted))
        with pytest.raises(GalleryError, match="evaluation column"):
            maco_hub.load_gallery(folder)


def test_html_in_stored_text_is_escaped_in_card_and_page(folder):
    maco_hub.evaluate(folder, {"deit": loaded("deit")}, crops=1, out=folder)
    record = _record(folder)
    record["summary"][0]["model_id"] = "<img src=x onerror=alert(1)>{{ config }}"
    record["settings"]["reference"] = "<script>alert(2)</script> | `x`"
    _forge(folder, json.dumps(record))
    write_pages(GalleryFolder.open(folder, create=False))
    card = (folder / "README.md").read_text()
    assert "<img src=x" not in card and "<script>" not in card
    assert "&lt;img src=x onerror=alert(1)&gt;{{ config }}" in card
    assert "&lt;script&gt;alert(2)&lt;/script&gt; \\| \\`x\\`" in card
    page = (folder / "index.html").read_text()
    assert "<img src=x" not in page and "<script>alert" not in page and "&lt;script&gt;alert(2)" in page


def test_interrupted_evaluation_leaves_the_gallery_and_repair_drops_a_stale_result(folder, tiny_zoo):
    maco_hub.evaluate(folder, {"deit": loaded("deit")}, crops=1, out=folder)
    result = helpers.subprocess_cli(
        "gallery",
        "evaluate",
        str(folder),
        "--judge",
        str(tiny_zoo["swin"].path),
        "--crops",
        "1",
        env={"MACO_HUB_TEST_KILL_AFTER": "after-eval-shards"},
    )
    assert result.returncode == -9
    assert maco_hub.load_gallery(folder).evaluation.summary[0]["judge"] == "deit"  # as before
    listed, present = _listed_and_present(folder)
    assert len(present) == len(listed) + 1  # the new shard, not listed
    GalleryFolder.open(folder)  # a writer opening the folder removes it
    assert _listed_and_present(folder)[1] == listed
    (folder / EVALUATION_NAME).write_text((folder / EVALUATION_NAME).read_text() + " ")  # as if killed later
    with pytest.raises(GalleryError, match="does not match its sha256"):
        maco_hub.load_gallery(folder)
    report = maco_hub.repair_gallery(folder)
    assert [line.split(":")[0] for line in report.dropped] == [EVALUATION_NAME]
    gallery = maco_hub.load_gallery(folder)
    assert gallery.evaluation is None and len(gallery) == 3
    assert "eval_deit_prob" in datasets.load_dataset(str(folder), split="train").column_names
    assert "## Legibility" not in (folder / "README.md").read_text()
    maco_hub.evaluate(folder, {"deit": loaded("deit")}, crops=1, out=folder)  # evaluating again fixes it
    assert maco_hub.load_gallery(folder).evaluation is not None


# ------------------------------------------------------------------------------------- CLI


def test_cli_evaluates_a_folder_in_place(folder, maco_cli, tiny_zoo, tmp_path):
    reference = tmp_path / "photos"
    for name, seed in (("espresso", 1), ("tabby cat", 2)):
        (reference / name).mkdir(parents=True)
        for i in range(3):
            pixels = np.random.default_rng(seed * 10 + i).integers(0, 256, (40, 40, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(reference / name / f"{i}.png")
    run = maco_cli(
        "gallery",
        "evaluate",
        str(folder),
        "--judge",
        str(tiny_zoo["deit"].path),
        "--judge",
        str(tiny_zoo["swin"].path),
        "--crops",
        "2",
        "--seed",
        "3",
        "--reference",
        str(reference),
        "--reference-per-class",
        "2",
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("| judge | rows judged |") and "| deit (deit) | 2/2 |" in run.stdout
    assert f"stored in {folder}" in run.stdout
    rows = datasets.load_dataset(str(folder), split="train")
    judged = [
        (p, n)
        for p, n, s in zip(
            rows["eval_swin_plausibility"],
            rows["eval_swin_reference_images"],
            rows["eval_swin_status"],
            strict=True,
        )
        if s == "ok"
    ]
    assert len(judged) == 2 and all(-1 <= p <= 1 and n == 2 for p, n in judged)
    assert (
        "- Reference: folder photos: 4 images of 2 classes, at most 2 per class"
        in (folder / "README.md").read_text()
    )
    shown = maco_cli("gallery", "show", str(folder))
    assert shown.returncode == 0 and "| swin (swin) | 2/2 |" in shown.stdout
    stored = maco_hub.load_gallery(folder).evaluation
    assert [s["judge"] for s in stored.summary] == ["deit", "swin"] and stored.settings["seed"] == 3
    assert len(stored.columns) == 2 * len(ROW_FIELDS) + len(MEASURES)


def test_cli_hub_gallery_needs_a_destination(maco_cli, tiny_zoo):
    run = maco_cli("gallery", "evaluate", "someone/gallery", "--judge", str(tiny_zoo["deit"].path))
    assert run.returncode == 2 and "pass --out DIR" in run.stderr and "--push REPO_ID" in run.stderr


def test_cli_evaluates_a_hub_gallery_and_the_hub_shows_the_columns(
    online_hub, maco_cli, folder, tiny_zoo, tmp_path
):
    repo_id = online_hub.new_repo_id("evaluated")
    maco_hub.push_gallery(maco_hub.load_gallery(folder), repo_id)
    old = set(online_hub.list_files(repo_id, repo_type="dataset"))
    run = maco_cli(
        "gallery",
        "evaluate",
        repo_id,
        "--judge",
        str(tiny_zoo["deit"].path),
        "--crops",
        "1",
        "--push",
        repo_id,
    )
    assert run.returncode == 0, run.stderr
    assert f"pushed to {repo_id}" in run.stdout
    files = set(online_hub.list_files(repo_id, repo_type="dataset"))
    shards = {f for f in files if f.startswith("data/")}
    assert EVALUATION_NAME in files and len(shards) == 1 and not shards & old  # the old shard deleted
    rows = datasets.load_dataset(repo_id, split="train")
    assert sorted(rows["eval_deit_status"]) == ["not a class row", "ok", "ok"]
    pushed = maco_hub.load_gallery(repo_id)
    assert [s["judge"] for s in pushed.evaluation.summary] == ["deit"]
    card = online_hub.read_file(repo_id, "README.md", repo_type="dataset").decode()
    assert "## Legibility" in card and "| deit (deit) |" in card
    # a local copy, judged by a second judge, pushed with `gallery push`: both judges on the Hub
    copy = tmp_path / "copy"
    run = maco_cli(
        "gallery",
        "evaluate",
        repo_id,
        "--judge",
        str(tiny_zoo["swin"].path),
        "--crops",
        "1",
        "--out",
        str(copy),
    )
    assert run.returncode == 0, run.stderr
    assert [s["judge"] for s in maco_hub.load_gallery(copy).evaluation.summary] == ["deit", "swin"]
    assert maco_cli("gallery", "push", str(copy), repo_id).returncode == 0
    assert [s["judge"] for s in maco_hub.load_gallery(repo_id).evaluation.summary] == ["deit", "swin"]
    assert "eval_swin_prob" in datasets.load_dataset(repo_id, split="train").column_names


# --------------------------------------------------------------------------------- viewer


def test_viewer_shows_chips_and_the_summary_in_chromium(browser, folder):
    from selenium.webdriver.common.by import By

    maco_hub.evaluate(folder, {"deit": loaded("deit"), "swin": loaded("swin")}, crops=4, out=folder)
    record = _record(folder)
    record["summary"][0]["model_id"] = "<b>bold</b>"
    _forge(folder, json.dumps(record))
    write_pages(GalleryFolder.open(folder, create=False))
    browser.get((folder / "index.html").as_uri())
    deadline = time.monotonic() + 10
    while not browser.find_elements(By.CSS_SELECTOR, ".tile") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert console_errors(browser) == []
    tiles = browser.find_elements(By.CSS_SELECTOR, ".tile")
    chips = [
        (
            t.find_element(By.CSS_SELECTOR, ".chip.kind").text,
            [c.text for c in t.find_elements(By.CSS_SELECTOR, ".chip.eval")],
        )
        for t in tiles
    ]
    pattern = re.compile(r"^(deit|swin) [✓✗] p \d\.\d\d · crops (0|25|50|75|100) %$")
    class_chips = [c for kind, row in chips if kind == "class" for c in row]
    assert len(class_chips) == 4 and all(pattern.match(c) for c in class_chips), chips
    assert [row for kind, row in chips if kind == "channel"] == [[]]
    table = browser.find_element(By.ID, "legibility")
    cells = [
        [c.text for c in r.find_elements(By.CSS_SELECTOR, "td")]
        for r in table.find_elements(By.CSS_SELECTOR, "tbody tr")
    ]
    assert [row[0] for row in cells] == ["deit (<b>bold</b>)", "swin (swin)"]
    assert [row[1] for row in cells] == ["2/2", "2/2"]
    assert browser.find_elements(By.CSS_SELECTOR, "#legibility b") == []
    assert "4 random square crops" in table.text


# ------------------------------------------------------------------ artifact measures (issue 16)


@pytest.fixture
def folder64(tiny_zoo, tmp_path):
    """Like ``folder`` at canvas 64, the smallest picture the artifact measures take."""
    out = tmp_path / "gallery64"
    maco_hub.explain(
        loaded("vit"),
        classes=[0, 3],
        layer=tiny_zoo["vit"].middle_layer,
        channels=[1],
        out=out,
        **{**QUICK, "canvas": 64},
    )
    return out


def test_artifact_measures_of_every_row_are_stored_and_summarized(folder64):
    result = maco_hub.evaluate(folder64, {"deit": loaded("deit")}, crops=1, out=folder64)
    assert result.artifacts == MEASURES
    rows = datasets.load_dataset(str(folder64), split="train")
    for row in rows:  # the channel row too: no judge is needed
        found = {m: row[artifact_column(m)] for m in MEASURES}
        assert found == pytest.approx(artifact_measures(row["image"]))
        assert found == pytest.approx({m: result.rows[row["key"]][artifact_column(m)] for m in MEASURES})
    assert maco_hub.load_gallery(folder64).evaluation == result
    means = {m: np.mean(rows[artifact_column(m)]) for m in MEASURES}
    sentence = (
        f"Artifact measures, mean over 3 of 3 pictures: grid {means['grid_db']:.1f} dB, haze "
        f"{means['haze']:.2f}, contrast {means['rms_contrast']:.2f}."
    )
    card = (folder64 / "README.md").read_text()
    assert sentence in " ".join(card.split()) and "natural photos -0.6 to 1.3 dB" in card
    assert sentence in result.to_markdown() and "name: eval_artifact_grid_db\n    dtype: float64" in card
    page = (folder64 / "index.html").read_text()
    assert page.count('"artifacts":"grid ') == 3 and sentence in page


def test_pictures_the_measures_do_not_take_get_none(folder):
    result = maco_hub.evaluate(folder, {"deit": loaded("deit")}, crops=1, out=folder)  # canvas 32
    assert all(values[artifact_column(m)] is None for values in result.rows.values() for m in MEASURES)
    assert not any("Artifact measures" in note for note in result.notes())
    assert '"artifacts":null' in (folder / "index.html").read_text()


def test_an_evaluation_stored_before_the_measures_loads_and_gains_them(tiny_zoo, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(PROJECT_ROOT / "tests" / "data" / "compat-gallery", old)
    stored = maco_hub.load_gallery(old).evaluation
    assert stored.artifacts == () and not any(c.startswith("eval_artifact_") for c in stored.columns)
    assert "artifacts" not in stored.to_record()
    judge = maco_hub.load_model(str(PROJECT_ROOT / "tests" / "data" / "compat-vit"))
    maco_hub.evaluate(old, {"other": judge}, crops=stored.settings["crops"], out=old)
    both = maco_hub.load_gallery(old).evaluation
    assert [s["judge"] for s in both.summary] == ["self", "other"] and both.artifacts == MEASURES
    assert all(both.rows[k]["eval_self_prob"] == v["eval_self_prob"] for k, v in stored.rows.items())
    columns = datasets.load_dataset(str(old), split="train").column_names
    assert [c for c in columns if c.startswith("eval_artifact_")] == [artifact_column(m) for m in MEASURES]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: _first_row(r).update(eval_artifact_grid_db="<script>"), "eval_artifact_grid_db"),
        (lambda r: _first_row(r).update(eval_artifact_grid_db=1e300), "1e\\+300"),
        (lambda r: _first_row(r).update(eval_artifact_haze=1.5), "eval_artifact_haze"),
        (lambda r: _first_row(r).update(eval_artifact_haze=True), "eval_artifact_haze"),
        (lambda r: _first_row(r).update(eval_artifact_haze=float("nan")), "eval_artifact_haze"),
        (lambda r: _first_row(r).update(eval_artifact_sharpness=1.0), "eval_artifact_sharpness"),
        (lambda r: r.update(artifacts=["grid_db", "<b>"]), "artifact measures"),
        (lambda r: r.update(artifacts=["haze", "haze"]), "artifact measures"),
        (lambda r: r.update(artifacts="grid_db"), "artifact measures"),
    ],
)
def test_crafted_artifact_values_are_refused(folder, change, message):
    maco_hub.evaluate(folder, {"deit": loaded("deit")}, crops=1, out=folder)
    record = _record(folder)
    change(record)
    _forge(folder, json.dumps(record))  # json.dumps writes NaN as the bare token NaN
    with pytest.raises(GalleryError, match=message):
        maco_hub.load_gallery(folder)


def _first_row(record):
    return record["rows"][next(iter(record["rows"]))]


def test_viewer_tiles_show_the_measures_as_text_in_chromium(browser, folder64, tmp_path):
    from selenium.webdriver.common.by import By

    maco_hub.evaluate(folder64, {"deit": loaded("deit")}, crops=1, out=folder64)
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    page = render_index_html([{"label": "x", "artifacts": "<b>grid</b><script>alert(1)</script>"}], title="t")
    (hostile / "index.html").write_text(page)
    for folder, expected in (
        (folder64, r"^grid -?\d+\.\d dB, haze \d\.\d\d, contrast \d\.\d\d$"),
        (hostile, None),
    ):
        browser.get((folder / "index.html").as_uri())
        deadline = time.monotonic() + 10
        while not browser.find_elements(By.CSS_SELECTOR, ".tile") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert console_errors(browser) == []
        chips = [c.text for c in browser.find_elements(By.CSS_SELECTOR, ".chip.artifacts")]
        if expected:
            assert len(chips) == 3 and all(re.match(expected, c) for c in chips), chips
            assert (
                "Artifact measures, mean over 3 of 3 pictures"
                in browser.find_element(By.ID, "legibility").text
            )
        else:
            assert chips == ["<b>grid</b><script>alert(1)</script>"]
            assert browser.find_elements(By.CSS_SELECTOR, ".chip.artifacts b") == []
