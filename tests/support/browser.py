"""A logged-in Label Studio page in Debian's headless Chromium, driven by Playwright (no browser
download: Playwright talks to the system's Chromium)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest


@contextmanager
def label_studio_page(label_studio: Any, width: int = 1400, height: int = 900) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    browser_path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser_path:
        pytest.fail("headless Chromium is needed for this test: apt-get install chromium (test.sh does, as root)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(label_studio.url + "/user/login/")
            page.fill("input[name=email]", label_studio.username)
            page.fill("input[name=password]", label_studio.password)
            page.click("button[type=submit]")
            page.wait_for_load_state("networkidle")
            yield page
        finally:
            browser.close()
