"""What the real-browser tests share: Debian's /usr/bin/chromium driven by Playwright, one ``Session``
per person at the browser, numbered screenshots under ``test-artifacts/screenshots/`` (git-ignored).

Never runs ``playwright install``: the system Chromium is used. Without it a browser test is skipped,
or fails when CMDB_TEST_SERVICES is set (CI, scripts/test.sh), where it must run. The ``browser``
fixture (tests/changes/conftest.py) launches it through ``launch_chromium``.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import PASSWORD

# Playwright runs an event loop in this thread; the ORM calls the tests make between steps are fine.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
TIMEOUT_MS = 30_000


def _unavailable(reason: str) -> None:
    if os.environ.get("CMDB_TEST_SERVICES"):
        pytest.fail(f"{reason} (CMDB_TEST_SERVICES is set: the browser test must run here; "
                    "install Debian's chromium package, see `make system-packages`)", pytrace=False)
    pytest.skip(reason)


@contextmanager
def launch_chromium() -> Iterator:
    """A headless system Chromium (skips, or fails under CMDB_TEST_SERVICES, when it cannot run)."""
    if not CHROMIUM.is_file() or not os.access(CHROMIUM, os.X_OK):
        _unavailable(f"{CHROMIUM} is missing")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Python Playwright is not installed (pip install -e '.[dev]')")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class Session:
    """One person at the browser: a fresh context (cookies), numbered screenshots.

    Screenshots are ``<prefix>-NN-<name>-<step>.png``, numbered per prefix (one prefix per test).
    """

    counters: Counter = Counter()

    def __init__(self, browser, base_url: str, name: str, *, prefix: str = "workflow"):
        self.name = name
        self.prefix = prefix
        self.base_url = base_url
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.set_default_timeout(TIMEOUT_MS)
        self.page = self.context.new_page()
        # "Release to main?" and similar confirmations are accepted, as the person would.
        self.page.on("dialog", lambda dialog: dialog.accept())

    def shot(self, step: str) -> None:
        Session.counters[self.prefix] += 1
        SHOTS.mkdir(parents=True, exist_ok=True)
        number = Session.counters[self.prefix]
        self.page.screenshot(path=str(SHOTS / f"{self.prefix}-{number:02d}-{self.name}-{step}.png"), full_page=True)

    def login(self, username: str) -> None:
        page = self.page
        page.goto(f"{self.base_url}/accounts/login/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(PASSWORD)
        self.shot("login")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{self.base_url}/")
        assert page.get_by_text(f"{username}").first.is_visible()

    def logout(self) -> None:
        page = self.page
        page.locator(".navbar .dropdown-toggle").click()
        page.get_by_role("button", name="Log out").click()
        page.wait_for_url(f"{self.base_url}/accounts/login/**")
        self.context.close()
