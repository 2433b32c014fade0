"""The status verdict (portal/status.py): its rules, each reason with its link, the API, who reads it,
and what it costs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from audits.models import AuditRun, Finding, MachineResult, MachineStatus, ManualCheck
from changes.models import ChangeEvent, ChangeRequest
from cmdb.models import SyncRun
from deploys.models import Job
from portal.status import status_verdict


def audit(*, ago: timedelta = timedelta(0), machines: dict[str, str] | None = None, scope: str = "") -> AuditRun:
    """A finished audit ``ago`` ago with one result (and the machine's status row) per machine."""
    at = timezone.now() - ago
    run = AuditRun.objects.create(scope=scope, state=AuditRun.State.SUCCEEDED, created_at=at, finished_at=at,
                                  machines=sorted(machines or {}), machines_total=len(machines or {}))
    for path, status in (machines or {}).items():
        result = MachineResult.objects.create(run=run, machine_path=path, environment=path.split("/")[0],
                                              status=status, files_total=2,
                                              files_in_sync=2 if status == "compliant" else 1)
        MachineStatus.objects.update_or_create(machine_path=path, defaults={
            "environment": result.environment, "last_result": result, "last_audit_at": at, "status": status})
    return run


def finding(run: AuditRun, machine: str, target: str = "/etc/x.conf") -> Finding:
    result = run.results.get(machine_path=machine)
    made = Finding.objects.create(run=run, result=result, machine_path=machine, environment=machine.split("/")[0],
                                  target=target, kind=Finding.Kind.CONTENT, fingerprint=f"{machine}{target}")
    MachineStatus.objects.filter(machine_path=machine).update(open_findings=1)
    return made


def released(requester, *, machines=("production/web1",), state=ChangeRequest.State.IMPLEMENTED,
             verification=None, ago=timedelta(days=1)) -> ChangeRequest:
    """A change request released ``ago`` ago, impacting ``machines``."""
    cis = [{"path": f"{m}/nginx", "environment": m.split("/")[0], "machine_path": m, "deploy": True} for m in machines]
    change = ChangeRequest.objects.create(title="Release", requester=requester, branch="change/x", state=state,
                                          impact={"cis": cis}, merged_sha="a" * 40, verification=verification or {})
    ChangeEvent.objects.create(change=change, action="merged", at=timezone.now() - ago)
    return change


def deploy(change: ChangeRequest, state: str, *, kind: str = Job.Kind.DEPLOY, ago: timedelta = timedelta(hours=1)) -> Job:
    return Job.objects.create(kind=kind, change=change, revision="a" * 40, requested_by=change.requester, state=state,
                              created_at=timezone.now() - ago)


def reasons(status: dict, environment: str | None = "*") -> dict[str, dict]:
    return {r["code"]: r for r in status["reasons"] if environment == "*" or r["environment"] == environment}


def env(status: dict, name: str) -> dict:
    return next(e for e in status["environments"] if e["environment"] == name)


@pytest.fixture
def healthy(synced, settings):
    """Synced now, a full audit just finished with every machine compliant, deploys on in production."""
    settings.CMDB_DEPLOY_ENVIRONMENTS = ["production"]
    return audit(machines={"production/web1": "compliant", "production/db1": "compliant",
                           "test/web-test1": "compliant"})


def test_everything_in_order_is_all_good_overall_and_per_environment(healthy):
    status = status_verdict()
    assert status["verdict"] == "ok" and status["verdict_label"] == "All good" and status["reasons"] == []
    assert {e["environment"]: e["verdict"] for e in status["environments"]} == {"production": "ok", "test": "ok"}


def test_unreachable_or_error_machines_fail_their_environment_and_drift_needs_attention(healthy):
    run = audit(machines={"production/web1": "unreachable", "production/db1": "error", "test/web-test1": "drifted"})
    finding(run, "test/web-test1")
    status = status_verdict()
    prod, test = env(status, "production"), env(status, "test")
    assert prod["verdict"] == "failing" and test["verdict"] == "attention" and status["verdict"] == "failing"
    assert {r["code"]: r["text"] for r in prod["reasons"]} == {"machines-unreachable": "1 machine unreachable",
                                                               "machines-error": "1 machine in error"}
    assert prod["reasons"][0]["url"] == "/audits/machines/?environment=production&status=unreachable"
    [drift] = test["reasons"]
    assert (drift["code"], drift["severity"], drift["count"]) == ("open-findings", "attention", 1)
    assert drift["url"] == "/audits/findings/?state=open&environment=test"
    assert status["reasons"][0]["severity"] == "failing"  # worst first


def test_acknowledged_drift_is_no_longer_a_reason(healthy, approver):
    from audits import services

    run = audit(machines={"test/web-test1": "drifted"})
    services.finding_acknowledge(finding=finding(run, "test/web-test1"), acting_user=approver, note="known")
    assert env(status_verdict(), "test")["verdict"] == "ok"


def test_overdue_manual_checks_need_attention_with_a_link_to_them(healthy, viewer, client_for):
    run = audit(machines={"production/db1": "manual"})
    ManualCheck.objects.create(run=run, machine_path="production/db1", environment="production",
                               due=timezone.localdate() - timedelta(days=1))
    ManualCheck.objects.create(run=run, machine_path="test/web-test1", environment="test",
                               due=timezone.localdate() - timedelta(days=1))
    reason = reasons(status_verdict(), "production")["checks-overdue"]
    assert (reason["severity"], reason["text"]) == ("attention", "1 manual check overdue")
    page = client_for(viewer).get(reason["url"]).content.decode()
    assert "production/db1" in page and "test/web-test1" not in page
    assert client_for(viewer).get("/audits/checks/?overdue=1&environment=%00").status_code == 200


def test_a_release_not_deployed_where_the_portal_deploys_needs_attention_after_the_grace(healthy, requester, settings):
    settings.CMDB_STATUS_RELEASE_GRACE = 3600
    recent = released(requester, ago=timedelta(minutes=5))
    assert status_verdict()["verdict"] == "ok"  # the deploy is on its way
    old = released(requester, ago=timedelta(hours=2))
    reason = reasons(status_verdict(), "production")["not-deployed"]
    assert (reason["severity"], reason["count"], reason["url"]) == ("attention", 1, old.get_absolute_url())
    assert "test" not in {r["environment"] for r in status_verdict()["reasons"]}
    settings.CMDB_STATUS_RELEASE_GRACE = 60
    reason = reasons(status_verdict(), "production")["not-deployed"]
    assert reason["count"] == 2 and reason["url"] == "/changes/?state=implemented&environment=production"
    deploy(old, Job.State.SUCCEEDED)
    deploy(recent, Job.State.RUNNING)
    assert "not-deployed" not in reasons(status_verdict())


def test_a_release_where_the_portal_does_not_deploy_needs_only_its_verification(healthy, requester):
    released(requester, machines=("test/web-test1",), verification={"state": "passed"})
    assert status_verdict()["verdict"] == "ok"
    released(requester, machines=("test/web-test1",))  # released before verifications existed
    assert reasons(status_verdict(), "test")["not-verified"]["severity"] == "attention"


@pytest.mark.parametrize("state", ["failed", "halted", "interrupted"])
def test_a_broken_deploy_fails_until_a_later_deploy_or_restore_succeeds(healthy, requester, state):
    change = released(requester, verification={"state": "passed"})
    job = deploy(change, state, ago=timedelta(hours=2))
    reason = reasons(status_verdict(), "production")[f"deploy-{state}"]
    assert (reason["severity"], reason["text"], reason["url"]) == ("failing", f"1 deploy {state}", job.get_absolute_url())
    assert env(status_verdict(), "production")["verdict"] == "failing"
    deploy(change, Job.State.SUCCEEDED, kind=Job.Kind.RESTORE, ago=timedelta(hours=1))
    assert status_verdict()["verdict"] == "ok"


def test_a_broken_deploy_of_a_closed_change_request_is_history(healthy, requester):
    change = released(requester, state=ChangeRequest.State.CLOSED)
    deploy(change, Job.State.FAILED)
    assert status_verdict()["verdict"] == "ok"


def test_verification_failed_fails_and_pending_too_long_needs_attention(healthy, requester, settings):
    settings.CMDB_STATUS_RELEASE_GRACE = 3600
    failed = released(requester, verification={"state": "failed"})
    deploy(failed, Job.State.SUCCEEDED)
    reason = reasons(status_verdict(), "production")["verification-failed"]
    assert (reason["severity"], reason["url"]) == ("failing", failed.get_absolute_url())
    ChangeRequest.objects.filter(pk=failed.pk).update(state=ChangeRequest.State.CLOSED)
    waiting = released(requester, verification={"state": "pending", "at": timezone.now().isoformat()})
    deploy(waiting, Job.State.SUCCEEDED)
    assert status_verdict()["verdict"] == "ok"
    waiting.verification["at"] = (timezone.now() - timedelta(hours=2)).isoformat()
    waiting.save()
    assert reasons(status_verdict(), "production")["verification-pending"]["severity"] == "attention"


def test_a_verified_release_never_deployed_where_the_portal_deploys_needs_attention(healthy, requester):
    released(requester, state=ChangeRequest.State.VERIFIED, verification={"state": "failed"})
    assert list(reasons(status_verdict())) == ["not-deployed"]


def test_unauthorized_commits_need_attention_for_the_whole_portal(healthy, direct_push, synced):
    direct_push(synced)
    status = status_verdict()
    [reason] = status["reasons"]
    assert (reason["code"], reason["environment"], reason["text"]) == ("unauthorized-commits", None,
                                                                       "1 unauthorized commit on main")
    assert reason["url"] == reverse("changes:unauthorized_list") and status["global_reasons"] == [reason]
    assert status["verdict"] == "attention" and env(status, "production")["verdict"] == "ok"


def test_a_failed_sync_fails_and_a_stale_one_needs_attention(healthy, settings):
    SyncRun.objects.create(trigger="test", status=SyncRun.Status.FAILED)
    assert reasons(status_verdict(), None)["sync-failed"]["severity"] == "failing"
    assert status_verdict()["verdict"] == "failing"
    SyncRun.objects.all().delete()
    SyncRun.objects.create(trigger="test", status=SyncRun.Status.SUCCEEDED,
                           started_at=timezone.now() - timedelta(seconds=settings.CMDB_STATUS_SYNC_STALE + 60))
    reason = reasons(status_verdict(), None)["sync-stale"]
    assert reason["severity"] == "attention" and reason["url"] == reverse("cmdb:syncrun_list")


def test_no_full_audit_by_the_schedule_plus_grace_needs_attention(synced, settings):
    settings.CMDB_AUDIT_CRONTAB = {"minute": "0", "hour": "2", "day_of_month": "1", "month_of_year": "*",
                                   "day_of_week": "*"}
    settings.CMDB_STATUS_AUDIT_GRACE = 86400
    assert reasons(status_verdict(), None)["audit-stale"]["text"] == "No full audit has finished yet"
    audit(ago=timedelta(days=20))
    assert "audit-stale" not in reasons(status_verdict())  # the next one is due at most 11 days from now
    audit(scope="production", ago=timedelta(0))  # only a full audit counts
    AuditRun.objects.filter(scope="").update(created_at=timezone.now() - timedelta(days=70))
    reason = reasons(status_verdict(), None)["audit-stale"]
    assert reason["severity"] == "attention" and reason["url"] == reverse("audits:audit_list")
    assert reason["text"].startswith("No full audit since")


def test_every_reason_links_to_a_page_viewers_may_open(healthy, requester, viewer, client_for, direct_push, synced):
    run = audit(machines={"production/web1": "unreachable", "production/db1": "error", "test/web-test1": "drifted"})
    finding(run, "test/web-test1")
    ManualCheck.objects.create(run=run, machine_path="production/db1", environment="production",
                               due=timezone.localdate())
    deploy(released(requester), Job.State.HALTED)
    released(requester, verification={"state": "failed"})
    direct_push(synced)
    status = status_verdict()
    assert len(status["reasons"]) >= 7
    client = client_for(viewer)
    for reason in status["reasons"]:
        assert client.get(reason["url"]).status_code == 200, reason


def test_api_status_carries_the_verdict_and_keeps_the_old_fields(healthy, viewer, client_for):
    audit(machines={"test/web-test1": "unreachable"})
    response = client_for(viewer).get("/api/status/")
    assert response.status_code == 200
    body = response.json()
    assert body["verdict"] == "failing" and body["verdict_label"] == "Failing"
    assert {"environments", "total", "open_changes", "unauthorized_commits", "last_audit", "last_sync",
            "next_audit_at"} <= set(body)
    test = next(e for e in body["environments"] if e["environment"] == "test")
    assert test["verdict"] == "failing" and test["statuses"] == {"unreachable": 1}
    assert test["reasons"] == [{"code": "machines-unreachable", "severity": "failing", "environment": "test",
                                "count": 1, "text": "1 machine unreachable",
                                "url": "/audits/machines/?environment=test&status=unreachable"}]
    assert body["reasons"] == test["reasons"]
    assert next(e for e in body["environments"] if e["environment"] == "production")["verdict"] == "ok"


def test_api_status_is_in_the_openapi_schema(viewer, client_for, db):
    schema = client_for(viewer).get("/api/schema/?format=json").json()
    ok = schema["paths"]["/api/status/"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    component = schema["components"]["schemas"][ok["$ref"].rsplit("/", 1)[1]]
    assert {"verdict", "verdict_label", "reasons", "environments", "last_sync"} <= set(component["properties"])
    enums = [c.get("enum") for c in schema["components"]["schemas"].values()]
    assert ["ok", "attention", "failing"] in enums


@pytest.mark.parametrize("role", ["viewer", "requester", "approver", "staff"])
def test_every_role_reads_the_status(healthy, all_roles, role, client_for):
    assert client_for(all_roles[role]).get("/api/status/").status_code == 200
    page = client_for(all_roles[role]).get(reverse("home")).content.decode()
    assert 'id="verdict"' in page and "All good" in page


def test_anonymous_callers_get_json_not_the_status(client, db):
    response = client.get("/api/status/")
    assert response.status_code in (401, 403) and "verdict" not in response.json()
    assert response.json()["detail"]


def test_api_status_costs_a_fixed_number_of_queries(healthy, requester, viewer, client_for, django_assert_num_queries):
    client = client_for(viewer)
    client.get("/api/status/")
    # Session and user; environments; status_overview (statuses, overdue checks, open CRs per
    # environment, trend runs, last audit, last sync, open CRs, unauthorized commits); released
    # change requests with their deploys; the last full audit.
    with django_assert_num_queries(13):
        client.get("/api/status/")
    run = audit(machines={f"production/m{i}": "unreachable" for i in range(20)})
    for i in range(5):
        finding(run, f"production/m{i}", target=f"/etc/{i}")
        change = released(requester)
        deploy(change, Job.State.FAILED)
        deploy(change, Job.State.HALTED, ago=timedelta(minutes=1))
        released(requester, verification={"state": "failed"}, machines=("production/web1", "test/web-test1"))
    with django_assert_num_queries(13):
        body = client.get("/api/status/").json()
    assert reasons(body, "production")["deploy-halted"]["count"] == 5
    assert reasons(body, "test")["verification-failed"]["count"] == 5


def test_home_page_opens_with_the_verdict_and_its_reasons_as_links(healthy, viewer, client_for):
    run = audit(machines={"production/web1": "drifted", "production/db1": "compliant", "test/web-test1": "compliant"})
    finding(run, "production/web1")
    page = client_for(viewer).get(reverse("home")).content.decode()
    assert page.index('id="verdict"') < page.index("stat-cards")  # before the inventory counters
    verdict = page.split('id="verdict"')[1]
    assert "Needs attention</h2>" in verdict.split("</h2>")[0] + "</h2>"
    assert 'data-environment="production" data-verdict="attention"' in verdict
    prod = verdict.split('data-environment="production"')[1].split("</section>")[0]
    assert '<a href="/audits/findings/?state=open&amp;environment=production">1 open finding' in prod
    assert "Needs attention" in prod
    test = verdict.split('data-environment="test"')[1].split("</section>")[0]
    assert "Nothing to report." in test and "All good" in test


def test_environment_cards_show_a_plain_summary_cut_at_a_word(synced, viewer, client_for):
    from cmdb import services

    long = " ".join(["word"] * 60)
    synced.write("test/README.md", f"# Test\n\n**Bold** start with a [link](../README.md) and `code`, {long}\n\nSecond.\n")
    synced.commit("Longer test README")
    services.repo_sync(trigger="test")
    cards = {c["name"]: c["excerpt"] for c in client_for(viewer).get(reverse("home")).context["env_cards"]}
    assert cards["production"] == "Machines: web1, db1."  # the picture's paragraph has no words
    test = cards["test"]
    assert test.startswith("Bold start with a link and code, word word") and test.endswith("word…")
    assert len(test) <= 160 and "*" not in test and "[" not in test and "`" not in test


@pytest.mark.parametrize(("variables", "message"), [
    ({"CMDB_STATUS_SYNC_STALE": "120", "CMDB_SYNC_INTERVAL": "300"}, "CMDB_STATUS_SYNC_STALE must be at least"),
    ({"CMDB_STATUS_AUDIT_GRACE": "a day"}, "CMDB_STATUS_AUDIT_GRACE"),
    ({"CMDB_STATUS_RELEASE_GRACE": "-1"}, "CMDB_STATUS_RELEASE_GRACE"),
])
def test_a_bad_status_limit_stops_start_up(tmp_path, variables, message):
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "DJANGO_DEBUG": "true", "CMDB_DATA_DIR": str(tmp_path), **variables}
    result = subprocess.run([sys.executable, "-c", "import portal.settings"], env=env, capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[2], check=False)
    assert result.returncode != 0 and message in result.stderr
