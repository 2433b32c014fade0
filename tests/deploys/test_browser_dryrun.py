"""A dry run in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright): the requester
starts one from the change request's page with its button and reads the job page (state, progress, log,
the plan per machine with its diffs); the change request lists it for its current head; an approver
re-runs it; a viewer sees the runs but no button. The machines (local directories) are not touched.

Celery runs eagerly: the job runs on commit inside the request that starts it, so the job page shows it
finished. Screenshots of every step: ``test-artifacts/screenshots/dryrun-*.png`` (git-ignored).
"""

from __future__ import annotations

import re

import pytest

from changes.models import ChangeEvent
from deploys.models import Job
from tests.changes.browser import Session
from tests.fixtures.dryrun_repo import build_machines, build_repo, snapshot_tree

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# what build_repo's branch does to build_machines' live trees
PLAN_STATUSES = [("prod/bad1", "error"), ("prod/db1", "manual"), ("prod/web1", "planned")]
WEB1_ACTIONS = {
    "/etc/app/app.conf": "update",
    "/etc/app/secrets/token": "update",
    "/etc/nginx/nginx.conf": "update",
    "/etc/nginx/new.conf": "create",
    "/etc/nginx/old.conf": "delete",
    "/etc/nginx/same.conf": "unchanged",
}
LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d (\w+) (.*)$")


@pytest.fixture
def dry_env(work_repo, tmp_path, settings):
    """build_repo's repository on origin (web1 local, db1 manual, bad1 malformed; no SSH machine) and
    web1's drifted live tree under CMDB_LOCAL_ROOT_BASE."""
    machines = tmp_path / "live"
    machines.mkdir()
    build_machines(machines)
    settings.CMDB_LOCAL_ROOT_BASE = machines
    branch = build_repo(work_repo)
    return {"repo": work_repo, "branch": branch, "machines": machines}


def _log_messages(page) -> list[str]:
    lines = page.locator(".job-log").inner_text().strip().splitlines()
    parsed = [LOG_LINE.match(line) for line in lines]
    assert all(parsed), lines
    return [m.group(2) for m in parsed]


def _start_from_change_page(session: Session, expect) -> Job:
    """Click the CR page's dry-run button; the browser lands on the new job's page."""
    page, base = session.page, session.base_url
    known = set(Job.objects.values_list("pk", flat=True))
    page.locator("#dry-runs").get_by_role("button", name="Dry run").click()
    page.wait_for_url(re.compile(rf"^{re.escape(base)}/jobs/\d+/$"))
    job = Job.objects.exclude(pk__in=known).get()
    assert page.url == f"{base}{job.get_absolute_url()}"
    expect(page.locator("#job-live")).to_have_attribute("data-state", "succeeded")
    return job


def _dry_run_list(page) -> list[tuple[str, str]]:
    items = page.locator("#dry-runs li[data-job]")
    return [(items.nth(i).get_attribute("data-job"), items.nth(i).get_attribute("data-revision"))
            for i in range(items.count())]


