"""Shared test set-up: every cache in a temporary folder, the Hub unreachable by design.

huggingface_hub and datasets read their environment when first imported, so the variables are
set here, at collection time, before any test module imports them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

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

# A Hub-compatible server on 127.0.0.1 (tests/hub_server.py); sets HF_ENDPOINT, so it starts here.
from hub_server import hub, online_hub, start_session_hub  # noqa: E402, F401

start_session_hub(_HOME / "hub_server")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_HOME, ignore_errors=True)


@pytest.fixture
def hf_cache() -> Path:
    """The session's temporary Hugging Face hub cache (HF_HUB_CACHE)."""
    return Path(os.environ["HF_HUB_CACHE"])
