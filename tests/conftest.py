"""Shared test set-up: every cache in a temporary folder, the Hub unreachable by design.

huggingface_hub and datasets read their environment when first imported, so the variables are
set here, at collection time, before any test module imports them. Fixtures shared by many test
files come through ``pytest_plugins``: ``hub`` / ``online_hub`` (tests/hub_server.py, a loopback
Hub started on first use) and ``tiny_zoo`` (tests/tiny_models.py).

Tests marked ``slow`` (a real pretrained model for a while) run only with ``--runslow`` or
``MACO_HUB_RUNSLOW=1``; ``.ci/run`` turns them on.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.register_assert_rewrite("hub_server", "tiny_models", "helpers", "browser")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_SPECTRUM = PROJECT_ROOT.parent / "shared" / "reference" / "imagenet_decorrelated_512.npy"

_HOME = Path(tempfile.mkdtemp(prefix="maco_hub_tests_"))
os.environ.update(
    {
        "HF_HOME": str(_HOME / "hf"),
        "HF_HUB_CACHE": str(_HOME / "hf" / "hub"),
        "HF_DATASETS_CACHE": str(_HOME / "hf" / "datasets"),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "MACO_HUB_CACHE": str(_HOME / "maco_hub"),
    }
)

from hub_server import reserve_session_hub  # noqa: E402  (sets HF_ENDPOINT before any client import)

reserve_session_hub(_HOME / "hub_server")

pytest_plugins = ["hub_server", "tiny_models"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--runslow",
        action="store_true",
        default=False,
        help="also run tests marked slow (or set MACO_HUB_RUNSLOW=1)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``slow`` tests only with --runslow (or MACO_HUB_RUNSLOW=1); ``gpu`` tests only with CUDA."""
    run_slow = config.getoption("--runslow") or os.environ.get("MACO_HUB_RUNSLOW") == "1"
    slow = pytest.mark.skip(reason="slow: run with --runslow or MACO_HUB_RUNSLOW=1")
    gpu = None
    if any("gpu" in item.keywords for item in items):
        import torch

        if not torch.cuda.is_available():
            gpu = pytest.mark.skip(reason="gpu: needs a CUDA device")
    for item in items:
        if "slow" in item.keywords and not run_slow:
            item.add_marker(slow)
        if "gpu" in item.keywords and gpu is not None:
            item.add_marker(gpu)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the whole session (skipped, with the reason, where there is none)."""
    from browser import headless_chromium, why_unavailable

    reason = why_unavailable()
    if reason:
        pytest.skip(f"browser tests skipped: {reason}")
    with headless_chromium() as driver:
        yield driver


@pytest.fixture(scope="session")
def builtin_photos() -> dict:
    """Name -> uint8 (H, W, 3) pixels of the colour photographs the photo packages ship."""
    pytest.importorskip("skimage")
    from maco_hub.spectra.sources import builtin_photos

    return {photo.name: photo.pixels for photo in builtin_photos()}


@pytest.fixture(scope="session")
def three_row_gallery(tiny_zoo, tmp_path_factory) -> Path:
    """A real gallery of 3 class rows in 2 shards, made once (tests copy it before they change it)."""
    import maco_hub

    out = tmp_path_factory.mktemp("three") / "g"
    model = str(tiny_zoo["resnet"].path)
    maco_hub.explain(
        model, classes=[0, 1, 2], batch_size=2, out=out, steps=2, canvas=32, progress=False, device="cpu"
    )
    return out


@pytest.fixture
def hf_cache() -> Path:
    """The session's temporary Hugging Face hub cache (HF_HUB_CACHE)."""
    return Path(os.environ["HF_HUB_CACHE"])


@pytest.fixture
def maco_cli(capsys, monkeypatch) -> Callable[..., subprocess.CompletedProcess]:
    """Run ``maco-hub ARGS`` in this process (no torch import per call); returns the exit code
    and captured output as a CompletedProcess. The CLI's logging set-up is undone afterwards."""
    from maco_hub import cli

    logger = logging.getLogger("maco_hub")
    monkeypatch.setattr(logger, "handlers", list(logger.handlers))
    monkeypatch.setattr(logger, "level", logger.level)
    for name in (
        "HF_HUB_DISABLE_PROGRESS_BARS",
        "HF_DATASETS_DISABLE_PROGRESS_BARS",
        "TRANSFORMERS_VERBOSITY",
    ):
        if name in os.environ:  # the CLI sets these: put them back as they are after the test
            monkeypatch.setenv(name, os.environ[name])
        else:
            monkeypatch.delenv(name, raising=False)

    def run(*args: str) -> subprocess.CompletedProcess:
        capsys.readouterr()
        code = cli.main(list(args))
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(["maco-hub", *args], code, out, err)

    return run
