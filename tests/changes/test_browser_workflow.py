"""The change workflow in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright):
a requester opens and submits a change request through the forms, an approver approves it, staff
release it, and origin's main ends up at the branch head. A screenshot of every step is kept under
``test-artifacts/screenshots/`` (git-ignored).

Never runs ``playwright install``: the system Chromium is used. Without it the test is skipped, or
fails when CMDB_TEST_SERVICES is set (CI, scripts/test.sh), where it must run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from changes.models import ChangeEvent, ChangeRequest
from tests.changes.ui import origin_head
from tests.conftest import PASSWORD

# Playwright runs an event loop in this thread; the ORM calls the test makes between steps are fine.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

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


@pytest.fixture
def browser():
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
    """One person at the browser: a fresh context (cookies), numbered screenshots."""

    counter = 0

    def __init__(self, browser, base_url: str, name: str):
        self.name = name
        self.base_url = base_url
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.set_default_timeout(TIMEOUT_MS)
        self.page = self.context.new_page()
        # "Release to main?" and similar confirmations are accepted, as the person would.
        self.page.on("dialog", lambda dialog: dialog.accept())

    def shot(self, step: str) -> None:
        Session.counter += 1
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"workflow-{Session.counter:02d}-{self.name}-{step}.png"), full_page=True)

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


def test_request_approve_and_release_in_a_real_browser(browser, live_server, synced, test_branch, requester, approver,
                                                        staff):
    base = live_server.url

    # --- the requester opens a change request for the branch and submits it ------------------------
    rick = Session(browser, base, "requester")
    rick.login(requester.username)
    page = rick.page
    page.locator(".portal-navbar").get_by_role("link", name="Changes").click()
    page.get_by_role("link", name="New change request").click()
    page.wait_for_url(f"{base}/changes/new/")
    assert page.locator("select[name=branch] option").all_inner_texts() == ["Choose a branch…", test_branch]
    page.get_by_label("Branch").select_option(test_branch)
    page.get_by_label("Title").fill("Two nginx workers on test")
    page.get_by_label("Description").fill("Doubles the **workers** of nginx on web-test1.\n\n- reload nginx\n")
    rick.shot("new-change-form")
    page.get_by_role("button", name="Create draft").click()
    page.wait_for_url(f"{base}/changes/*/")
    change = ChangeRequest.objects.get()
    assert page.url == f"{base}{change.get_absolute_url()}"
    assert page.locator(".state-badge").inner_text().strip() == "Draft"
    assert page.locator(".change-description strong").inner_text() == "workers"
    assert page.locator(".impact-table").get_by_role("link", name="test/web-test1/nginx").is_visible()
    rick.shot("draft")
    page.get_by_role("button", name="Submit for approval").click()
    page.wait_for_load_state()
    assert page.locator(".state-badge").inner_text().strip() == "Submitted"
    assert page.get_by_text(f"{change.reference} was submitted for approval.").is_visible()
    rick.shot("submitted")
    rick.logout()

    # --- an approver finds it on the home page and approves it -----------------------------------------
    alice = Session(browser, base, "approver")
    alice.login(approver.username)
    page = alice.page
    awaiting = page.locator(".cc-awaiting").get_by_role("link", name=change.reference)
    assert awaiting.is_visible()
    alice.shot("home-awaiting")
    awaiting.click()
    page.wait_for_url(f"{base}{change.get_absolute_url()}")
    assert page.locator("input[name=head_sha]").get_attribute("value") == change.head_sha
    page.get_by_label("Review of").fill("Checked on staging.")
    alice.shot("review")
    page.get_by_role("button", name="Approve", exact=True).click()
    page.wait_for_load_state()
    assert page.locator(".state-badge").inner_text().strip() == "Approved"
    assert "1 of 1" in page.locator(".approvals-summary").inner_text()
    alice.shot("approved")
    alice.logout()

    # --- staff release it to main --------------------------------------------------------------------
    sam = Session(browser, base, "staff")
    sam.login(staff.username)
    page = sam.page
    page.goto(f"{base}{change.get_absolute_url()}")
    sam.shot("before-release")
    page.get_by_role("button", name="Implement: release to main").click()
    page.wait_for_load_state()
    page.locator(".state-badge.state-implemented").wait_for()
    assert page.locator(".state-badge").inner_text().strip() == "Implemented"
    assert page.get_by_text(f"{change.reference} was released to main.").is_visible()
    sam.shot("implemented")

    change.refresh_from_db()
    assert change.state == ChangeRequest.State.IMPLEMENTED
    assert origin_head(synced) == change.head_sha == origin_head(synced, f"refs/heads/{test_branch}")
    record = list(ChangeEvent.objects.filter(change=change).values_list("action", "actor__username"))
    assert record == [("created", requester.username), ("submitted", requester.username),
                      ("vote-approve", approver.username), ("approved", approver.username),
                      ("merged", staff.username)]
    # the release synced the index (Celery eager: inline, on commit): the footer shows the new main
    page.goto(f"{base}/")
    assert change.head_sha[:10] in page.locator("footer").inner_text()
    sam.shot("home-after-release")
    sam.context.close()
