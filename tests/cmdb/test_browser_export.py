"""The offline export opened from disk in a real headless Chromium with the network off: the demo's
archive unzipped into a temporary folder, index.html opened through file://, its stylesheets applied,
and its links followed to web1's rebuild runbook and on to an application's page, without a single
request leaving the disk. Screenshots: ``test-artifacts/screenshots/export-*.png`` (git-ignored)."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.core.management import call_command

from cmdb import runbook
from tests.changes.browser import SHOTS, TIMEOUT_MS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WEB1 = "production/web1"


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"export-{name}.png"), full_page=True)


def test_the_export_opens_from_disk_offline_and_its_links_lead_to_web1s_runbook(browser, demo, tmp_path):
    from playwright.sync_api import expect  # after the browser fixture: it skips/fails without Playwright

    archive = tmp_path / "docs.zip"
    call_command("docs_export", "--output", str(archive), stdout=io.StringIO())
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(archive) as z:
        z.extractall(unpacked)
        folder = z.namelist()[0].split("/")[0]
    index = unpacked / folder / "index.html"

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    context.set_offline(True)
    requested: list[str] = []
    refused: list[str] = []

    def only_the_disk(route):
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    context.route("**/*", only_the_disk)
    page = context.new_page()
    page.on("request", lambda request: requested.append(request.url))

    page.goto(index.as_uri())
    expect(page.locator("h1").first).to_contain_text("offline documentation")
    expect(page.locator(".export-sha")).to_have_text(page.locator(".export-sha").inner_text())
    # The stylesheets were read from the archive: Bootstrap's variables exist and the body lost the
    # browser's default 8px margin.
    assert page.evaluate("getComputedStyle(document.documentElement).getPropertyValue('--bs-body-font-family')")
    assert page.evaluate("getComputedStyle(document.body).marginTop") == "0px"
    shot(page, "index")

    page.locator(".export-environments").get_by_role("link", name="web1", exact=True).click()
    expect(page.locator("h1").first).to_contain_text(WEB1)
    assert page.url.startswith("file://") and "runbook+production+web1.html" in page.url
    expected = runbook.machine_runbook(WEB1, None, can_view_secrets=False)
    sections = page.locator("section.runbook-section")
    expect(sections).to_have_count(len(expected.sections))
    assert [sections.nth(i).get_attribute("data-path") for i in range(len(expected.sections))] == \
        [s.path for s in expected.sections]
    nginx = page.locator('section.runbook-section[data-path="production/web1/nginx"]')
    expect(nginx.locator(".declared-files")).to_contain_text("/etc/nginx/nginx.conf")
    expect(nginx.locator("article.markdown-body h1").first).to_be_visible()
    expect(page.locator("body")).not_to_contain_text("PRIVATE KEY-----")
    shot(page, "runbook")

    nginx.get_by_role("link", name="production/web1/nginx/").click()
    assert "ci+production+web1+nginx.html" in page.url
    expect(page.locator("h1").first).to_have_text("nginx")
    expect(page.locator("article.markdown-body")).to_be_visible()
    expect(page.locator(".declared-files")).to_contain_text("/etc/nginx/nginx.conf")
    expect(page.locator("table.export-files")).to_contain_text("nginx.conf")
    shot(page, "application")

    # Back up to the environment: its README's topology picture comes from the archive too.
    page.locator(".breadcrumb").get_by_role("link", name="production").click()
    picture = page.locator("article.markdown-body img").first
    expect(picture).to_be_visible()
    assert page.evaluate("img => img.complete && img.naturalWidth > 0", picture.element_handle())

    assert refused == []
    assert requested and all(url.startswith("file://") for url in requested), requested
    context.close()
