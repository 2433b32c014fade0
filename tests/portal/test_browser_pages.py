"""Every main page read on a phone and by assistive technology, in real Chromium (Debian's, via Playwright):
at 390 x 844 no page scrolls sideways (the widest elements are named on failure), and axe-core, injected
from node_modules (nothing fetched), reports no serious or critical violation.

To add a page: append ``(name, url builder)`` to ``MAIN_PAGES``; a builder gets the seeded ``State``
(a synced demo-like repository with a change request awaiting approval, its dry run, a finished audit
with findings, a baseline, a freeze, a standing window and an unauthorized commit).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import time, timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from tests.changes.browser import TIMEOUT_MS, Session

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
PHONE = {"width": 390, "height": 844}
BLOCKING = ("serious", "critical")
AXE_URL = "/__test__/axe.min.js"

# Elements sticking out past the viewport, outside any box that scrolls or clips them: what makes the
# page scroll sideways. The outermost offenders come first (their children stick out with them).
WIDEST = """() => {
  const vw = document.documentElement.clientWidth;
  const clipped = (el) => {
    for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
      const o = getComputedStyle(a).overflowX;
      if (o !== "visible") return true;
    }
    return false;
  };
  const name = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "")
    + [...el.classList].slice(0, 3).map((c) => "." + c).join("");
  const out = [];
  for (const el of document.body.querySelectorAll("*")) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.right <= vw + 1 || clipped(el)) continue;
    if (out.some((o) => o.el.contains(el))) continue;
    out.push({el, right: Math.round(r.right)});
  }
  return {scrollWidth: document.documentElement.scrollWidth,
          widest: out.slice(0, 5).map((o) => `${name(o.el)} (right edge ${o.right}px): `
            + (o.el.textContent || "").trim().replace(/\\s+/g, " ").slice(0, 60))};
}"""


@dataclass
class State:
    change: object
    job: object
    run: object
    finding: object
    first_sha: str
    last_sha: str


MAIN_PAGES: list[tuple[str, Callable[[State], str]]] = [
    ("home", lambda s: "/"),
    ("root CI", lambda s: "/ci/"),
    ("environment", lambda s: "/ci/prod/"),
    ("machine", lambda s: "/ci/prod/web1/"),
    ("application", lambda s: "/ci/prod/web1/nginx/"),
    ("file", lambda s: "/files/prod/web1/nginx/files/etc/nginx/nginx.conf"),
    ("search", lambda s: "/search/?q=nginx"),
    ("commit", lambda s: f"/commits/{s.last_sha}/"),
    ("history", lambda s: "/ci/prod/web1/-/history/"),
    ("compare", lambda s: f"/ci/prod/web1/-/compare/?from={s.first_sha}&to=main"),
    ("lint", lambda s: "/lint/"),
    ("sync runs", lambda s: "/sync/runs/"),
    ("changes", lambda s: "/changes/"),
    ("change", lambda s: s.change.get_absolute_url()),
    ("change form", lambda s: "/changes/new/"),
    ("baselines", lambda s: "/changes/baselines/"),
    ("windows", lambda s: "/changes/windows/"),
    ("freezes", lambda s: "/changes/freezes/"),
    ("unauthorized", lambda s: "/changes/unauthorized/"),
    ("jobs", lambda s: "/jobs/"),
    ("job", lambda s: s.job.get_absolute_url()),
    ("audits", lambda s: "/audits/"),
    ("audit", lambda s: s.run.get_absolute_url()),
    ("findings", lambda s: "/audits/findings/"),
    ("finding", lambda s: s.finding.get_absolute_url()),
    ("checks", lambda s: "/audits/checks/"),
    ("machines status", lambda s: "/audits/machines/"),
    ("machine runbook", lambda s: "/ci/prod/web1/-/runbook/"),
    ("environment runbook", lambda s: "/ci/prod/-/runbook/"),
    ("account and tokens", lambda s: "/account/"),
    ("API docs", lambda s: "/api/docs/"),
    ("API reference (ReDoc)", lambda s: "/api/redoc/"),
]
# Pages only staff open (the walk signs in as staff for these).
STAFF_PAGES: list[tuple[str, Callable[[State], str]]] = [
    ("notification targets", lambda s: "/notifications/"),
    ("new notification target", lambda s: "/notifications/new/"),
    ("everyone's API tokens", lambda s: "/account/tokens/"),
]


@pytest.fixture
def seeded(dry_env, requester, approver, staff, make_change) -> State:
    from audits import services as audit_services
    from audits.models import Finding
    from changes import services as change_services
    from changes.models import FreezePeriod
    from changes.windows import window_create
    from cmdb import services
    from deploys import services as deploy_services

    repo = dry_env["repo"]
    first = repo.git("rev-parse", "main").strip()
    services.repo_sync(trigger="test")
    change = make_change(dry_env["branch"], title="Tune nginx worker processes on the production web servers",
                         description="Raise `worker_processes` to 4.\n\n- web1 first\n- then the others")
    change_services.change_submit(change=change, acting_user=requester)
    job = deploy_services.dryrun_start(acting_user=requester, change=change)
    run = audit_services.audit_start(acting_user=staff, scope="")
    change_services.baseline_create(acting_user=staff, name="baseline-2026-11", note="Before the nginx tuning")
    now = timezone.now()
    FreezePeriod.objects.create(start=now + timedelta(days=10), end=now + timedelta(days=12),
                                reason="Year-end sales", environment="prod")
    window_create(acting_user=staff, environment="prod", weekdays=[1, 3], start=time(7), end=time(9),
                  note="Tuesday and Thursday mornings")
    repo.write("prod/web1/README.md", "# web1\n\nHotfix: /etc/nginx/conf.d/very-long-file-name-for-a-phone.conf\n")
    last = repo.commit("Hotfix pushed directly to main without a change request")
    services.repo_sync(trigger="test")
    finding = Finding.objects.filter(run=run).order_by("pk").first()
    assert finding is not None
    return State(change=change, job=job, run=run, finding=finding, first_sha=first, last_sha=last)


def _serve_axe(page, base: str):
    """Playwright answers ``AXE_URL`` from node_modules: nothing is fetched, and the portal serves no test file."""
    page.route(base + AXE_URL, lambda route: route.fulfill(path=str(AXE), content_type="text/javascript"))
    return page


def _check(page, base: str, name: str, url: str) -> list[str]:
    problems = []
    response = page.goto(base + url)
    page.wait_for_load_state("networkidle")
    if response is None or response.status >= 400:
        return [f"{name} {url}: answered {response and response.status}"]
    width = page.evaluate(WIDEST)
    if width["scrollWidth"] > PHONE["width"]:
        problems.append(f"{name} {url}: {width['scrollWidth']}px wide at {PHONE['width']}px; "
                        f"widest: {width['widest']}")
    # Served to the page by Playwright under the portal's own origin, so the Content-Security-Policy
    # (script-src 'self', nothing inline) stays on as users get it.
    page.add_script_tag(url=base + AXE_URL)
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    for violation in result["violations"]:
        if violation["impact"] in BLOCKING:
            targets = [" ".join(map(str, node["target"])) for node in violation["nodes"]][:5]
            problems.append(f"{name} {url}: axe {violation['impact']} {violation['id']} on {targets}")
    return problems


def test_every_main_page_fits_a_phone_and_passes_axe(browser, live_server, seeded, approver, staff):
    assert AXE.is_file(), f"{AXE} is missing: run `make static` (axe-core is a devDependency in package.json)"
    base = live_server.url
    # The approver sees the most buttons (approve, dry run, record checks, adopt...).
    alice = Session(browser, base, "approver", prefix="pages")
    alice.login(approver.username)
    page = _serve_axe(alice.page, base)
    page.set_viewport_size(PHONE)
    problems: list[str] = []
    for name, build in MAIN_PAGES:
        problems += _check(page, base, name, build(seeded))

    # The account menu is not named after its user: "alice_approver" matched the Approve button's name.
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(base + seeded.change.get_absolute_url())
    assert page.get_by_role("button", name="Approve").count() == 1
    assert page.get_by_role("button", name="Account menu").count() == 1

    sam = Session(browser, base, "staff", prefix="pages")
    sam.login(staff.username)
    staff_page = _serve_axe(sam.page, base)
    staff_page.set_viewport_size(PHONE)
    for name, build in STAFF_PAGES:
        problems += _check(staff_page, base, name, build(seeded))

    anonymous = browser.new_context(viewport=PHONE)
    anonymous.set_default_timeout(TIMEOUT_MS)
    problems += _check(_serve_axe(anonymous.new_page(), base), base, "login", "/accounts/login/")
    anonymous.close()
    assert problems == [], "\n".join(problems)
