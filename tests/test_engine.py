"""Engine behaviour on tiny deterministic models (CPU)."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import re
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest
import torch

from maco_hub import schedules
from maco_hub.engine import EngineConfig, optimize
from maco_hub.engine.param import FourierPhaseImage, canvas_to_rgb, phase_to_canvas
from maco_hub.engine.transforms import crop_boxes
from maco_hub.errors import ConfigError, MacoHubError, NonFiniteError
from maco_hub.models.preprocessing import Preprocessing
from maco_hub.spectra.loading import load_spectrum

PRE = Preprocessing(mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3), size=(32, 32))
FAST = EngineConfig(steps=12, canvas=64, crops=3)


@pytest.fixture(scope="module")
def spectrum():
    return load_spectrum()


@pytest.fixture(scope="module")
def tiny_classifier() -> torch.nn.Module:
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 5, padding=2),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 5),
    ).eval()
    return net.requires_grad_(False)


def class_score_fn(net: torch.nn.Module, targets: list[int]):
    target = torch.tensor(targets)
    return lambda pixels, index: net(pixels)[torch.arange(len(pixels)), target[index]]


def rowwise_class_score_fn(net: torch.nn.Module, targets: list[int]):
    """Runs the model one row at a time, so its rounding does not depend on the batch size.

    A batched convolution rounds differently from a single one, and NAdam at lr 1.0 amplifies
    those last-bit differences over steps; this isolates the engine's own batch invariance.
    """
    target = torch.tensor(targets)
    return lambda pixels, index: torch.stack(
        [net(row[None])[0, target[i]] for row, i in zip(pixels, index, strict=True)]
    )


def channel_score_fn(net: torch.nn.Module, channels: list[int]):
    channel = torch.tensor(channels)
    rows = torch.arange
    return lambda pixels, index: net[1](net[0](pixels))[rows(len(pixels)), channel[index]].mean((1, 2))


def test_magnitude_is_preserved_up_to_one_scale_per_image():
    generator = torch.Generator().manual_seed(0)
    magnitude = torch.rand(3, 24, 17, generator=generator) + 0.1
    phase = torch.randn(2, 3, 24, 17, generator=generator)
    canvas = phase_to_canvas(magnitude, phase, (24, 32))
    measured = torch.fft.rfft2(canvas).abs()
    # interior columns carry free complex values; DC/Nyquist columns must be real-symmetric
    ratio = measured[..., 1:-1] / magnitude[..., 1:-1]
    per_image = ratio.flatten(1)
    assert torch.allclose(per_image, per_image.mean(dim=1, keepdim=True), rtol=1e-3)
    assert canvas.mean().abs() < 1e-5 and torch.allclose(canvas.std(dim=(1, 2, 3)), torch.ones(2))


def test_rgb_in_unit_interval_and_colours_recorrelated():
    canvas = torch.randn(2, 3, 16, 16) * 3
    rgb = canvas_to_rgb(canvas)
    assert rgb.min() > 0 and rgb.max() < 1
    # the first decorrelated channel feeds all RGB channels with almost equal weight (luminance)
    luminance = torch.zeros(1, 3, 4, 4)
    luminance[:, 0] = 2.0
    out = canvas_to_rgb(luminance)[0, :, 0, 0].tolist()
    assert out[1] == pytest.approx(out[2], abs=1e-6) and out[0] == pytest.approx(out[1], abs=0.02)


def test_phase_module_has_phase_as_only_parameter(spectrum):
    module = FourierPhaseImage(spectrum.resized(32, 32).magnitude, (32, 32), seeds=[1, 2])
    assert [name for name, _ in module.named_parameters()] == ["phase"]
    assert "magnitude" in dict(module.named_buffers())
    assert module().shape == (2, 3, 32, 32)


@pytest.mark.parametrize("resample", ["per_crop", "batched"])
def test_objective_rises_and_outputs_have_the_documented_shapes(spectrum, tiny_classifier, resample):
    config = EngineConfig(steps=40, canvas=64, crops=4, resample=resample)
    result = optimize(
        channel_score_fn(tiny_classifier, [4, 6]), PRE, seeds=[0, 1], config=config, spectrum=spectrum
    )
    assert result.images.shape == (2, 3, 64, 64)
    assert result.images.min() >= 0 and result.images.max() <= 1
    assert result.attribution.shape == (2, 64, 64)
    assert (result.attribution >= 0).all() and (result.attribution.flatten(1).sum(1) > 0).all()
    assert result.scores.shape == (2,) and result.history.shape == (40, 2)
    early, late = result.history[:5].mean(0), result.history[-5:].mean(0)
    assert (early > 0.05).all() and (late > 1.5 * early).all(), (early, late)


@pytest.mark.parametrize("resample", ["per_crop", "batched"])
def test_batch_equals_separate_runs_with_the_same_seeds(spectrum, tiny_classifier, resample):
    """At phase_std = contrast = 1: above 1 the optimization amplifies the last-bit differences of a
    batched FFT backward (up to ~0.5 in pixels after these 12 steps at 2.5 / 2.0), whatever the engine."""
    targets, seeds = [0, 3, 4], [7, 8, 9]
    config = dataclasses.replace(FAST, resample=resample, phase_std=1.0, contrast=1.0)
    batch = optimize(
        rowwise_class_score_fn(tiny_classifier, targets), PRE, seeds=seeds, config=config, spectrum=spectrum
    )
    for b, (target, seed) in enumerate(zip(targets, seeds, strict=True)):
        alone = optimize(
            rowwise_class_score_fn(tiny_classifier, [target]),
            PRE,
            seeds=[seed],
            config=config,
            spectrum=spectrum,
        )
        assert torch.allclose(alone.images[0], batch.images[b], atol=1e-5)
        assert torch.allclose(alone.attribution[0], batch.attribution[b], rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("resample", ["per_crop", "batched"])
def test_same_seed_same_pixels_and_other_seed_other_pixels(spectrum, tiny_classifier, resample):
    fn = class_score_fn(tiny_classifier, [1])
    config = dataclasses.replace(FAST, resample=resample, threads=1)
    first = optimize(fn, PRE, seeds=[5], config=config, spectrum=spectrum)
    again = optimize(fn, PRE, seeds=[5], config=config, spectrum=spectrum)
    other = optimize(fn, PRE, seeds=[6], config=config, spectrum=spectrum)
    assert torch.equal(first.images, again.images)
    assert not torch.allclose(first.images, other.images, atol=1e-2)


def test_micro_batches_give_the_same_result(spectrum, tiny_classifier):
    fn = class_score_fn(tiny_classifier, [2, 4])
    whole = optimize(fn, PRE, seeds=[0, 1], config=FAST, spectrum=spectrum)
    split_config = EngineConfig(steps=12, canvas=64, crops=3, crops_per_forward=2)
    split = optimize(fn, PRE, seeds=[0, 1], config=split_config, spectrum=spectrum)
    assert torch.allclose(whole.images, split.images, atol=1e-4)


def test_model_sees_its_own_value_range_not_a_fixed_one(spectrum):
    seen = []

    def record(pixels, index):
        seen.append(pixels.detach())
        return pixels.mean(dim=(1, 2, 3))

    config = EngineConfig(steps=3, canvas=48, crops=2, noise=0.0)
    optimize(record, PRE, seeds=[0], config=config, spectrum=spectrum)
    low, high = PRE.value_range()
    pixels = torch.cat(seen)
    assert pixels.min() >= low - 1e-5 and pixels.max() <= high + 1e-5
    assert (low, high) == pytest.approx((-2.0, 3.0))  # not the (-2.5, 2.5) of ImageNet statistics


def test_crop_boxes_stay_inside_the_canvas_and_follow_the_size_range():
    generator = torch.Generator().manual_seed(0)
    boxes = crop_boxes(generator, 500, (100, 100), (0.2, 0.5), centre_std=2.0)
    for top, left, side in boxes:
        assert 0 <= top <= 100 - side and 0 <= left <= 100 - side
        assert 20 <= side <= 50


def test_schedules_change_crop_size_by_step():
    alternating = schedules.Alternating()
    assert schedules.value_at(alternating, 0, 10) == (0.25, 0.30)
    assert schedules.value_at(alternating, 1, 10) == (0.60, 1.00)
    linear = schedules.Linear(0.1, 0.0)
    assert schedules.value_at(linear, 0, 11) == pytest.approx(0.1)
    assert schedules.value_at(linear, 10, 11) == pytest.approx(0.0)
    assert schedules.value_at((0.3, 0.4), 5, 10) == (0.3, 0.4)
    two_small = schedules.Alternating(small_steps=2)
    assert [schedules.value_at(two_small, step, 10)[0] for step in range(6)] == [0.25, 0.25, 0.6] * 2


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_alternating_refuses_a_small_step_count_that_is_not_a_positive_integer(bad):
    with pytest.raises(ConfigError, match=rf"small_steps={bad!r} is not a positive integer"):
        schedules.Alternating(small_steps=bad)


def test_alternating_records_small_steps_only_when_not_one_so_old_row_keys_hold():
    assert schedules.to_record(schedules.Alternating()) == {
        "schedule": "alternating",
        "small": [0.25, 0.30],
        "large": [0.60, 1.00],
    }
    record = json.loads(json.dumps(schedules.to_record(schedules.Alternating(small_steps=2))))
    assert record["small_steps"] == 2
    assert schedules.from_record(record) == schedules.Alternating(small_steps=2)
    for hostile in (0, -3, "2", 1e9):  # a record read from someone else's gallery
        with pytest.raises(ConfigError, match="small_steps"):
            schedules.from_record({**record, "small_steps": hostile})


def test_config_record_round_trips_through_json():
    config = EngineConfig(steps=7, crop_scale=schedules.Linear((0.9, 1.0), (0.25, 0.3)), noise=0.1)
    record = json.loads(json.dumps(config.to_record()))
    assert EngineConfig.from_record(record) == config
    assert EngineConfig.from_record(EngineConfig().to_record()) == EngineConfig()
    tuned = EngineConfig(threads=2, compile=True, resample="batched")
    assert EngineConfig.from_record(json.loads(json.dumps(tuned.to_record()))) == tuned


def test_fields_added_later_are_recorded_only_when_set_so_old_row_keys_hold():
    """Rows written before threads/compile/resample existed keep their keys."""
    before = {
        "steps",
        "learning_rate",
        "canvas",
        "crops",
        "crop_scale",
        "crop_centre_std",
        "noise",
        "crops_per_forward",
        "precision",
    }
    assert set(EngineConfig(phase_std=1, contrast=1.0).to_record()) == before
    assert set(EngineConfig().to_record()) == before | {"phase_std", "contrast"}
    assert EngineConfig(threads=1).to_record()["threads"] == 1
    with pytest.raises(ConfigError, match=r"unknown fields \['turbo'\]"):
        EngineConfig.from_record({**EngineConfig().to_record(), "turbo": True})


def test_plain_callable_schedules_are_keyed_by_what_they_compute():
    """Two lambdas used to share one record (their __qualname__), so a gallery skipped the second."""

    def make(low):
        return lambda step, total: (low, low + 0.1)

    small, large = (lambda s, t: (0.2, 0.3)), (lambda s, t: (0.5, 0.6))
    records = [schedules.to_record(f) for f in (small, large, make(0.2), make(0.4))]
    assert len({json.dumps(r, sort_keys=True) for r in records}) == 4
    assert schedules.to_record(small) == schedules.to_record(small)
    assert schedules.to_record(make(0.3)) == schedules.to_record(make(0.3))
    assert all(r["reproducible"] is False for r in records)
    config = EngineConfig(crop_scale=small)
    assert not config.reproducible and EngineConfig().reproducible
    assert config.to_record() != EngineConfig(crop_scale=large).to_record()
    with pytest.raises(ConfigError, match="plain callable and cannot be rebuilt"):
        EngineConfig.from_record(config.to_record())
    with pytest.raises(ConfigError, match="no known kind"):
        schedules.from_record({"schedule": "cosine"})
    with pytest.raises(ConfigError, match="malformed"):
        schedules.from_record({"schedule": "linear", "begin": 1})


def test_settings_report_what_automatic_choices_resolved_to(spectrum):
    result = optimize(
        lambda x, i: x.mean((1, 2, 3)),
        PRE,
        seeds=[0, 1],
        spectrum=spectrum,
        config=EngineConfig(steps=2, canvas=32, crops=3),
    )
    assert result.settings["resample"] == "per_crop"  # the CPU default (measured faster there)
    assert result.settings["crops_per_forward"] == 4
    assert isinstance(result.settings["threads"], int)


def test_bad_schedule_values_fail_before_any_step(spectrum):
    calls = []

    def score(x, i):
        calls.append(1)
        return x.mean((1, 2, 3))

    late_bad = EngineConfig(
        steps=5, canvas=32, crops=1, crop_scale=lambda s, t: (0.2, 2.0) if s == 4 else (0.2, 0.3)
    )
    with pytest.raises(ConfigError, match=r"crop_scale=\(0.2, 2.0\)"):
        optimize(score, PRE, seeds=[0], config=late_bad, spectrum=spectrum)
    with pytest.raises(ConfigError, match=r"noise=-0\.1"):
        EngineConfig(noise=-0.1)
    assert calls == []


def test_phase_module_rejects_a_mismatched_magnitude_clearly():
    with pytest.raises(ConfigError, match=r"magnitude shape \(3, 8, 5\)"):
        FourierPhaseImage(torch.ones(3, 8, 5), (16, 16), seeds=[0])


@pytest.mark.slow
def test_compiled_engine_matches_eager(spectrum, tiny_classifier):
    fn = class_score_fn(tiny_classifier, [1, 2])
    config = EngineConfig(steps=4, canvas=48, crops=2, threads=1)
    eager = optimize(fn, PRE, seeds=[0, 1], config=config, spectrum=spectrum)
    compiled = optimize(
        fn, PRE, seeds=[0, 1], config=dataclasses.replace(config, compile=True), spectrum=spectrum
    )
    assert torch.allclose(eager.images, compiled.images, atol=1e-3)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"steps": 0}, "steps=0"),
        ({"crop_scale": (0.5, 0.2)}, "crop_scale=(0.5, 0.2)"),
        ({"precision": "fp8"}, "precision='fp8'"),
        ({"canvas": 4}, "canvas=4"),
    ],
)
def test_bad_config_names_the_value(options, named):
    with pytest.raises(ConfigError, match=named.replace("(", r"\(").replace(")", r"\)")):
        EngineConfig(**options)


def test_empty_seeds_and_wrong_score_shape_are_clear_errors(spectrum):
    with pytest.raises(ConfigError, match="seeds"):
        optimize(lambda x, i: x.sum(), PRE, seeds=[], config=FAST, spectrum=spectrum)
    with pytest.raises(MacoHubError, match="one score per row"):
        optimize(lambda x, i: x.sum(), PRE, seeds=[0], config=FAST, spectrum=spectrum)


def test_bf16_autocast_runs_and_stays_finite(spectrum, tiny_classifier):
    config = EngineConfig(steps=3, canvas=48, crops=2, precision="bf16")
    result = optimize(class_score_fn(tiny_classifier, [0]), PRE, seeds=[0], config=config, spectrum=spectrum)
    assert torch.isfinite(result.images).all() and torch.isfinite(result.scores).all()


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_cuda_runs_and_improves_the_objective(spectrum, tiny_classifier, precision):
    net = copy.deepcopy(tiny_classifier).to("cuda")  # the fixture is shared: a copy moves
    target = torch.tensor([1], device="cuda")
    config = EngineConfig(steps=40, canvas=64, crops=4, precision=precision)
    result = optimize(
        lambda x, i: net(x)[torch.arange(len(x)), target[i]],
        PRE,
        seeds=[0],
        config=config,
        spectrum=spectrum,
        device="cuda",
    )
    assert torch.isfinite(result.images).all()
    assert result.history[-5:].mean() > result.history[:5].mean()


def _sync_watched(tiny_classifier):
    """A CUDA score function of a copy of the shared classifier (classes 1 and 3) that makes any
    host sync after its first model call an error (torch's sync debug mode); and its call list."""
    net = copy.deepcopy(tiny_classifier).to("cuda")  # the fixture is shared: a copy moves
    target = torch.tensor([1, 3], device="cuda")
    calls = []

    def score(pixels, index):
        calls.append(1)
        torch.cuda.set_sync_debug_mode("error" if torch.is_grad_enabled() and len(calls) > 1 else 0)
        return net(pixels)[torch.arange(len(pixels), device="cuda"), target[index]]

    return score, calls


@pytest.mark.gpu
def test_cuda_step_loop_never_waits_for_the_device(spectrum, tiny_classifier):
    """No host sync between the first and the final model call (torch's sync debug mode errors)."""
    score, _ = _sync_watched(tiny_classifier)
    try:
        result = optimize(
            score,
            PRE,
            seeds=[0, 1],
            spectrum=spectrum,
            device="cuda",
            config=EngineConfig(steps=6, canvas=64, crops=3),
        )
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert result.settings["resample"] == "batched" and result.settings["threads"] is None
    assert result.settings["crops_per_forward"] >= 1 and torch.isfinite(result.images).all()


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"learning_rate": INF}, "learning_rate=inf"),
        ({"learning_rate": NAN}, "learning_rate=nan"),
        ({"noise": INF}, "noise=inf"),
        ({"noise": NAN}, "noise=nan"),
        ({"noise": 2}, "noise=2"),
        ({"crop_centre_std": NAN}, "crop_centre_std=nan"),
        ({"crop_scale": (0.2, NAN)}, "crop_scale=(0.2, nan)"),
        ({"crop_scale": ("0.2", "0.3")}, "crop_scale=('0.2', '0.3')"),
        ({"steps": 2.5}, "steps=2.5"),
        ({"steps": True}, "steps=True"),
        ({"steps": "5"}, "steps='5'"),
        ({"steps": 3_000_000}, "steps=3000000"),
        ({"canvas": "32"}, "canvas='32'"),
        ({"canvas": 32.5}, "canvas=32.5"),
        ({"canvas": 10**6}, "canvas=1000000"),
        ({"crops": 1.5}, "crops=1.5"),
        ({"crops_per_forward": True}, "crops_per_forward=True"),
    ],
)
def test_non_finite_and_mistyped_settings_are_refused_where_they_are_built(options, named):
    """inf learning rate or noise used to give a black image, 2.5 steps a raw TypeError, a canvas of
    32.5 an error about the "Spectrum height"."""
    with pytest.raises(ConfigError, match=re.escape(named) + " is invalid"):
        EngineConfig(**options)


