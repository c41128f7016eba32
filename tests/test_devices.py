"""Devices, memory checks, micro-batch sizing and CPU thread choice."""

from __future__ import annotations

import copy

import pytest
import torch

from maco_hub.engine import EngineConfig, optimize, threads
from maco_hub.engine.devices import (
    available_devices,
    check_memory,
    crops_per_call,
    resolve_device,
    run_bytes,
    use_channels_last,
)
from maco_hub.errors import ConfigError, MacoHubError
from maco_hub.models.preprocessing import Preprocessing

PRE = Preprocessing(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), size=(32, 32))


def test_cpu_and_default_devices_resolve():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert available_devices()[0] == "cpu"


@pytest.mark.parametrize("name", ["gpu", "cuda:7", "cuda:99", "tpu", "", "cpu:x", "meta"])
def test_missing_devices_are_one_clear_error_listing_the_available_ones(name):
    if name == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 GPUs")
    with pytest.raises(ConfigError) as info:
        resolve_device(name)
    message = str(info.value)
    assert repr(name) in message and "available here: cpu" in message


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
def test_cuda_without_cuda_is_refused_before_any_work():
    with pytest.raises(ConfigError, match="'cuda' does not exist on this machine"):
        optimize(
            lambda x, i: x.mean((1, 2, 3)),
            PRE,
            seeds=[0],
            device="cuda",
            config=EngineConfig(steps=1, canvas=32, crops=1),
        )


def test_memory_estimate_grows_with_canvas_and_batch():
    base = run_bytes(512, 1, 6, (224, 224))
    assert run_bytes(1024, 1, 6, (224, 224)) > 3 * base
    assert run_bytes(512, 8, 6, (224, 224)) > 7 * base
    assert 30 * 2**20 < base < 80 * 2**20  # 512 px: tens of MiB


def test_a_canvas_that_cannot_fit_is_refused_up_front_with_a_size_that_fits():
    gib = 2**30
    check_memory(512, 8, 6, (224, 224), torch.device("cpu"), available=4 * gib)  # fits: no error
    with pytest.raises(
        ConfigError,
        match=r"canvas=20000 .* needs about \d+\.\d GiB .* 4\.0 GiB"
        r".*use canvas=\d+ or less",
    ) as info:
        check_memory(20000, 1, 6, (224, 224), torch.device("cpu"), available=4 * gib)
    fits = int(str(info.value).split("use canvas=")[1].split()[0])
    assert run_bytes(fits, 1, 6, (224, 224)) <= 4 * gib < run_bytes(fits + 16, 1, 6, (224, 224))
    with pytest.raises(ConfigError, match="fewer images per batch"):
        check_memory(4096, 64, 6, (224, 224), torch.device("cpu"), available=4 * gib)


def test_optimize_refuses_a_huge_canvas_before_allocating():
    """canvas=20000 used to allocate ~5 GB and crash inside Spectrum.resized."""
    with pytest.raises(ConfigError, match="canvas=200000"):
        optimize(
            lambda x, i: x.mean((1, 2, 3)),
            PRE,
            seeds=[0],
            config=EngineConfig(steps=1, canvas=200_000, crops=1),
        )


@pytest.mark.parametrize(
    ("free", "per_crop", "total", "expected"),
    [
        (80 * 2**30, 100 * 2**20, 192, 192),  # plenty of memory: all crops at once
        (10 * 2**30, 100 * 2**20, 192, 76),  # 7.5 GiB usable / 100 MiB
        (50 * 2**20, 100 * 2**20, 192, 1),  # less than one crop: still 1
        (10 * 2**30, 0, 48, 48),
    ],  # nothing measured: all
)
def test_crops_per_call_from_free_memory(free, per_crop, total, expected):
    assert crops_per_call(free, per_crop, total) == expected


@pytest.mark.parametrize(
    ("idle", "allowed", "configured", "expected"),
    [
        (2.0, 2, 2, 2),
        (1.0, 2, 2, 1),
        (1.4, 2, 2, 1),
        (1.6, 2, 2, 2),
        (0.1, 2, 2, 1),
        (15.2, 16, 16, 15),
        (8.0, 16, 4, 4),
        (3.0, 2, 8, 2),
    ],
)
def test_thread_count_follows_idle_cpus_within_limits(idle, allowed, configured, expected):
    assert threads.threads_for(idle, allowed, configured) == expected


def test_idle_cpus_is_measured_within_the_allowed_cpus():
    idle = threads.idle_cpus(0.05)
    assert 0 <= idle <= len(threads.allowed_cpus()) + 1e-6
    assert 1 <= threads.auto_threads(0.05) <= torch.get_num_threads()


def test_threads_apply_inside_optimize_and_are_restored():
    seen = []

    def score(pixels, index):
        seen.append(torch.get_num_threads())
        return pixels.mean((1, 2, 3))

    before = torch.get_num_threads()
    other = 2 if before == 1 else 1
    result = optimize(score, PRE, seeds=[0], config=EngineConfig(steps=2, canvas=32, crops=1, threads=other))
    assert set(seen) == {other} and result.settings["threads"] == other
    assert torch.get_num_threads() == before
    auto = optimize(score, PRE, seeds=[0], config=EngineConfig(steps=1, canvas=32, crops=1))
    assert 1 <= auto.settings["threads"] <= before and torch.get_num_threads() == before


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "2"])
def test_bad_thread_counts_are_config_errors(value):
    with pytest.raises(ConfigError, match=f"threads={value!r}"):
        EngineConfig(threads=value)
    with pytest.raises(MacoHubError):
        with threads.intra_op_threads(value):
            pass


def test_channels_last_on_the_cpu_for_conv_nets_only():
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU())
    assert use_channels_last(conv, torch.device("cpu"))
    assert conv[0].weight.is_contiguous(memory_format=torch.channels_last)
    patchify = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 4, stride=4), torch.nn.Flatten(), torch.nn.Linear(8, 4)
    )
    assert not use_channels_last(patchify, torch.device("cpu"))  # a ViT's patch embedding
    assert patchify[0].weight.is_contiguous()
    assert not use_channels_last(torch.nn.Linear(4, 4), torch.device("cpu"))


def test_channels_last_on_the_cpu_gives_the_contiguous_scores_and_gradients():
    """fp32 on the CPU: the same scores and input gradients up to rounding (tiny conv net)."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, stride=2, padding=1),
        torch.nn.BatchNorm2d(16),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 16, 3, padding=1, groups=16),
        torch.nn.Conv2d(16, 32, 1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(32, 10),
    ).eval()
    pixels = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(1))

    def scores_and_gradient(model):
        inputs = pixels.clone().requires_grad_(True)
        scores = model(inputs)[:, 3]
        scores.sum().backward()
        return scores.detach(), inputs.grad

    plain = scores_and_gradient(net)
    fast = copy.deepcopy(net)
    assert use_channels_last(fast, torch.device("cpu"))
    converted = scores_and_gradient(fast)
    assert fast[3].weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(converted[0], plain[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(converted[1], plain[1], rtol=1e-4, atol=1e-6)


@pytest.mark.gpu
def test_channels_last_on_cuda():
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU()).cuda()
    assert use_channels_last(conv, torch.device("cuda"))
    assert conv[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert not use_channels_last(torch.nn.Linear(4, 4).cuda(), torch.device("cuda"))
