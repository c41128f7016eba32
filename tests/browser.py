"""A headless Chromium driven by Selenium, for tests of the pages maco_hub writes.

Uses the system's chromium and chromedriver only: the driver path is given explicitly, so
Selenium Manager never looks anything up or downloads anything.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
CHROMEDRIVER_CANDIDATES = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")
INSTALL_HINT = "install it with `apt-get install -y chromium chromium-driver` (CI's .ci/run does)"
WINDOW_SIZE = (1280, 900)  # CSS pixels of the headless window


def _first_existing(candidates: tuple[str, ...], name: str) -> str | None:
    for path in candidates:
        if Path(path).is_file():
            return path
    return shutil.which(name)


def why_unavailable() -> str | None:
    """None when a browser test can run, else the reason it cannot (for pytest.skip)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed; install the test extra: pip install -e '.[test]'"
    if _first_existing(CHROMIUM_CANDIDATES, "chromium") is None:
        return f"chromium is not installed; {INSTALL_HINT}"
    if _first_existing(CHROMEDRIVER_CANDIDATES, "chromedriver") is None:
        return f"chromedriver is not installed; {INSTALL_HINT}"
    return None


@contextmanager
def headless_chromium() -> Iterator[Any]:
    """A Selenium Chrome driver on a fresh profile, collecting console messages; closed on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="maco_hub_chromium_")
    options = webdriver.ChromeOptions()
    options.binary_location = _first_existing(CHROMIUM_CANDIDATES, "chromium") or ""
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--window-size={WINDOW_SIZE[0]},{WINDOW_SIZE[1]}",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(_first_existing(CHROMEDRIVER_CANDIDATES, "chromedriver"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console_errors(driver: Any) -> list[str]:
    """Console messages of level SEVERE (JS exceptions, failed loads, CSP violations) since last call."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
