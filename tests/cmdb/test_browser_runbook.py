"""A viewer reads web1's rebuild runbook in a real headless Chromium, on the demo repository of
``make demo``: from the machine's page to its runbook, every section in order with its README, the
files each application installs and its reload commands, then the page as it prints (no navigation,
no buttons). Screenshots: ``test-artifacts/screenshots/runbook-*.png`` (git-ignored)."""

from __future__ import annotations

import pytest

from cmdb import runbook
from tests.changes.browser import Session

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WEB1 = "production/web1"


def test_a_viewer_reads_web1s_rebuild_runbook_on_one_page(browser, live_server, demo, viewer):
    from playwright.sync_api import expect  # after the browser fixture: it skips/fails without Playwright

    expected = runbook.machine_runbook(WEB1, None, can_view_secrets=False)
    paths = [s.path for s in expected.sections]
    assert paths[:5] == ["_common", "production/_common", "production", "production/web1/_common", WEB1]
    assert "production/web1/nginx" in paths

    vera = Session(browser, live_server.url, "viewer", prefix="runbook")
    vera.login(viewer.username)
    page = vera.page
    page.goto(f"{live_server.url}/ci/{WEB1}/")
    vera.shot("machine")
    page.get_by_role("link", name="Rebuild runbook").click()
    page.wait_for_url(f"{live_server.url}/ci/{WEB1}/-/runbook/")
    expect(page.locator("h1").first).to_contain_text("web1")

    sections = page.locator("section.runbook-section")
    expect(sections).to_have_count(len(paths))
    assert [sections.nth(i).get_attribute("data-path") for i in range(len(paths))] == paths
    for i, section in enumerate(expected.sections):
        shown = sections.nth(i)
        shown.scroll_into_view_if_needed()
        expect(shown.locator(".runbook-step")).to_have_text(str(i + 1))
        expect(shown.locator("h3")).to_contain_text(f"{section.path}/")
        if section.has_readme:  # every README of the demo's web1 has text
            expect(shown.locator("article.markdown-body")).to_be_visible()
            expect(shown.locator("article.markdown-body h1").first).to_be_visible()
        if section.declared is not None:
            rows = shown.locator(".declared-files tbody tr")
            expect(rows).to_have_count(len(section.declared.files))
            for number, row in enumerate(section.declared.files):
                expect(rows.nth(number).locator("td").first).to_contain_text(row.target)
            for command in section.declared.reload:
                expect(shown.locator(".runbook-commands")).to_contain_text(command)

    nginx = page.locator('section.runbook-section[data-path="production/web1/nginx"]')
    expect(nginx.locator(".declared-files")).to_contain_text("/etc/nginx/nginx.conf")
    expect(nginx.locator(".declared-files")).to_contain_text("production/_common/tls/fullchain.pem")
    expect(nginx.locator(".declared-files .badge", has_text="secret").first).to_be_visible()
    expect(nginx).not_to_contain_text("PRIVATE KEY-----\nMII")
    vera.shot("runbook")

    # Following a README link stays at the same revision's portal pages.
    nginx.get_by_role("link", name="production/web1/nginx/").click()
    page.wait_for_url(f"{live_server.url}/ci/production/web1/nginx/")
    expect(page.locator("#declared")).to_contain_text("/etc/nginx/nginx.conf")
    vera.shot("application")
    page.go_back()

    page.emulate_media(media="print")
    expect(page.locator("nav.portal-navbar")).to_be_hidden()
    expect(page.locator(".ci-tabs")).to_be_hidden()
    expect(page.locator(".rev-picker")).to_be_hidden()
    expect(page.get_by_role("button", name="Print")).to_be_hidden()
    expect(page.locator("section.runbook-section").first).to_be_visible()
    page.screenshot(path=str(vera_shot_path("runbook-print")), full_page=True)
    page.emulate_media(media="screen")
    expect(page.locator("nav.portal-navbar")).to_be_visible()
    vera.context.close()


def vera_shot_path(name: str):
    from tests.changes.browser import SHOTS

    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS / f"{name}.png"
