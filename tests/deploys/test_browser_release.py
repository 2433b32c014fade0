"""The whole release of the demo's ``change/nginx-tls-hardening`` in a real headless Chromium, as a
newcomer to ``make demo`` would walk it: the demo repository is built with ``demo/build_demo_repo.py``
(its live tree of production/web1 carries the hotfix ``client_max_body_size 64m`` that is not in Git),
synced, and the machines are the demo's local trees with deploys enabled for production and test.

The requester opens the change request through the form and runs a dry run: the hotfix is reported as
a *conflict* on web1's nginx.conf (edited by hand, not part of the change's diff). Two approvers
approve (production needs 2), the requester schedules it around now, staff release it, plan the
release, deploy it overwriting the hand edit (confirmed), see web1 applied and the verification pass,
verify it, and the requester opens the revert CR with one button; both pages link each other.

Celery runs eagerly, so each job is finished when its page is shown. Screenshots of every step:
``test-artifacts/screenshots/release-*.png`` (git-ignored).
"""

from __future__ import annotations

import re
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from changes.models import ChangeEvent, ChangeRequest
from deploys.models import Job, MachinePlan
from tests.changes.browser import Session

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BRANCH = "change/nginx-tls-hardening"
NGINX = "/etc/nginx/nginx.conf"
HOTFIX = "client_max_body_size 64m;  # hotfix INC-2026-118, not in Git yet"
DECLARED_BODY_SIZE = "client_max_body_size 10m;"
TLS_LINE = "ssl_protocols TLSv1.3;"


def _git_show(origin: Path, rev: str, path: str) -> str:
    return subprocess.run(["git", "--git-dir", str(origin), "show", f"{rev}:{path}"], check=True,
                          capture_output=True, text=True).stdout


def _origin_ref(origin: Path, ref: str) -> str:
    return subprocess.run(["git", "--git-dir", str(origin), "rev-parse", ref], check=True, capture_output=True,
                          text=True).stdout.strip()


def _new_job(session: Session, known: set[int], expect) -> Job:
    """After a button that starts a job: the browser is on the new job's page, the job finished."""
    page, base = session.page, session.base_url
    page.wait_for_url(re.compile(rf"^{re.escape(base)}/jobs/\d+/$"))
    job = Job.objects.exclude(pk__in=known).get()
    assert page.url == f"{base}{job.get_absolute_url()}"
    expect(page.locator("#job-live")).to_have_attribute("data-state", "succeeded")
    return job


def _approve(browser, base, user, change, expect, *, step: str) -> None:
    who = Session(browser, base, user.username, prefix="release")
    who.login(user.username)
    page = who.page
    page.goto(f"{base}{change.get_absolute_url()}")
    page.get_by_label("Review of").fill("Read the dry run: the hotfix is a conflict, overwrite it.")
    page.get_by_role("button", name="Approve", exact=True).click()
    page.wait_for_load_state()
    expect(page.locator(".my-vote")).to_be_visible()
    who.shot(step)
    who.logout()


