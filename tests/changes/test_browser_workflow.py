"""The change workflow in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright):
a requester opens and submits a change request through the forms, an approver approves it, staff
release it, and origin's main ends up at the branch head. A screenshot of every step is kept under
``test-artifacts/screenshots/`` (git-ignored).

Never runs ``playwright install``: the system Chromium is used. Without it the test is skipped, or
fails when CMDB_TEST_SERVICES is set (CI, scripts/test.sh), where it must run. The ``browser`` fixture
and ``Session`` are shared with the other browser tests (tests/changes/browser.py).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from changes.models import ChangeEvent, ChangeRequest
from tests.changes.browser import Session
from tests.changes.ui import origin_head

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


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
    now = timezone.localtime()  # a planned window holding now: staff release it below
    page.get_by_label("Window start").fill((now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("Window end").fill((now + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"))
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
    # the portal does not deploy here: the release is verified by an audit at once (its machines are
    # configured by hand, so the verification waits for their manual checks)
    assert record == [("created", requester.username), ("submitted", requester.username),
                      ("vote-approve", approver.username), ("approved", approver.username),
                      ("merged", staff.username), ("audit-started", None)]
    assert change.verification["state"] == "pending" and change.verification["manual"]
    # the release synced the index (Celery eager: inline, on commit): the footer shows the new main
    page.goto(f"{base}/")
    assert change.head_sha[:10] in page.locator("footer").inner_text()
    sam.shot("home-after-release")
    sam.context.close()