def test_dry_run_from_the_change_request_page(browser, live_server, dry_env, make_change, requester, approver,
                                              viewer):
    from playwright.sync_api import expect  # after the browser fixture: it skips/fails without Playwright

    base = live_server.url
    branch = dry_env["branch"]
    change = make_change(branch, title="Four nginx workers on web1")
    head = change.head_sha
    assert head
    before = snapshot_tree(dry_env["machines"])

    # --- the requester starts a dry run with the button on the change request's page -------------------
    rick = Session(browser, base, "requester", prefix="dryrun")
    rick.login(requester.username)
    page = rick.page
    page.goto(f"{base}{change.get_absolute_url()}")
    runs = page.locator("#dry-runs")
    expect(runs.get_by_text("No dry run yet.")).to_be_visible()
    rick.shot("change-before")
    job = _start_from_change_page(rick, expect)
    rick.shot("job")

    # state, progress, who and what; finished, so htmx polls no more
    live = page.locator("#job-live")
    assert live.get_attribute("hx-get") is None and live.get_attribute("hx-trigger") is None
    expect(page.locator("[data-job-state]")).to_have_text("succeeded")
    expect(page.locator("[data-job-progress]")).to_have_text("3 / 3 machine(s)")
    expect(page.get_by_role("progressbar", name="Progress")).to_have_attribute("aria-valuenow", "100")
    expect(page.locator("h1")).to_contain_text(f"Dry run {job.pk} of {branch} ({head[:10]})")
    expect(page.get_by_text("Requested by")).to_contain_text(requester.username)

    # the log, line for line as stored
    messages = _log_messages(page)
    assert messages == list(job.log_lines.values_list("message", flat=True))
    assert messages[0] == f"Dry run of {branch} ({head[:10]}) on 3 machine(s) queued by {requester.username}."
    assert messages[1] == "Started."
    assert "prod/db1: manual (configured by hand; documented only)" in messages
    assert any(m.startswith("prod/bad1: error (prod/bad1/manifest.toml:4:") for m in messages), messages
    assert "Looking at 1 machine(s): prod/web1." in messages
    assert "prod/web1: planned (1 create, 3 update, 1 delete)" in messages
    assert messages[-1] == "Finished."

    # the plan, one card per machine with its status
    plans = page.locator("section.machine-plan")
    assert [(plans.nth(i).get_attribute("data-machine"), plans.nth(i).get_attribute("data-status"))
            for i in range(plans.count())] == PLAN_STATUSES
    for machine, status in PLAN_STATUSES:
        card = page.locator(f'section.machine-plan[data-machine="{machine}"]')
        expect(card.locator(".card-header")).to_contain_text(machine)
        expect(card.locator(".card-header .badge")).to_have_text(status)
    bad1 = page.locator('section.machine-plan[data-machine="prod/bad1"]')
    expect(bad1.locator(".card-body pre")).to_contain_text("prod/bad1/manifest.toml:4:")
    expect(bad1.locator(".card-body pre")).to_contain_text("port")
    db1 = page.locator('section.machine-plan[data-machine="prod/db1"]')
    expect(db1.locator(".card-body pre")).to_have_text("configured by hand; documented only")
    expect(db1.locator('.plan-item[data-target="/etc/postgresql/postgresql.conf"]')).to_have_attribute(
        "data-action", "documented")

    web1 = page.locator('section.machine-plan[data-machine="prod/web1"]')
    expect(web1.locator(".card-header")).to_contain_text("1 create · 3 update · 1 delete · 1 unchanged")
    items = web1.locator(".plan-item")
    assert {items.nth(i).get_attribute("data-target"): items.nth(i).get_attribute("data-action")
            for i in range(items.count())} == WEB1_ACTIONS
    nginx = web1.locator('.plan-item[data-target="/etc/nginx/nginx.conf"]')
    expect(nginx.locator(".badge").first).to_have_text("update")
    expect(nginx).to_contain_text("(content, mode)")
    expect(nginx).to_contain_text("mode 0644 → 0640")
    # main declares 2 workers, the machine was edited to 1 by hand: a conflict, shown first, three-way
    expect(nginx).to_have_attribute("data-origin", "conflict")
    expect(web1.locator(".plan-item").first).to_have_attribute("data-origin", "conflict")
    expect(nginx.locator("[data-base-diff] .gi").last).to_have_text("+worker_processes 1;")
    expect(web1.locator("[data-conflicts]")).to_have_text("2 conflict(s)")
    drift = web1.locator('details[data-origin-group="drift"]')
    expect(drift.locator('.plan-item[data-target="/etc/app/app.conf"]')).to_be_hidden()  # collapsed by default
    diff = nginx.locator(".diff-body:not([data-base-diff])")
    expect(diff).to_be_visible()
    # the unified diff, line for line (Pygments: .gd deleted, .gi inserted)
    assert diff.inner_text().strip().splitlines() == [
        "--- a/etc/nginx/nginx.conf (live)", "+++ b/etc/nginx/nginx.conf (declared)", "@@ -1 +1 @@",
        "-worker_processes 1;", "+worker_processes 4;",
    ], diff.inner_text()
    expect(diff.locator(".gd")).to_have_text(["--- a/etc/nginx/nginx.conf (live)", "-worker_processes 1;"])
    expect(diff.locator(".gi")).to_have_text(["+++ b/etc/nginx/nginx.conf (declared)", "+worker_processes 4;"])
    expect(diff.get_by_text("-worker_processes 1;")).to_be_visible()
    expect(diff.get_by_text("+worker_processes 4;")).to_be_visible()
    old = web1.locator('.plan-item[data-target="/etc/nginx/old.conf"]')
    expect(old).to_be_visible()
    expect(old.locator(".badge").first).to_have_text("delete")
    expect(old).to_contain_text("removed from the repository; live content not shown")
    expect(old.locator(".diff-body")).to_have_count(0)
    new = web1.locator('.plan-item[data-target="/etc/nginx/new.conf"]')
    expect(new.locator(".badge").first).to_have_text("create")
    expect(new.locator(".diff-body .gi").last).to_have_text("+server { listen 8080; }")
    token = web1.locator('.plan-item[data-target="/etc/app/secrets/token"]')
    expect(token).to_contain_text("secret: masked")
    assert "token-value" not in page.content()
    expect(web1).to_contain_text("Reload: systemctl restart app; nginx -t; systemctl reload nginx")

    # --- back on the change request: the last dry run, for the current head -----------------------------
    page.locator(".breadcrumb").get_by_role("link", name=change.reference).click()
    page.wait_for_url(f"{base}{change.get_absolute_url()}")
    assert _dry_run_list(page) == [(str(job.pk), head)]
    last = runs.locator(f'li[data-job="{job.pk}"]')
    expect(last.get_by_role("link", name=f"Dry run {job.pk}")).to_have_attribute("href", job.get_absolute_url())
    expect(last.locator(".badge")).to_have_text("succeeded")
    expect(last).to_contain_text(head[:10])
    expect(last).to_contain_text(f"3/3 · {requester.username}")
    expect(last).not_to_contain_text("older head")
    rick.shot("change-after")
    rick.logout()

    # --- an approver re-runs it from the same page ------------------------------------------------------
    alice = Session(browser, base, "approver", prefix="dryrun")
    alice.login(approver.username)
    page = alice.page
    page.goto(f"{base}{change.get_absolute_url()}")
    runs = page.locator("#dry-runs")
    alice.shot("change-before-rerun")
    rerun = _start_from_change_page(alice, expect)
    expect(page.locator("[data-job-state]")).to_have_text("succeeded")
    expect(page.locator("[data-job-progress]")).to_have_text("3 / 3 machine(s)")
    expect(page.get_by_text("Requested by")).to_contain_text(approver.username)
    expect(page.locator('section.machine-plan[data-machine="prod/web1"] .plan-item[data-target="/etc/nginx/nginx.conf"]'
                        ' .diff-body').get_by_text("+worker_processes 4;")).to_be_visible()
    alice.shot("rerun-job")
    page.goto(f"{base}{change.get_absolute_url()}")
    assert _dry_run_list(page) == [(str(rerun.pk), head), (str(job.pk), head)]  # newest first
    expect(runs.locator(f'li[data-job="{rerun.pk}"]')).to_contain_text(f"3/3 · {approver.username}")
    expect(runs).not_to_contain_text("older head")
    alice.shot("change-after-rerun")
    alice.logout()

    # --- a viewer sees the dry runs, not the button -----------------------------------------------------
    vera = Session(browser, base, "viewer", prefix="dryrun")
    vera.login(viewer.username)
    page = vera.page
    page.goto(f"{base}{change.get_absolute_url()}")
    runs = page.locator("#dry-runs")
    expect(runs).to_be_visible()
    assert _dry_run_list(page) == [(str(rerun.pk), head), (str(job.pk), head)]
    expect(runs.get_by_role("button", name="Dry run")).to_have_count(0)
    expect(page.locator('[data-action="dry-run"]')).to_have_count(0)
    vera.shot("change-no-button")
    vera.context.close()

    # --- the database, and the machines untouched ---------------------------------------------------------
    assert list(Job.objects.order_by("pk").values_list(
        "pk", "change", "requested_by__username", "state", "revision", "for_head_sha", "rev_label",
        "machines_done", "machines_total")) == [
        (job.pk, change.pk, requester.username, "succeeded", head, head, branch, 3, 3),
        (rerun.pk, change.pk, approver.username, "succeeded", head, head, branch, 3, 3),
    ]
    for j in (job, rerun):
        assert sorted(j.plans.values_list("machine_path", "status")) == PLAN_STATUSES
    assert list(ChangeEvent.objects.filter(change=change, action="dry-run-started").order_by("pk")
                .values_list("actor__username", "data__job")) == [(requester.username, job.pk),
                                                                   (approver.username, rerun.pk)]
    assert snapshot_tree(dry_env["machines"]) == before  # byte for byte, mode and mtime: nothing written
