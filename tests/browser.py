"""A real browser for the dashboard's tests: Debian's chromium, driven by Playwright, and axe-core
(the copy axe-playwright-python ships) run inside each page checked.

Under CI a missing chromium fails the test (.ci/run installs it); elsewhere it skips, saying how
to install it.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import axe_playwright_python
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

AXE_JS = Path(axe_playwright_python.__file__).with_name("axe.min.js")


def find_chromium() -> str | None:
    """$FEDSYNTH_CHROMIUM, else Debian's chromium on the PATH; None when there is none."""
    return os.environ.get("FEDSYNTH_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def chromium_path() -> str:
    """The browser for a test: under CI a missing one fails the test, elsewhere it skips it."""
    if found := find_chromium():
        return found
    if os.environ.get("CI"):
        pytest.fail("chromium is missing: .ci/run installs Debian's chromium")
    pytest.skip("chromium is not installed (apt-get install chromium)")


@contextmanager
def chromium() -> Iterator[Browser]:
    executable = chromium_path()
    with sync_playwright() as playwright:
        # --no-sandbox: the suite may run as root in a container, where chromium's sandbox cannot start.
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


def sign_in(page: Page, url: str, token: str) -> None:
    page.goto(f"{url}/ui/")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def accessibility_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's violations on the page as it is now (WCAG 2 A and AA rules and best practices)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        # Evaluated, not added as a <script>: the dashboard's Content-Security-Policy allows only
        # its own scripts, and this test must not need a weaker one.
        page.evaluate(AXE_JS.read_text())
    result: dict[str, Any] = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "nodes": [re.sub(r"\s+", " ", n["html"])[:120] for n in v["nodes"]],
        }
        for v in result["violations"]
    ]
