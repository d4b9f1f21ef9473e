"""The live page, in a real headless chromium: it draws every stage and its numbers move.

The windowed stage has a hostile name (markup with an ``onerror`` handler): the page must
show it as text, and no script of it may run.

The browser comes from scripts/browser.sh (run by the test command); the screenshot is
saved in test-artifacts/live-page.png.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.test_cli import start, stop, wait_until, write
from tests.daemon.test_http import FLOW, free_port, get, inputs

ARTIFACTS = Path(__file__).parents[2] / "test-artifacts"
HOSTILE = "<img src=x onerror=window.pwned=1>"
HOSTILE_FLOW = FLOW.replace('name="counts"', f"name={HOSTILE!r}")
PAGE = Path(__file__).parents[2] / "streamcore" / "daemon" / "static" / "index.html"


def browser() -> Any:
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    driver = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("no chromium / chromedriver (scripts/browser.sh ensure installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1400,700"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def test_the_live_page_draws_every_stage_and_its_numbers_change(tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    inputs(tmp_path, 60_000)
    write(tmp_path, "served.py", HOSTILE_FLOW)
    port = free_port()
    process = start(tmp_path, "run", "served:flow", "--metrics-port", str(port))
    driver = None
    try:
        wait_until(lambda: get(port, "/readyz")[0] == 200, "the flow to be ready")
        driver = browser()
        driver.get(f"http://127.0.0.1:{port}/")

        # Read the page in one script each time: it redraws every second, and an element
        # found in one call may be gone by the next (StaleElementReferenceException).
        def stages() -> list[str]:
            found: list[str] = driver.execute_script(
                "return [...document.querySelectorAll('g.stage')].map(g => g.getAttribute('data-stage'))"
            )
            return found

        def text_of(selector: str) -> str:
            found: str = driver.execute_script(
                "const e = document.querySelector(arguments[0]); return e ? e.textContent : ''", selector
            )
            return found

        wait_until(lambda: stages() == ["events", "key_by", HOSTILE, "out"], "every stage drawn")
        wait_until(lambda: len(driver.find_elements(By.CSS_SELECTOR, "#mailboxes tr")) >= 1, "the mailboxes listed")
        assert driver.execute_script("return window.pwned") is None  # the onerror never ran
        assert driver.find_elements(By.TAG_NAME, "img") == []
        assert HOSTILE in text_of("#mailboxes")
        names = driver.execute_script(
            "return [...document.querySelectorAll('g.stage text.name')].map(t => t.textContent)"
        )
        assert any(HOSTILE in name for name in names)
        assert driver.find_element(By.ID, "flow").text == "served"

        def records() -> str:
            return text_of('g.stage[data-stage="events"] [data-field="records"]')

        first = records()
        wait_until(lambda: records() not in ("", first), "the source's count to change")
        wait_until(
            lambda: (text_of('g.stage[data-stage="events"] [data-field="rate"]').split() or [""])[0] not in ("0", ""),
            "a rate of records/s",
        )
        assert len(driver.find_elements(By.TAG_NAME, "line")) == 3  # the edges
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "live-page.png"))
        assert (ARTIFACTS / "live-page.png").stat().st_size > 10_000
    finally:
        if driver is not None:
            driver.quit()
        process.terminate()
        stop(process, tmp_path)
        process.kill()


def test_the_live_page_never_parses_text_as_html() -> None:
    script = PAGE.read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
        assert sink not in script
