"""The live page, in a real headless chromium: it draws every stage and its numbers move.

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
    write(tmp_path, "served.py", FLOW)
    port = free_port()
    process = start(tmp_path, "run", "served:flow", "--metrics-port", str(port))
    driver = None
    try:
        wait_until(lambda: get(port, "/readyz")[0] == 200, "the flow to be ready")
        driver = browser()
        driver.get(f"http://127.0.0.1:{port}/")

        def stages() -> list[str]:
            return [g.get_attribute("data-stage") for g in driver.find_elements(By.CSS_SELECTOR, "g.stage")]

        wait_until(lambda: stages() == ["events", "key_by", "counts", "out"], "every stage drawn")
        assert driver.find_element(By.ID, "flow").text == "served"

        def records() -> str:
            boxes = driver.find_elements(By.CSS_SELECTOR, 'g.stage[data-stage="events"] [data-field="records"]')
            return boxes[0].text if boxes else ""

        first = records()
        wait_until(lambda: records() not in ("", first), "the source's count to change")
        wait_until(
            lambda: driver.find_elements(By.CSS_SELECTOR, 'g.stage[data-stage="events"] [data-field="rate"]')[0]
            .text.split()[0] not in ("0", ""),
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
