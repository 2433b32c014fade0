"""The audit panel of a machine's page: a manual machine's check (open, overdue, recorded) and a drifted
machine's open findings, from a real audit."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from audits import services
from audits.models import ManualCheck
from cmdb import services as cmdb_services

pytestmark = pytest.mark.django_db


def _audit_panel(client, machine: str) -> str:
    response = client.get(reverse("cmdb:ci_detail", kwargs={"path": machine}))
    assert response.status_code == 200
    return response.content.decode().split('data-panel="audit"', 1)[1].split("</section>", 1)[0]


@pytest.fixture
def audited(audit_env, staff, run_audit):
    run = run_audit(acting_user=staff)
    cmdb_services.repo_sync(trigger="test")
    return run


def test_a_manual_machine_shows_its_check_open_then_overdue_then_recorded(audited, requester, viewer, client_for):
    client = client_for(viewer)
    panel = _audit_panel(client, "prod/db1")
    assert 'data-status="manual"' in panel and 'data-status="open"' in panel and "overdue" not in panel
    check = ManualCheck.objects.get(machine_path="prod/db1", run=audited)
    ManualCheck.objects.filter(pk=check.pk).update(due=timezone.localdate() - timedelta(days=1))
    assert "overdue" in _audit_panel(client, "prod/db1")
    services.manual_check_record(check=check, acting_user=requester, state="discrepancy", note="sshd differs")
    panel = _audit_panel(client, "prod/db1")
    assert 'data-status="discrepancy"' in panel and "sshd differs" in panel and requester.username in panel
    assert "overdue" not in panel


def test_a_drifted_machine_lists_its_open_findings_and_drops_the_handled_ones(audited, staff, viewer, client_for):
    client = client_for(viewer)
    findings = list(audited.findings.filter(machine_path="prod/web1", state="open"))
    assert findings
    panel = _audit_panel(client, "prod/web1")
    assert 'data-status="drifted"' in panel and "%" in panel
    assert all(f.get_absolute_url() in panel for f in findings)
    services.finding_acknowledge(finding=findings[0], acting_user=staff, note="known")
    panel = _audit_panel(client, "prod/web1")
    assert findings[0].get_absolute_url() not in panel and findings[1].get_absolute_url() in panel
    assert f'data-field="open-findings">{len(findings) - 1}<' in panel.replace("\n", "")


def test_a_compliant_machine_says_it_has_no_open_finding(audited, viewer, client_for):
    panel = _audit_panel(client_for(viewer), "test/t1")
    assert 'data-status="compliant"' in panel and "No open findings in the latest audit." in panel
