"""Every audit decision a person (or the schedule) takes is in the append-only record, written in the
same transaction as the decision, and readable in GET /api/events/ with who, when, what and the note."""

from __future__ import annotations

import pytest

from audits import services
from audits.models import Finding
from changes.models import ChangeEvent
from tests.cmdb.apiutil import token_client

pytestmark = pytest.mark.django_db


def events(action: str) -> list[ChangeEvent]:
    return list(ChangeEvent.objects.filter(action=action))


def test_starting_an_audit_is_recorded_with_who_and_the_commit(audit_env, staff, run_audit):
    run = run_audit(acting_user=staff)
    [event] = events("audit-started")
    assert event.actor == staff and event.data["audit"] == run.pk and event.commit_sha == run.main_sha
    services.audit_scheduled()
    assert [e.actor for e in events("audit-started")][1] is None  # the schedule: no person


def test_acknowledge_adopt_and_restore_are_recorded_with_the_note(audit_env, staff, approver, requester, run_audit):
    run = run_audit(acting_user=staff)
    content = run.findings.get(target="/etc/nginx/nginx.conf", kind="content")
    mode = run.findings.filter(kind="mode").first()
    services.finding_acknowledge(finding=content, acting_user=approver, note="hotfix INC-1, kept on purpose")
    [ack] = events("finding-acknowledged")
    assert ack.actor == approver and ack.data["note"] == "hotfix INC-1, kept on purpose"
    assert ack.data["finding"] == content.pk and ack.data["audit"] == run.pk
    restored = services.finding_restore(finding=mode, acting_user=requester, note="put it back")
    [restore] = events("finding-restore")
    assert restore.actor == requester and restore.change == restored.change and restore.data["note"] == "put it back"

    body = token_client(staff).get("/api/events/", {"action": "finding-acknowledged"}).json()
    assert [(e["actor"], e["data"]["note"]) for e in body["results"]] == [("alice_approver", "hotfix INC-1, kept on purpose")]


def test_a_refused_decision_writes_nothing(audit_env, staff, viewer, run_audit):
    run = run_audit(acting_user=staff)
    finding = run.findings.first()
    with pytest.raises(services.AuditForbidden):
        services.finding_acknowledge(finding=finding, acting_user=viewer, note="no")
    assert events("finding-acknowledged") == []


def test_manual_checks_are_recorded(audit_env, staff, requester, run_audit):
    run = run_audit(acting_user=staff)
    check = run.manual_checks.get()
    services.manual_check_record(check=check, acting_user=requester, state="discrepancy", note="extra VLAN on port 7")
    [event] = events("manual-check-discrepancy")
    finding = Finding.objects.get(kind="manual")  # the discrepancy is an open finding, in the same event
    assert event.actor == requester and event.data == {"check": check.pk, "audit": run.pk,
                                                       "machine": check.machine_path, "note": "extra VLAN on port 7",
                                                       "finding": finding.pk}
