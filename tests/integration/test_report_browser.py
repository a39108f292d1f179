"""The --html page in a real browser: it renders cleanly, its filters work, and a
screenshot shows the lit pixels where the test put them.

Headless chromium through Selenium (``make test`` runs these when chromium and
chromedriver are installed, and says plainly when they are not). Selenium
waits on conditions, never on time.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from segcli.cli.root import app
from segcli.picture import NO_SEGMENT_RGB
from tests.helpers.browser import chromium, missing
from tests.helpers.report_masks import (
    CORNER_BOX,
    HOSTILE_LABEL,
    HOSTILE_REF,
    RTL_LABEL,
    report_manifest,
)

pytestmark = pytest.mark.browser
WAIT_S = 20


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    html = folder / "report.html"
    done = CliRunner().invoke(
        app,
        ["validate", str(report_manifest(folder / "data")), "--html", str(html), "--workers", "1"],
    )
    assert done.exit_code == 1, done.output
    return html


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    why = missing()
    if why is not None:  # chosen but not runnable: a failure, not a quiet skip
        pytest.fail(f"the browser tests need chromium: {why}; or leave them out: -m 'not browser'")
    with chromium(tmp_path_factory.mktemp("profile")) as driver:
        yield driver


def opened(browser: Any, page: Path) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(page.as_uri())
    WebDriverWait(browser, WAIT_S).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )
    return browser


def visible_refs(browser: Any) -> list[str]:
    from selenium.webdriver.common.by import By

    return [
        card.get_attribute("data-ref")
        for card in browser.find_elements(By.CSS_SELECTOR, "article.card")
        if card.is_displayed()
    ]


def wait_for_refs(browser: Any, expected: list[str]) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, WAIT_S).until(
        lambda d: visible_refs(d) == expected, message=f"waiting for {expected}"
    )


def test_the_page_renders_without_console_errors(browser: Any, page: Path) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    opened(browser, page)
    entries = browser.get_log("browser")
    assert [e for e in entries if e["level"] in ("SEVERE", "WARNING")] == [], entries
    with pytest.raises(NoAlertPresentException):  # no injected script ran
        _ = browser.switch_to.alert.text
    assert browser.title.startswith("segcli validate ")
    assert visible_refs(browser) == ["corner-0001", HOSTILE_REF, "missing-0001"]
    # every picture decoded (a broken data: URI has no natural size)
    for img in browser.find_elements(By.CSS_SELECTOR, "article.card img"):
        assert browser.execute_script("return arguments[0].naturalWidth", img) > 0


def test_hostile_text_is_shown_as_text(browser: Any, page: Path) -> None:
    from selenium.webdriver.common.by import By

    opened(browser, page)
    refs = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "h3 bdi.ref")]
    assert HOSTILE_REF in refs
    labels = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "table.legend td bdi")]
    assert HOSTILE_LABEL in labels and RTL_LABEL in labels
    assert "</table><img src=x onerror=alert(1)>" in labels
    # the markup in them made no element
    assert browser.find_elements(By.CSS_SELECTOR, "article.card b, article.card script") == []


def test_the_filters_show_the_items_of_a_code_and_an_id(browser: Any, page: Path) -> None:
    from selenium.webdriver.common.by import By

    opened(browser, page)
    button = browser.find_element(By.CSS_SELECTOR, 'button[data-code="mask-unreadable"]')
    button.click()
    wait_for_refs(browser, ["missing-0001"])
    assert button.get_attribute("aria-pressed") == "true"
    assert browser.find_element(By.ID, "shown").text == "1"
    other = browser.find_element(By.CSS_SELECTOR, 'button[data-code="value-without-segment"]')
    other.click()  # two codes: the items of either
    wait_for_refs(browser, ["corner-0001", "missing-0001"])
    button.click()
    other.click()
    wait_for_refs(browser, ["corner-0001", HOSTILE_REF, "missing-0001"])
    search = browser.find_element(By.ID, "search")
    search.send_keys("CORNER")  # case does not matter
    wait_for_refs(browser, ["corner-0001"])
    search.clear()
    search.send_keys("<script")
    wait_for_refs(browser, [HOSTILE_REF])
    search.clear()
    search.send_keys("x")  # clear() sends no input event; a key does
    search.send_keys("\b")
    wait_for_refs(browser, ["corner-0001", HOSTILE_REF, "missing-0001"])


def test_a_screenshot_shows_the_lit_pixels_where_they_are(browser: Any, page: Path) -> None:
    from selenium.webdriver.common.by import By

    opened(browser, page)
    img = browser.find_element(By.CSS_SELECTOR, 'article.card[data-ref="corner-0001"] img')
    browser.execute_script("arguments[0].scrollIntoView()", img)
    width, height = (int(img.get_attribute(n)) for n in ("width", "height"))
    assert (width, height) == (200, 100)  # small enough to be drawn 1:1
    shot = np.asarray(Image.open(io.BytesIO(img.screenshot_as_png)).convert("RGB"))
    # the element's box holds a 1-pixel border around the picture
    border = (shot.shape[1] - width) // 2
    lit = np.argwhere(np.all(shot == NO_SEGMENT_RGB, axis=2)) - border
    left, top, right, bottom = CORNER_BOX
    assert lit.size, "no lit pixel in the screenshot"
    assert (lit[:, 0].min(), lit[:, 1].min()) == (top, left)
    assert (lit[:, 0].max(), lit[:, 1].max()) == (bottom - 1, right - 1)
    assert len(lit) == (right - left) * (bottom - top)
    Image.fromarray(shot).save(page.parent / "corner-card.png")  # to look at when it fails


def test_the_readme_pictures_are_made_from_sample_data(tmp_path: Path) -> None:
    """scripts/readme_pictures.py, as README says to run it, into a folder of the test's."""
    import subprocess
    import sys

    from segcli.picture import label_colour
    from tests.helpers.paths import REPO

    why = missing()
    if why is not None:
        pytest.fail(f"the browser tests need chromium: {why}")
    done = subprocess.run(
        [sys.executable, "scripts/readme_pictures.py", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    pictures = {}
    for name in ("report.png", "preview.png", "stats.png"):
        with Image.open(tmp_path / name) as made, Image.open(REPO / "docs" / name) as shown:
            pictures[name] = np.asarray(made.convert("RGB"))
            # README's copy is this script's: same layout (the report's date aside)
            assert made.width == shown.width, name
    report = pictures["report.png"]
    assert report.shape[1] == 1100 and np.all(report == NO_SEGMENT_RGB, axis=2).sum() > 1000
    # street-0001 in its labels' colours, and its image beside
    assert np.all(pictures["preview.png"] == label_colour("pavement"), axis=2).sum() > 10_000
