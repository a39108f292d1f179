"""Debian's chromium, headless, driven by Selenium through Debian's chromedriver.

Both come from apt (``chromium``, ``chromium-driver``); Selenium is told where
they are, so it never tries to download a browser or a driver of its own.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BROWSER_NAMES = ("chromium", "chromium-browser")
DRIVER_NAMES = ("chromedriver",)
INSTALL = "apt-get install chromium chromium-driver"


def _which(names: tuple[str, ...]) -> str | None:
    return next((found for name in names if (found := shutil.which(name))), None)


def missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    browser, driver = _which(BROWSER_NAMES), _which(DRIVER_NAMES)
    if browser and driver:
        return None
    absent = " and ".join(
        n for n, found in (("chromium", browser), ("chromedriver", driver)) if not found
    )
    return f"{absent} not on PATH ({INSTALL})"


@contextmanager
def chromium(profile: Path, width: int = 1280, height: int = 1000) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = _which(BROWSER_NAMES) or "chromium"
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",  # one screenshot pixel per CSS pixel
        f"--window-size={width},{height}",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(_which(DRIVER_NAMES)))
    try:
        yield driver
    finally:
        driver.quit()
