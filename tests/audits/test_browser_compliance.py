"""The compliance chart and the audit matrix in a real headless Chromium (Debian's /usr/bin/chromium
driven by Playwright): after a clean month, an audit with drift draws production's point lower on the
chart of the audits page and the home page, and the run's matrix shows the drifted cell that leads to
its finding. At a phone's width (390 px) the chart fits and neither the audits page nor the run page scrolls
sideways; the matrix scrolls in its own box.

Screenshots: ``test-artifacts/screenshots/compliance-*.png`` (git-ignored).
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from audits.models import AuditRun, Finding
from tests.changes.browser import Session

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NGINX = "/etc/nginx/nginx.conf"


# What sticks out: wider than the viewport and not inside a box that scrolls or clips it.
WIDER_THAN_VIEWPORT = """() => {
  const clipped = e => { for (let p = e.parentElement; p && p !== document.body; p = p.parentElement) {
    if (getComputedStyle(p).overflowX !== 'visible') return true; } return false; };
  return [...document.querySelectorAll('body *')]
    .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1 && !clipped(e))
    .slice(0, 5).map(e => `${e.tagName}.${e.className} ${Math.round(e.getBoundingClientRect().right)}`);
}"""


def _no_sideways_scroll(page) -> None:
    wide = page.evaluate("document.documentElement.scrollWidth > document.documentElement.clientWidth")
    assert not wide, (page.url, page.evaluate(WIDER_THAN_VIEWPORT))


def test_drift_shows_on_the_chart_and_in_the_matrix(browser, live_server, audit_env, staff, viewer):
    from playwright.sync_api import expect  # after the browser fixture: it skips/fails without Playwright

    base = live_server.url
    earlier = timezone.now() - timedelta(days=30)
    AuditRun.objects.create(state=AuditRun.State.SUCCEEDED, created_at=earlier, finished_at=earlier, summary={
        "compliance": 100.0, "environments": {"prod": {"compliance": 100.0}, "test": {"compliance": 100.0}}})

    sam = Session(browser, base, "staff", prefix="compliance")
    sam.login(staff.username)
    page = sam.page
    page.goto(f"{base}/audits/")
    page.get_by_role("button", name="Start audit").click()
    page.wait_for_url(re.compile(rf"^{re.escape(base)}/audits/\d+/$"))
    run = AuditRun.objects.latest("created_at")
    expect(page.locator("#audit-live")).to_have_attribute("data-state", "succeeded")

    # --- the matrix: production/web1's nginx drifted, its cell leads to exactly its findings -----------------
    matrix = page.locator("#audit-matrix")
    cell = matrix.locator('tr[data-machine="prod/web1"] td[data-application="prod/web1/nginx"]')
    expect(cell).to_have_attribute("data-state", "drifted")
    expect(cell).to_contain_text("drifted")
    expect(cell).to_contain_text("2/3")
    expect(matrix.locator('tr[data-machine="test/t1"] td[data-application="test/t1/app"]')).to_have_attribute(
        "data-state", "in-sync")
    expect(matrix.locator('tr[data-machine="prod/ssh1"] td')).to_contain_text("unreachable")
    sam.shot("matrix")
    cell.locator("a").click()
    page.wait_for_url(re.compile(r".*/audits/findings/\?run=\d+.*"))
    rows = page.locator("tr.finding-row")
    expect(rows).to_have_count(2)
    expect(page.locator("#finding-filter-run")).to_contain_text(f"audit #{run.pk}")
    sam.shot("matrix-findings")
    content = Finding.objects.get(run=run, machine_path="prod/web1", target=NGINX, kind="content")
    page.locator('tr.finding-row[data-kind="content"] a').first.click()
    page.wait_for_url(f"{base}{content.get_absolute_url()}")
    expect(page.locator("h1")).to_have_text(f"{NGINX} on prod/web1")

    # --- the audits page: production's point after the drift is drawn lower ---------------------------------
    page.goto(f"{base}/audits/")
    prod = page.locator('#audits-chart g.chart-series[data-environment="prod"]')
    markers = prod.locator("path.chart-marker[data-run]")
    expect(markers).to_have_count(2)
    clean, drifted = markers.nth(0).bounding_box(), markers.nth(1).bounding_box()
    assert clean and drifted and drifted["y"] > clean["y"] + 50
    assert drifted["x"] > clean["x"]
    expect(prod.locator(".chart-last text")).to_have_text("22.2%")
    expect(page.locator('#audits-chart [data-legend="prod"]')).to_contain_text("prod 22.2%")
    test_markers = page.locator('#audits-chart g.chart-series[data-environment="test"] path.chart-marker[data-run]')
    assert test_markers.nth(1).bounding_box()["y"] == pytest.approx(test_markers.nth(0).bounding_box()["y"], abs=1)
    sam.shot("audits-chart")
    sam.logout()

    # --- a viewer reads the same on the home page, and at 390 px nothing scrolls sideways -------------------
    vera = Session(browser, base, "viewer", prefix="compliance")
    vera.login(viewer.username)
    page = vera.page
    expect(page.locator('#home-chart [data-legend="prod"]')).to_contain_text("22.2%")
    expect(page.locator("#home-chart svg[role=img] desc")).to_contain_text("prod: from 100% to 22.2%")
    page.set_viewport_size({"width": 390, "height": 844})
    home_chart = page.locator("#home-chart").bounding_box()
    assert home_chart and home_chart["x"] >= 0 and home_chart["x"] + home_chart["width"] <= 390
    for url in ("/audits/", run.get_absolute_url()):
        page.goto(f"{base}{url}")
        _no_sideways_scroll(page)
    box = page.locator(".matrix-scroll").bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390
    vera.shot("run-390")
    page.goto(f"{base}/audits/")
    chart = page.locator("#audits-chart svg.chart-svg").bounding_box()
    assert chart and chart["width"] <= 390
    vera.shot("audits-390")
