"""Take the README's screenshots from a running demo (``make demo``) with Debian's Chromium.

    .venv/bin/python scripts/screenshots.py [http://127.0.0.1:8000]

Writes docs/screenshots/*.png. Starts one audit first when the demo has none, so the chart and the
matrix have something to show.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

BASE = (sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000").rstrip("/")
OUT = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
SHOTS = [
    ("home", "/", 1280),
    ("machine", "/ci/production/web1/", 1280),
    ("runbook", "/ci/production/web1/-/runbook/", 1280),
    ("audits", "/audits/", 1280),
    ("home-phone", "/", 390),
]


def runs(page) -> list[str]:
    hrefs = [a.get_attribute("href") or "" for a in page.locator("a[href^='/audits/']").all()]
    return [h for h in hrefs if re.fullmatch(r"/audits/\d+/", h)]


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{BASE}/accounts/login/")
        page.fill("input[name=username]", "demo")
        page.fill("input[name=password]", "demo")
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r".*/$"))
        page.goto(f"{BASE}/audits/")
        if not runs(page):
            page.locator("form[action$='/audits/start/'] button[type=submit]").first.click()
            time.sleep(15)  # the demo's worker audits its handful of machines in seconds
            page.goto(f"{BASE}/audits/")
        shots = list(SHOTS) + [("audit-run", href, 1280) for href in runs(page)[:1]]
        for name, path, width in shots:
            page.set_viewport_size({"width": width, "height": 900 if width > 400 else 844})
            page.goto(f"{BASE}{path}")
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(OUT / f"{name}.png"), full_page=name != "home-phone")
            print(OUT / f"{name}.png")
        browser.close()


if __name__ == "__main__":
    main()
