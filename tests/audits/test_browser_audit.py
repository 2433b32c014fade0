"""The audit flow in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright), the way a
newcomer walks through it in the demo: staff reads the monthly schedule and starts a full audit from
/audits/ and reads its page (compliance, every machine's status and findings, the manual checklist); a
content diff is shown, a secret's never; a requester adopts the live nginx.conf into a change request and
records a discrepancy on the machine configured by hand; an approver acknowledges the mode drift; a
viewer reads the home page's status accounting and sees no button. The machines are never written to.

Celery runs eagerly: the audit runs on commit inside the request that starts it, so its page shows it
finished. Screenshots of every step: ``test-artifacts/screenshots/audit-*.png`` (git-ignored).
"""

from __future__ import annotations

import re
import subprocess

import pytest

from audits.models import AuditRun, Finding, MachineStatus, ManualCheck
from changes.models import ChangeRequest
from tests.changes.browser import Session
from tests.fixtures.dryrun_repo import snapshot_tree

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NGINX = "/etc/nginx/nginx.conf"
TOKEN = "/etc/app/secrets/token"
STATUSES = {
    "prod/bad1": "drifted", "prod/broken": "error", "prod/db1": "manual", "prod/ssh1": "unreachable",
    "prod/web1": "drifted", "prod/web2": "drifted", "test/t1": "compliant",
}
WEB1_FINDINGS = {("/etc/app/app.conf", "mode"), (TOKEN, "content"), (TOKEN, "mode"), (NGINX, "content"),
                 (NGINX, "mode")}
WEB2_FINDINGS = {("/etc/dir.conf", "unreadable"), ("/etc/missing.conf", "missing"), ("/etc/owned.conf", "owner")}


def _machines(page) -> dict[str, str]:
    sections = page.locator("section.machine-result")
    return {sections.nth(i).get_attribute("data-machine"): sections.nth(i).get_attribute("data-status")
            for i in range(sections.count())}


def _findings(section) -> set[tuple[str, str]]:
    items = section.locator("li.finding")
    return {(items.nth(i).get_attribute("data-target"), items.nth(i).get_attribute("data-kind"))
            for i in range(items.count())}


def _finding_link(page, machine: str, target: str, kind: str):
    return page.locator(f'section.machine-result[data-machine="{machine}"] '
                        f'li.finding[data-kind="{kind}"][data-target="{target}"] a').first


