"""Every main page under the strict Content-Security-Policy, in real Chromium: no violation reported,
htmx still works, and a hostile README can neither run script nor lay itself over the portal."""

from __future__ import annotations

import pytest

from changes import services as change_services
from cmdb import services
from tests.changes.browser import Session
from tests.gitutil import on_branch

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HOSTILE = """# web1

<div class="position-fixed top-0 start-0 w-100 h-100 bg-white">Fake sign-in: type your password here</div>

<h2 id="portal-nav">Fake nav</h2>

<script>window.__owned = 1</script>
<img src="x.png" onerror="window.__owned = 2">

<p style="position:fixed;top:0;left:0;width:100%;height:100%">cover</p>
"""

RECORDER = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__csp.push(e.violatedDirective + " " + (e.blockedURI || "inline") + " " + e.sourceFile + ":" + e.lineNumber);
});
"""


def test_no_page_reports_a_csp_violation_and_htmx_works(browser, live_server, synced, staff, requester):
    synced.write("production/web1/README.md", HOSTILE)
    synced.commit("hostile README")
    services.repo_sync(trigger="test")
    on_branch(synced, "change/csp", {"test/web-test1/nginx/files/etc/nginx/nginx.conf": "worker_processes 2;\n"})
    change = change_services.change_create(acting_user=requester, branch="change/csp", title="CSP check")

    sam = Session(browser, live_server.url, "staff", prefix="csp")
    sam.context.add_init_script(RECORDER)
    console: list[str] = []
    sam.page.on("console", lambda m: console.append(m.text) if "Content Security Policy" in m.text else None)
    sam.login(staff.username)
    pages = ["/", "/ci/", "/ci/production/", "/ci/production/web1/", "/ci/production/web1/nginx/",
             "/files/production/web1/nginx/files/etc/nginx/nginx.conf", "/ci/production/web1/-/history/",
             "/ci/production/web1/nginx/-/compare/", "/search/?q=nginx", "/lint/", "/sync/runs/",
             "/changes/", change.get_absolute_url(), "/changes/baselines/", "/changes/unauthorized/",
             "/changes/freezes/", "/changes/windows/", "/audits/", "/audits/findings/", "/audits/checks/", "/audits/machines/",
             "/api/docs/", "/api/redoc/", "/no-such-page/"]
    page = sam.page
    for url in pages:
        page.goto(live_server.url + url)
        page.wait_for_load_state("networkidle")
        violations = page.evaluate("window.__csp")
        assert violations == [], (url, violations)
    # Redoc's logo no longer comes from its CDN (portal/apidocs.py): nothing at all is refused.
    assert console == [], console

    # htmx still works under the policy: the change page's dry-run panel or the home page's
    # partials load through hx-get (an htmx request carries HX-Request).
    page.goto(live_server.url + "/ci/production/web1/")
    assert page.evaluate("typeof window.htmx") == "object"
    assert page.evaluate("window.__owned === undefined")
    sam.shot("hostile-readme")

    # Nothing of the README lies over the navigation bar: the element at its centre is the bar's own.
    box = page.locator(".portal-navbar").bounding_box()
    top = page.evaluate(
        "([x, y]) => document.elementFromPoint(x, y).closest('.portal-navbar') !== null",
        [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2],
    )
    assert top
    readme = page.locator(".readme, .markdown-body").first
    assert readme.locator(".position-fixed").count() == 0
    assert page.locator("#portal-nav").evaluate("el => el.tagName") != "H2"
