"""A manual check recorded as a discrepancy is an open finding on its machine (counted in the status,
the API and the verdict) until someone acknowledges it with a note or a change request resolves it."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from audits import services
from audits.errors import AuditError
from audits.models import Finding, MachineStatus
from changes.models import ChangeEvent
from portal.status import status_verdict
from tests.changes.apiutil import token_client
from tests.changes.ui import post

pytestmark = pytest.mark.django_db


@pytest.fixture
def checked(audit_env, staff, requester, run_audit):
    """A full audit, then prod/db1 (configured by hand) recorded as a discrepancy through the service."""
    run = run_audit(acting_user=staff)
    check = run.manual_checks.get()
    services.manual_check_record(check=check, acting_user=requester, state="discrepancy", note="extra VLAN on port 7")
    return run


def manual_reason(status: dict) -> dict:
    prod = next(e for e in status["environments"] if e["environment"] == "prod")
    return next(r for r in prod["reasons"] if r["code"] == "open-findings")


def test_a_discrepancy_recorded_in_the_checklist_opens_a_finding_counted_everywhere(audit_env, staff, requester,
                                                                                    run_audit, viewer, client_for):
    run = run_audit(acting_user=staff)
    before = manual_reason(status_verdict())["count"]
    check = run.manual_checks.get()
    response = post(client_for(requester), reverse("audits:check_record", args=[check.pk]),
                    {"state": "discrepancy", "note": "extra VLAN on port 7"})
    assert response.status_code == 302
    finding = Finding.objects.get(kind=Finding.Kind.MANUAL)
    assert (finding.machine_path, finding.state, finding.reason) == ("prod/db1", "open", "extra VLAN on port 7")
    assert finding.result.run_id == run.pk and finding.source_path == "prod/db1/README.md"
    assert MachineStatus.objects.get(machine_path="prod/db1").open_findings == 1
    event = ChangeEvent.objects.get(action="manual-check-discrepancy")
    assert event.data["finding"] == finding.pk and f"open finding #{finding.pk}" in event.message

    assert manual_reason(status_verdict())["count"] == before + 1
    body = token_client(viewer).get("/api/status/").json()
    assert next(e for e in body["environments"] if e["environment"] == "prod")["open_findings"] == before + 1
    page = client_for(viewer).get(reverse("home")).content.decode()
    assert f"{before + 1} open findings" in page.split('data-environment="prod"')[1].split("</section>")[0]
    listed = client_for(viewer).get(reverse("audits:finding_list") + "?state=open&kind=manual").content.decode()
    assert reverse("audits:finding_detail", args=[finding.pk]) in listed


def test_a_discrepancy_recorded_through_the_api_opens_a_finding(audit_env, staff, approver, run_audit, viewer):
    run = run_audit(acting_user=staff)
    check = run.manual_checks.get()
    response = token_client(approver).post(f"/api/manual-checks/{check.pk}/", content_type="application/json",
                                           data=json.dumps({"state": "discrepancy", "note": "toner cover open"}))
    assert response.status_code == 200
    found = token_client(viewer).get("/api/findings/?kind=manual&state=open").json()
    assert found["count"] == 1 and found["results"][0]["reason"] == "toner cover open"


def test_a_check_that_matches_opens_nothing(audit_env, staff, requester, run_audit):
    run = run_audit(acting_user=staff)
    services.manual_check_record(check=run.manual_checks.get(), acting_user=requester, state="matches")
    assert not Finding.objects.filter(kind=Finding.Kind.MANUAL).exists()
    assert MachineStatus.objects.get(machine_path="prod/db1").open_findings == 0


def test_acknowledging_it_with_a_note_takes_it_out_of_the_verdict(checked, approver, client_for):
    finding = Finding.objects.get(kind=Finding.Kind.MANUAL)
    count = manual_reason(status_verdict())["count"]
    response = post(client_for(approver), reverse("audits:finding_act", args=[finding.pk]),
                    {"action": "acknowledge", "note": "VLAN added on purpose, README to follow"})
    assert response.status_code == 302
    finding.refresh_from_db()
    assert finding.state == "acknowledged" and MachineStatus.objects.get(machine_path="prod/db1").open_findings == 0
    assert manual_reason(status_verdict())["count"] == count - 1
    assert ChangeEvent.objects.filter(action="finding-acknowledged", data__finding=finding.pk).exists()


def test_restore_declared_resolves_it_with_a_change_request(checked, requester):
    finding = Finding.objects.get(kind=Finding.Kind.MANUAL)
    done = services.finding_restore(finding=finding, acting_user=requester, note="set it up as the README says")
    assert done.state == "restore" and done.change is not None and done.change.machines() == ["prod/db1"]
    assert MachineStatus.objects.get(machine_path="prod/db1").open_findings == 0


def test_it_cannot_be_adopted(checked, requester, client_for):
    finding = Finding.objects.get(kind=Finding.Kind.MANUAL)
    with pytest.raises(AuditError, match="no live file to adopt"):
        services.finding_adopt(finding=finding, acting_user=requester)
    page = client_for(requester).get(reverse("audits:finding_detail", args=[finding.pk])).content.decode()
    assert 'value="adopt"' not in page and "no live file to adopt" in page
    assert token_client(requester).post(f"/api/findings/{finding.pk}/adopt/").status_code == 400


def test_it_stays_open_through_the_next_audits_until_handled(checked, staff, approver, run_audit):
    again = run_audit(acting_user=staff)
    carried = Finding.objects.get(kind=Finding.Kind.MANUAL, run=again)
    first = Finding.objects.get(kind=Finding.Kind.MANUAL, run=checked)
    assert carried.state == "open" and carried.carried_from == first and carried.reason == "extra VLAN on port 7"
    assert MachineStatus.objects.get(machine_path="prod/db1").open_findings == 1
    services.finding_acknowledge(finding=carried, acting_user=approver, note="accepted")
    third = run_audit(acting_user=staff)
    assert not Finding.objects.filter(kind=Finding.Kind.MANUAL, run=third).exists()
    assert MachineStatus.objects.get(machine_path="prod/db1").open_findings == 0


def test_an_older_check_recorded_after_a_newer_audit_lands_on_the_latest_result(audit_env, staff, requester, run_audit):
    first = run_audit(acting_user=staff)
    latest = run_audit(acting_user=staff)
    services.manual_check_record(check=first.manual_checks.get(), acting_user=requester, state="discrepancy",
                                 note="seen late")
    finding = Finding.objects.get(kind=Finding.Kind.MANUAL)
    assert finding.run_id == latest.pk and MachineStatus.objects.get(machine_path="prod/db1").open_findings == 1