def test_audit_flow_from_start_to_status_accounting(browser, live_server, audit_env, staff, requester,  # noqa: F811
                                                    approver, viewer):
    from playwright.sync_api import expect  # after the browser fixture: it skips/fails without Playwright

    base = live_server.url
    before = snapshot_tree(audit_env["machines"])

    # --- 1. staff reads the schedule and starts a full audit ----------------------------------------------
    sam = Session(browser, base, "staff", prefix="audit")
    sam.login(staff.username)
    page = sam.page
    page.goto(f"{base}/audits/")
    expect(page.locator("#audit-schedule")).to_contain_text("A full audit runs at 02:00, on day 1 of the month")
    expect(page.locator("#audit-schedule code")).to_have_text("0 2 1 * *")
    expect(page.locator("[data-next-audit]")).to_have_text(re.compile(r"^\d{4}-\d\d-01 02:00 \S+$"))
    expect(page.get_by_text("No audit yet.")).to_be_visible()
    expect(page.get_by_label("Scope")).to_have_value("")
    sam.shot("audits-before")
    page.get_by_role("button", name="Start audit").click()
    page.wait_for_url(re.compile(rf"^{re.escape(base)}/audits/\d+/$"))
    run = AuditRun.objects.get()
    assert page.url == f"{base}{run.get_absolute_url()}"
    # Celery runs eagerly: the run is over when its page opens, and the page says so (not "queued").
    expect(page.locator("[data-audit-status]")).to_contain_text(f"Audit #{run.pk} of everything succeeded")
    expect(page.get_by_text("queued")).to_have_count(0)
    sam.shot("run")

    live = page.locator("#audit-live")
    expect(live).to_have_attribute("data-state", "succeeded")
    assert live.get_attribute("hx-get") is None  # finished: htmx polls no more
    expect(live.locator(".badge").first).to_have_text("succeeded")
    expect(page.locator("[data-audit-progress]")).to_have_text("7 / 7 machine(s)")
    expect(page.get_by_role("progressbar", name="Progress")).to_have_attribute("aria-valuenow", "100")
    expect(page.locator("h1")).to_contain_text(f"Audit #{run.pk} of everything")

    prod = page.locator('#audit-compliance tr[data-environment="prod"]')
    expect(prod.locator("td").nth(1)).to_have_text("22.2%")
    expect(prod.locator("td").nth(2)).to_have_text("2 / 9")
    expect(page.locator('#audit-compliance tr[data-environment="test"] td').nth(1)).to_have_text("100.0%")

    assert _machines(page) == STATUSES
    for machine, status in STATUSES.items():
        expect(page.locator(f'section.machine-result[data-machine="{machine}"] .card-header .badge')).to_have_text(status)
    web1 = page.locator('section.machine-result[data-machine="prod/web1"]')
    assert _findings(web1) == WEB1_FINDINGS
    expect(web1.locator(f'li.finding[data-kind="mode"][data-target="{NGINX}"]')).to_contain_text("0644 → 0640")
    expect(web1.locator(f'li.finding[data-kind="content"][data-target="{TOKEN}"]')).to_contain_text("secret: masked")
    expect(web1.locator(".card-header")).to_contain_text("40.0% (2 / 5 files)")
    web2 = page.locator('section.machine-result[data-machine="prod/web2"]')
    assert _findings(web2) == WEB2_FINDINGS
    ssh1 = page.locator('section.machine-result[data-machine="prod/ssh1"]')
    expect(ssh1.locator("pre")).to_contain_text("connection refused")
    assert _findings(ssh1) == set()
    db1 = page.locator('section.machine-result[data-machine="prod/db1"]')
    expect(db1.locator("pre")).to_have_text("configured by hand; documented only")
    expect(db1.locator(".card-header")).to_contain_text("n/a")
    expect(page.locator('section.machine-result[data-machine="prod/broken"] pre')).to_contain_text("telnet")
    t1 = page.locator('section.machine-result[data-machine="test/t1"]')
    expect(t1.locator(".card-header")).to_contain_text("100.0% (1 / 1 files)")
    assert _findings(t1) == set()
    checks = page.locator("#audit-checks li")
    expect(checks).to_have_count(1)
    expect(checks.first).to_have_attribute("data-machine", "prod/db1")
    expect(checks.first).to_contain_text("prod/db1 open")
    assert "token-value" not in page.content()

    # --- 2. the content finding shows its diff; the secret's page shows nothing of it ---------------------
    content = run.findings.get(machine_path="prod/web1", target=NGINX, kind="content")
    _finding_link(page, "prod/web1", NGINX, "content").click()
    page.wait_for_url(f"{base}{content.get_absolute_url()}")
    expect(page.locator("h1")).to_have_text(f"{NGINX} on prod/web1")
    expect(page.locator("#finding-state .badge")).to_have_text("open")
    diff = page.locator(".diff-body")
    expect(diff.get_by_text("-worker_processes 1;")).to_be_visible()
    expect(diff.get_by_text("+worker_processes 2;")).to_be_visible()
    expect(page.get_by_text(content.source_path)).to_be_visible()
    sam.shot("finding-content")
    page.go_back()
    secret = run.findings.get(machine_path="prod/web1", target=TOKEN, kind="content")
    _finding_link(page, "prod/web1", TOKEN, "content").click()
    page.wait_for_url(f"{base}{secret.get_absolute_url()}")
    expect(page.get_by_text("A secret: its content and diff are never shown.")).to_be_visible()
    expect(page.locator(".diff-body")).to_have_count(0)
    assert "token-value" not in page.content()
    sam.shot("finding-secret")
    sam.logout()

    # --- 3. a requester adopts the live nginx.conf into a change request ----------------------------------
    rick = Session(browser, base, "requester", prefix="audit")
    rick.login(requester.username)
    page = rick.page
    page.goto(f"{base}{content.get_absolute_url()}")
    actions = page.locator("#finding-actions")
    expect(actions.get_by_role("button", name="Acknowledge")).to_have_count(0)  # approvers only
    expect(actions.get_by_role("button", name="Restore declared (CR)")).to_be_visible()
    rick.shot("finding-before-adopt")
    actions.get_by_role("button", name="Adopt live into a CR").click()
    page.wait_for_url(re.compile(rf"^{re.escape(base)}/changes/\d+/$"))
    change = ChangeRequest.objects.get()
    assert page.url == f"{base}{change.get_absolute_url()}"
    branch = f"audit/adopt-prod-web1-finding-{content.pk}"
    title = f"Adopt live content of {NGINX} on prod/web1"
    expect(page.get_by_text(f"Change request #{change.pk} opened for this finding.")).to_be_visible()
    expect(page.locator("h1")).to_contain_text(title)
    expect(page.locator(".change-meta dt:text-is('Branch') + dd")).to_have_text(branch)
    rick.shot("change")
    assert (change.branch, change.title, change.requester) == (branch, title, requester)
    content.refresh_from_db()
    assert (content.state, content.change_id, content.handled_by) == ("adopted", change.pk, requester)
    assert content.source_path == "prod/web1/nginx/files/etc/nginx/nginx.conf"
    adopted = subprocess.run(["git", "-C", str(audit_env["repo"].origin), "show", f"{branch}:{content.source_path}"],
                             check=True, capture_output=True, text=True).stdout
    assert adopted == "worker_processes 1;\n"
    main = subprocess.run(["git", "-C", str(audit_env["repo"].origin), "show", f"main:{content.source_path}"],
                          check=True, capture_output=True, text=True).stdout
    assert main == "worker_processes 2;\n"  # main untouched until the CR is released
    page.goto(f"{base}{content.get_absolute_url()}")
    expect(page.locator("#finding-state")).to_contain_text(f"adopted by {requester.username}")
    expect(page.get_by_role("link", name=f"{change.reference} {title}")).to_be_visible()
    expect(page.locator("#finding-actions")).to_have_count(0)  # handled: nothing more to do

    # --- 4. the requester records a discrepancy for the machine configured by hand ------------------------
    page.goto(f"{base}/audits/checks/")
    row = page.locator('tr[data-machine="prod/db1"]')
    expect(row).to_contain_text(f"#{run.pk}")
    row.get_by_label("Note").fill("VLAN 12 missing from the README")
    rick.shot("check-before")
    row.get_by_role("button", name="Discrepancy").click()  # posts, then back to the checklist
    expect(page.get_by_text("Check of prod/db1 recorded.")).to_be_visible()
    expect(page.get_by_text("No open manual check.")).to_be_visible()
    rick.shot("check-after")
    check = ManualCheck.objects.get()
    assert (check.run_id, check.machine_path, check.state, check.checked_by, check.note) == (
        run.pk, "prod/db1", "discrepancy", requester, "VLAN 12 missing from the README")
    assert check.checked_at is not None
    rick.logout()

    # --- 5. an approver acknowledges the mode drift of nginx.conf -----------------------------------------
    alice = Session(browser, base, "approver", prefix="audit")
    alice.login(approver.username)
    page = alice.page
    mode = run.findings.get(machine_path="prod/web1", target=NGINX, kind="mode")
    page.goto(f"{base}{run.get_absolute_url()}")
    _finding_link(page, "prod/web1", NGINX, "mode").click()
    page.wait_for_url(f"{base}{mode.get_absolute_url()}")
    expect(page.locator("dl")).to_contain_text("live 0644, declared 0640")
    page.get_by_label("Note (required to acknowledge)").fill("0644 is fine here: no secrets in nginx.conf")
    alice.shot("mode-before")
    page.get_by_role("button", name="Acknowledge").click()
    expect(page.get_by_text("Finding acknowledged.")).to_be_visible()
    assert page.url == f"{base}{mode.get_absolute_url()}"
    expect(page.locator("#finding-state")).to_contain_text(f"acknowledged by {approver.username}")
    expect(page.get_by_text("0644 is fine here: no secrets in nginx.conf")).to_be_visible()
    alice.shot("mode-after")
    mode.refresh_from_db()
    assert (mode.state, mode.handled_by, mode.note, mode.change_id) == (
        "acknowledged", approver, "0644 is fine here: no secrets in nginx.conf", None)
    assert mode.handled_at is not None
    alice.logout()

    # --- 6. a viewer reads the status accounting on the home page, and sees no button ---------------------
    open_findings = Finding.objects.filter(state="open").count()
    assert open_findings == 8  # 7 of drift and the discrepancy on prod/db1
    assert MachineStatus.objects.get(machine_path="prod/web1").open_findings == 3
    vera = Session(browser, base, "viewer", prefix="audit")
    vera.login(viewer.username)
    page = vera.page  # login lands on the home page
    card = page.locator("#status-accounting")
    expect(card.get_by_role("heading", name="Does everything still work?")).to_be_visible()
    expect(card.locator(".card-header")).to_contain_text(f"Last audit #{run.pk} of everything")
    expect(card.locator(".card-header")).to_contain_text("(succeeded)")
    totals = card.locator("#status-totals")
    expect(totals).to_contain_text("Compliance 30.0%")
    for text in ("3 drifted", "1 unreachable", "1 error", "8 open findings", "0 overdue manual checks", "1 open CR"):
        expect(totals.get_by_text(text, exact=True)).to_be_visible()
    prod_row = card.locator('tr[data-environment="prod"] td')
    expect(prod_row.nth(0)).to_have_text("prod")
    expect(prod_row.nth(1)).to_have_text("6")  # machines
    expect(prod_row.nth(2)).to_have_text("22.2%")
    expect(prod_row.nth(3)).to_have_text("3")  # drifted (the trend is the chart below the card)
    expect(prod_row.nth(4)).to_have_text("1")  # unreachable
    expect(prod_row.nth(5)).to_have_text("1")  # manual
    expect(prod_row.nth(6)).to_have_text("8")  # open findings
    expect(prod_row.nth(7)).to_have_text("0")  # overdue checks
    expect(page.locator("figure.compliance-chart svg.chart-svg").first).to_be_visible()
    expect(card.locator('tr[data-environment="test"] td').nth(2)).to_have_text("100.0%")
    vera.shot("home")

    page.goto(f"{base}/audits/")
    expect(page.locator("#audit-schedule code")).to_have_text("0 2 1 * *")
    expect(page.get_by_role("link", name=f"#{run.pk}")).to_be_visible()
    expect(page.get_by_role("button", name="Start audit")).to_have_count(0)
    expect(page.locator('[data-action="start-audit"]')).to_have_count(0)
    vera.shot("audits-no-button")
    other = run.findings.get(machine_path="prod/web1", target="/etc/app/app.conf", kind="mode")
    page.goto(f"{base}{other.get_absolute_url()}")
    expect(page.locator("#finding-state .badge")).to_have_text("open")
    expect(page.locator("#finding-actions")).to_have_count(0)
    expect(page.locator('button[name="action"]')).to_have_count(0)
    vera.shot("finding-no-button")
    vera.context.close()

    # --- 7. the machines untouched: byte for byte, mode and mtime -----------------------------------------
    run.refresh_from_db()
    assert (run.state, run.requested_by, run.scope, run.machines_done, run.machines_total) == (
        "succeeded", staff, "", 7, 7)
    assert snapshot_tree(audit_env["machines"]) == before