def test_schedules_refuse_values_of_no_use_also_from_a_record():
    for build, named in [
        (lambda: schedules.Linear((0.2, 0.3), (0.2, INF)), "Linear end=(0.2, inf)"),
        (lambda: schedules.Linear(0.1, NAN), "Linear end=nan"),
        (lambda: schedules.Linear("ab", "cd"), "Linear start='ab'"),
        (lambda: schedules.Alternating(small=(0.2, NAN)), "Alternating small=(0.2, nan)"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(named) + " is invalid"):
            build()
    with pytest.raises(ConfigError, match="must be of one kind"):
        schedules.Linear(0.1, (0.2, 0.3))
    for hostile in (
        {"schedule": "linear", "start": [0.2, "NaN"], "end": [0.3, 0.4]},
        {"schedule": "alternating", "small": [0.2, 1e999], "large": [0.6, 1.0]},
    ):
        with pytest.raises(ConfigError, match="finite number"):
            schedules.from_record(hostile)
    record = {**EngineConfig().to_record(), "steps": "5"}
    with pytest.raises(ConfigError, match="steps='5' is invalid"):
        EngineConfig.from_record(json.loads(json.dumps(record)))


def test_numpy_integers_count_as_integers_and_records_stay_json():
    config = EngineConfig(
        steps=np.int64(5),
        canvas=np.int32(48),
        crops=np.int64(2),
        threads=np.int64(1),
        noise=np.float32(0.0),
        crop_scale=[np.float64(0.5), 1.0],
    )
    assert config == EngineConfig(steps=5, canvas=48, crops=2, threads=1, noise=0.0, crop_scale=(0.5, 1.0))
    assert type(config.steps) is int and type(config.noise) is float
    record = json.loads(json.dumps(config.to_record()))
    assert EngineConfig.from_record(record) == config
    # what was valid before keeps its record, hence its row keys: ints stay ints, lists stay lists
    assert EngineConfig(noise=0, crop_scale=[1, 1]).to_record()["noise"] == 0
    assert json.dumps(EngineConfig(crop_scale=[1, 1]).to_record()["crop_scale"]) == "[1, 1]"


@pytest.mark.parametrize(
    ("seeds", "named"),
    [
        ([2**31], "seeds[0]=2147483648"),
        ([0, -1], "seeds[1]=-1"),
        ([1.5], "seeds[0]=1.5"),
        ([True], "seeds[0]=True"),
        (["a"], "seeds[0]='a'"),
        ([None], "seeds[0]=None"),
        (5, "seeds=5"),
    ],
)
def test_seeds_out_of_range_or_of_another_type_are_refused(spectrum, seeds, named):
    with pytest.raises(ConfigError, match=re.escape(named)):
        optimize(lambda x, i: x.mean((1, 2, 3)), PRE, seeds=seeds, config=FAST, spectrum=spectrum)


def test_numpy_seeds_are_the_same_seeds(spectrum, tiny_classifier):
    fn = class_score_fn(tiny_classifier, [1, 2])
    config = dataclasses.replace(FAST, threads=1)
    plain = optimize(fn, PRE, seeds=[3, 4], config=config, spectrum=spectrum)
    array = optimize(fn, PRE, seeds=np.array([3, 4]), config=config, spectrum=spectrum)
    assert torch.equal(plain.images, array.images)


@pytest.mark.parametrize("resample", ["per_crop", "batched"])
def test_crop_boxes_drawn_in_chunks_give_the_same_pixels(spectrum, tiny_classifier, monkeypatch, resample):
    """Boxes are drawn a chunk of steps at a time; the pixels must equal drawing them all up front."""
    from maco_hub.engine import loop as engine

    fn = class_score_fn(tiny_classifier, [0, 3])
    config = EngineConfig(steps=9, canvas=96, crops=3, resample=resample, threads=1)
    whole = optimize(fn, PRE, seeds=[2, 5], config=config, spectrum=spectrum)
    for boxes_at_a_time in (6, 13, 1):  # 1, 2 and 1 steps per chunk (6 boxes a step)
        monkeypatch.setattr(engine, "_PLAN_BOXES", boxes_at_a_time)
        chunked = optimize(fn, PRE, seeds=[2, 5], config=config, spectrum=spectrum)
        assert torch.equal(whole.images, chunked.images) and torch.equal(whole.history, chunked.history)


def test_the_longest_run_starts_at_once_in_bounded_memory(tmp_path):
    """Every crop box used to be drawn before the first step: 3 000 000 steps died with
    std::bad_alloc at 3.5 GB, and the 100 000 allowed now took 10 s and 2 GB for 8 images."""
    script = tmp_path / "long_run.py"
    script.write_text(
        textwrap.dedent("""
        import resource, time, torch
        from maco_hub.engine import EngineConfig, optimize
        from maco_hub.engine.loop import MAX_STEPS
        from maco_hub.models.preprocessing import Preprocessing

        class Stop(Exception):
            pass

        calls = []
        def score(pixels, index):
            calls.append(1)
            if len(calls) > 3:
                raise Stop
            return pixels.mean((1, 2, 3))

        pre = Preprocessing(mean=(0.5,) * 3, std=(0.5,) * 3, size=(16, 16))
        before, start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.monotonic()
        try:
            optimize(score, pre, seeds=list(range(8)), config=EngineConfig(steps=MAX_STEPS, canvas=32))
        except Stop:
            pass
        grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        print(f"{grown:.0f} MB {time.monotonic() - start:.1f} s")
        assert grown < 400 and len(calls) == 4, grown
    """)
    )
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_nan_or_infinite_score_is_an_error_naming_the_image_and_step_never_a_result(spectrum):
    calls = []

    def nan_later(pixels, index):  # image 1 from the fourth step on (one call per step)
        calls.append(1)
        scores = pixels.mean((1, 2, 3))
        return torch.where((index == 1) & (len(calls) > 3), NAN, scores)

    config = dataclasses.replace(FAST, crops_per_forward=6)
    with pytest.raises(
        NonFiniteError,
        match=r"^objective 'b' \(seed 4\) became NaN or infinite, so "
        r"nothing of this batch is kept\. .*nan at step 4 of 12",
    ):
        optimize(nan_later, PRE, seeds=[3, 4], config=config, spectrum=spectrum, names=["a", "b"])
    calls.clear()
    with pytest.raises(NonFiniteError, match=r"^objective 'a' \(seed 3\) \(and 1 more of this batch\)"):
        optimize(
            lambda x, i: nan_later(x, i * 0 + 1),
            PRE,
            seeds=[3, 4],
            config=config,
            spectrum=spectrum,
            names=["a", "b"],
        )
    with pytest.raises(NonFiniteError, match=r"image 0 \(seed 3\).*score was -?inf on the first step"):
        optimize(lambda x, i: x.mean((1, 2, 3)) * 3e38 * 10, PRE, seeds=[3], config=FAST, spectrum=spectrum)
    with pytest.raises(NonFiniteError, match="first step"):  # a gradient overflowing float32
        optimize(
            lambda x, i: (x * 1e38).pow(2).mean((1, 2, 3)), PRE, seeds=[3], config=FAST, spectrum=spectrum
        )


class _ScaledSpectrum:
    """The shipped spectrum's magnitude times ``factor``: what a crafted spectrum file can hold."""

    def __init__(self, spectrum, factor: float) -> None:
        self.spectrum, self.factor = spectrum, factor

    def resized(self, height: int, width: int):
        return types.SimpleNamespace(magnitude=self.spectrum.resized(height, width).magnitude * self.factor)


def test_a_non_finite_image_is_an_error_whatever_makes_it(spectrum):
    """A spectrum scaled by 1e37 gave a black image with a NaN score and no error."""
    with pytest.raises(NonFiniteError, match=r"image 0 \(seed 0\).*starting image.*spectrum"):
        optimize(
            lambda x, i: x.mean((1, 2, 3)),
            PRE,
            seeds=[0],
            config=FAST,
            spectrum=_ScaledSpectrum(spectrum, 1e37),
        )
    result = optimize(lambda x, i: x.mean((1, 2, 3)), PRE, seeds=[0], config=FAST, spectrum=spectrum)
    assert torch.isfinite(result.images).all()  # the check is no false alarm


@pytest.mark.gpu
def test_cuda_crop_chunks_reach_the_device_without_waiting(spectrum, tiny_classifier, monkeypatch):
    """Boxes drawn a step at a time still never make the step loop wait, and give the same pixels."""
    from maco_hub.engine import loop as engine

    score, calls = _sync_watched(tiny_classifier)

    config = EngineConfig(steps=6, canvas=64, crops=3, crops_per_forward=6)
    whole = optimize(score, PRE, seeds=[0, 1], spectrum=spectrum, device="cuda", config=config)
    monkeypatch.setattr(engine, "_PLAN_BOXES", 6)
    calls.clear()
    try:
        chunked = optimize(score, PRE, seeds=[0, 1], spectrum=spectrum, device="cuda", config=config)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert torch.equal(whole.images, chunked.images)


def test_phase_std_and_contrast_default_to_2_5_and_2_but_records_without_them_mean_1():
    """Rows made before the fields existed were made with 1.0: their records lack the fields, keep
    their keys and regenerate with 1.0; a row of the new defaults records 2.5 / 2.0."""
    record = EngineConfig().to_record()
    assert (record["phase_std"], record["contrast"]) == (2.5, 2.0)
    legacy = {k: v for k, v in record.items() if k not in ("phase_std", "contrast")}
    old = EngineConfig.from_record(json.loads(json.dumps(legacy)))
    assert (old.phase_std, old.contrast) == (1.0, 1.0) and old.to_record() == legacy
    tuned = EngineConfig(phase_std=1.5, contrast=10)
    assert EngineConfig.from_record(json.loads(json.dumps(tuned.to_record()))) == tuned


@pytest.mark.parametrize("name", ["phase_std", "contrast"])
@pytest.mark.parametrize("hostile", [0, -1.0, 10.5, NAN, math.inf, "2", True, None, [2.0]])
def test_phase_std_and_contrast_are_checked(name, hostile):
    with pytest.raises(
        ConfigError, match=rf"{name}=.* is invalid: use a finite number above 0 and at most 10"
    ):
        EngineConfig(**{name: hostile})
    with pytest.raises(ConfigError, match=rf"{name}="):
        EngineConfig.from_record({**EngineConfig().to_record(), name: hostile})


def test_phase_std_removes_the_bright_origin_and_contrast_scales_before_the_sigmoid(spectrum):
    """At phase std 1 about 61 % of every frequency adds up at pixel (0, 0): it is an outlier of
    several canvas stds; at 2.5 it is an ordinary pixel."""
    magnitude = spectrum.resized(128, 128).magnitude
    seeds = list(range(8))
    origin = {}
    for std in (1.0, 2.5):
        canvas = FourierPhaseImage(magnitude, (128, 128), seeds, phase_std=std).canvas()
        origin[std] = float(canvas[:, :, 0, 0].mean())
    assert origin[1.0] > 3 and abs(origin[2.5]) < 1, origin
    image = FourierPhaseImage(magnitude, (128, 128), seeds[:2], gain=2.0, phase_std=2.5)
    with torch.no_grad():
        assert torch.allclose(image(), canvas_to_rgb(2.0 * image.canvas()))
        contrast = [float(FourierPhaseImage(magnitude, (128, 128), seeds, gain=g)().std()) for g in (1, 2)]
    assert contrast[1] > 1.5 * contrast[0]