def test_demo_release_deploy_verify_and_revert(browser, live_server, demo, requester, approver, second_approver,
                                               staff):
    from playwright.sync_api import expect  # after the browser fixture: it skips/fails without Playwright

    base = live_server.url
    origin = demo / "origin.git"
    web1_nginx = demo / "live/production/web1/etc/nginx/nginx.conf"
    shopfront = demo / "live/production/web1/etc/systemd/system/shopfront.service"
    assert HOTFIX in web1_nginx.read_text()
    hardened = _git_show(origin, BRANCH, f"production/web1/nginx/files{NGINX}")
    assert TLS_LINE in hardened and DECLARED_BODY_SIZE in hardened and HOTFIX not in hardened
    main_before = _origin_ref(origin, "refs/heads/main")

    # --- the requester opens a change request from the branch with the form -------------------------
    rick = Session(browser, base, "requester", prefix="release")
    rick.login(requester.username)
    page = rick.page
    page.locator(".portal-navbar").get_by_role("link", name="Changes").click()
    page.get_by_role("link", name="New change request").click()
    page.wait_for_url(f"{base}/changes/new/")
    page.get_by_label("Branch").select_option(BRANCH)
    page.get_by_label("Title").fill("nginx on web1: TLS 1.3 only, OCSP stapling, HSTS")
    page.get_by_label("Description").fill("Closes the October pentest findings.")
    now = timezone.localtime()  # a planned window holding now: it is released and deployed below
    page.get_by_label("Window start").fill((now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("Window end").fill((now + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("Rollback plan").fill("Revert this release from its page.")
    rick.shot("new-change-form")
    page.get_by_role("button", name="Create draft").click()
    page.wait_for_url(f"{base}/changes/*/")
    change = ChangeRequest.objects.get()
    assert page.url == f"{base}{change.get_absolute_url()}"
    expect(page.locator(".state-badge")).to_have_text("Draft")
    impact = page.locator(".impact-table")
    expect(impact.locator("tr", has_text="production/web1/nginx").locator("[data-label=Deploy]")).to_have_text("deploy")
    common = impact.locator("tr").filter(has=page.get_by_role("link", name="production/_common", exact=True))
    expect(common).to_contain_text("review only")  # the README of its tls/ folder: reviewed, not deployed
    expect(page.locator(".change-meta")).to_contain_text("production")
    expect(page.locator(".change-meta")).to_contain_text("2 needed")
    # the change's own diff is the TLS hardening; the hotfix exists only on the machine
    diff = page.locator(".change-diff")
    expect(diff).to_contain_text(TLS_LINE)
    expect(diff).not_to_contain_text("64m")
    expect(diff).not_to_contain_text("INC-2026-118")
    rick.shot("draft")

    # --- its dry run reports the hotfix as a conflict -------------------------------------------------
    known = set(Job.objects.values_list("pk", flat=True))
    page.locator("#dry-runs").get_by_role("button", name="Dry run").click()
    dry = _new_job(rick, known, expect)
    web1 = page.locator('section.machine-plan[data-machine="production/web1"]')
    expect(page.locator("section.machine-plan")).to_have_count(1)  # the README of _common/tls is not deployed
    expect(web1).to_have_attribute("data-status", "planned")
    expect(web1.locator("[data-conflicts]")).to_have_text("1 conflict(s)")
    expect(web1.locator('[data-origin-group="conflict"]')).to_contain_text("edited by hand")
    expect(web1.locator('[data-origin-group="conflict"]')).to_contain_text("to keep a hand edit, commit it")
    nginx = web1.locator(f'.plan-item[data-target="{NGINX}"]')
    expect(nginx).to_have_attribute("data-origin", "conflict")
    # main → live: the hand edit; live → declared: what deploying would do, the hotfix undone
    expect(nginx.locator("[data-base-diff] .gi").filter(has_text="64m")).to_have_text(f"+    {HOTFIX}")
    live_to_declared = nginx.locator(".diff-body:not([data-base-diff])")
    expect(live_to_declared.locator(".gd").filter(has_text="64m")).to_have_text(f"-    {HOTFIX}")
    expect(live_to_declared.locator(".gi").filter(has_text="10m")).to_have_text(f"+    {DECLARED_BODY_SIZE}")
    expect(live_to_declared.locator(".gi").filter(has_text="ssl_protocols")).to_have_text(f"+    {TLS_LINE}")
    # the mode drift of shopfront.service is not the change's business: left as it is
    drift = web1.locator('details[data-origin-group="drift"]')
    expect(drift.locator('.plan-item[data-target="/etc/systemd/system/shopfront.service"]')).to_have_count(1)
    drifted = drift.locator(".plan-item")
    assert sorted(drifted.nth(i).get_attribute("data-target") for i in range(drifted.count())) == [
        "/etc/shopfront/config.yaml", "/etc/systemd/system/shopfront.service"]  # a group, a mode
    rick.shot("dry-run-conflict")

    page.locator(".breadcrumb").get_by_role("link", name=change.reference).click()
    page.get_by_role("button", name="Submit for approval").click()
    page.wait_for_load_state()
    expect(page.locator(".state-badge")).to_have_text("Submitted")
    rick.shot("submitted")
    rick.logout()

    # --- production needs two approvals ------------------------------------------------------------
    _approve(browser, base, approver, change, expect, step="first-approval")
    change.refresh_from_db()
    assert change.state == ChangeRequest.State.SUBMITTED
    _approve(browser, base, second_approver, change, expect, step="second-approval")
    change.refresh_from_db()
    assert change.state == ChangeRequest.State.APPROVED

    # --- the requester schedules it in a window around now --------------------------------------------
    rick = Session(browser, base, "requester", prefix="release")
    rick.login(requester.username)
    page = rick.page
    page.goto(f"{base}{change.get_absolute_url()}")
    schedule = page.locator("form.schedule-form")
    schedule.get_by_label("Start").fill((now - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M"))
    schedule.get_by_label("End").fill((now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
    schedule.get_by_role("button", name="Schedule").click()
    page.wait_for_load_state()
    expect(page.locator(".state-badge")).to_have_text("Scheduled")
    rick.shot("scheduled")
    rick.logout()

    # --- staff release it, plan the release and deploy it, overwriting the hand edit ------------------
    sam = Session(browser, base, "staff", prefix="release")
    sam.login(staff.username)
    page = sam.page
    page.goto(f"{base}{change.get_absolute_url()}")
    expect(page.locator(".release-window-problem")).to_have_count(0)
    page.get_by_role("button", name="Implement: release to main").click()
    page.locator(".state-badge.state-implemented").wait_for()
    change.refresh_from_db()
    assert change.merged_sha == _origin_ref(origin, "refs/heads/main") != main_before
    release = page.locator("#dry-runs")
    expect(release.locator("#dry-runs-title")).to_have_text("Release")
    # a fast-forward: the release is the head the dry run above looked at, so that plan is offered
    assert change.merged_sha == change.head_sha
    expect(release.locator("[data-release]")).to_contain_text(f"Plan {dry.pk}: 0 change(s), 1 conflict(s)")
    assert web1_nginx.read_text().count(HOTFIX) == 1  # releasing writes to Git only
    sam.shot("implemented")

    # staff plan again: the machines may have moved since the review
    known = set(Job.objects.values_list("pk", flat=True))
    release.get_by_role("button", name="Plan the release").click()
    plan = _new_job(sam, known, expect)
    assert (plan.kind, plan.revision) == (Job.Kind.DRY_RUN, change.merged_sha)
    expect(page.locator(f'section.machine-plan[data-machine="production/web1"] .plan-item[data-target="{NGINX}"]')
           ).to_have_attribute("data-origin", "conflict")
    sam.shot("release-plan")
    page.locator(".breadcrumb").get_by_role("link", name=change.reference).click()
    box = page.locator("[data-release]")
    expect(box).to_contain_text(f"Plan {plan.pk}")
    expect(box.locator('[data-origin-count="conflict"]')).to_have_text("1 conflict(s)")
    box.get_by_label("Overwrite the 1 conflicting hand edit(s)").check()
    sam.shot("deploy-confirm")
    known = set(Job.objects.values_list("pk", flat=True))
    box.get_by_role("button", name=f"Deploy plan {plan.pk}").click()
    deploy = _new_job(sam, known, expect)
    expect(page.locator("h1")).to_contain_text(f"Deploy {deploy.pk}")
    expect(page.locator("[data-job-progress]")).to_have_text("1 / 1 machine(s)")
    applied = page.locator('section.machine-plan[data-machine="production/web1"]')
    expect(applied).to_have_attribute("data-status", "applied")
    expect(applied.locator(f'.plan-item[data-target="{NGINX}"]')).to_contain_text("written")
    expect(page.get_by_text("as confirmed, the conflicting hand edits")).to_be_visible()
    # nginx reloads; shopfront is not restarted for its drift (its files are not written)
    expect(applied.locator("[data-reload-results] code")).to_have_text(["nginx -t", "systemctl reload nginx"])
    sam.shot("deployed")

    # the machine holds the release; the hotfix is gone, kept in the deploy's backup; drift untouched
    assert web1_nginx.read_text() == hardened
    assert oct(shopfront.stat().st_mode & 0o777) == "0o600"
    backups = list((demo.parent / "deploy-backups" / str(deploy.pk)).rglob("*"))
    assert any(f.is_file() and HOTFIX in f.read_text(errors="replace") for f in backups)

    # --- the change request: verification passed; staff verify it ----------------------------------------
    page.locator(".breadcrumb").get_by_role("link", name=change.reference).click()
    verification = page.locator("[data-verification]")
    expect(verification).to_have_attribute("data-verification", "passed")
    expect(verification).to_contain_text("every file the change touches is in sync")
    page.get_by_label("Verification note").fill("TLS 1.2 refused, OCSP stapled.")
    page.get_by_role("button", name="Verify", exact=True).click()
    page.wait_for_load_state()
    expect(page.locator(".state-badge")).to_have_text("Verified")
    sam.shot("verified")
    sam.logout()

    # --- the requester rolls it back with one revert CR ---------------------------------------------------
    rick = Session(browser, base, "requester", prefix="release")
    rick.login(requester.username)
    page = rick.page
    page.goto(f"{base}{change.get_absolute_url()}")
    revert_form = page.locator("form.revert-form")
    revert_form.get_by_label("Reason").fill("The payment provider still needs TLS 1.2.")
    revert_form.get_by_role("button", name="Revert this release").click()
    page.wait_for_url(re.compile(rf"^{re.escape(base)}/changes/\d+/$"))
    revert = ChangeRequest.objects.exclude(pk=change.pk).get()
    assert page.url == f"{base}{revert.get_absolute_url()}"
    expect(page.locator("h1")).to_contain_text(f"Revert {change.reference}")
    expect(page.locator(".state-badge")).to_have_text("Draft")
    expect(page.locator(".reverts-link").get_by_role("link", name=change.reference)).to_have_attribute(
        "href", change.get_absolute_url())
    # the revert's diff puts back what main had: TLS 1.2 allowed again
    expect(page.locator(".change-diff")).to_contain_text("ssl_protocols TLSv1.2 TLSv1.3;")
    rick.shot("revert-draft")
    page.locator(".reverts-link").get_by_role("link", name=change.reference).click()
    expect(page.locator(".reverted-by-link").get_by_role("link", name=revert.reference)).to_have_attribute(
        "href", revert.get_absolute_url())
    rick.shot("reverted-by")
    rick.context.close()

    # --- the record ----------------------------------------------------------------------------------------
    revert.refresh_from_db()
    change.refresh_from_db()
    assert (change.state, revert.reverts_id, revert.state) == (ChangeRequest.State.VERIFIED, change.pk, "draft")
    assert change.verification["state"] == "passed" and not change.verification["findings"]
    assert _origin_ref(origin, f"refs/heads/{revert.branch}")
    assert list(Job.objects.order_by("pk").values_list("kind", "state", "revision", "requested_by__username")) == [
        ("dry-run", "succeeded", change.head_sha, requester.username),
        ("dry-run", "succeeded", change.merged_sha, staff.username),
        ("deploy", "succeeded", change.merged_sha, staff.username),
    ]
    assert deploy.plan_job_id == plan.pk and Job.objects.get(pk=deploy.pk).confirm_conflicts
    assert list(MachinePlan.objects.filter(job=deploy).values_list("machine_path", "status")) == [
        ("production/web1", "applied")]
    events = list(ChangeEvent.objects.filter(change=change).order_by("pk").values_list("action", "actor__username"))
    assert events == [
        ("created", requester.username),
        ("dry-run-started", requester.username),
        ("submitted", requester.username),
        ("vote-approve", approver.username),
        ("vote-approve", second_approver.username),
        ("approved", second_approver.username),
        ("scheduled", requester.username),
        ("merged", staff.username),
        ("dry-run-started", staff.username),
        ("deploy-started", staff.username),
        ("deploy-machine", None),
        ("deploy-finished", None),
        ("audit-started", None),
        ("verification-passed", None),
        ("verified", staff.username),
        ("revert-opened", requester.username),
    ], events
    deploy_started = ChangeEvent.objects.get(change=change, action="deploy-started")
    assert deploy_started.data == {"job": deploy.pk, "plan": plan.pk, "confirm_conflicts": True}
    assert dry.revision == change.head_sha
