"""Concurrent audit actions with real threads and real transactions (PostgreSQL pass only; see
tests/changes/test_concurrency.py for why SQLite's in-memory test database cannot say)."""

from __future__ import annotations

import pytest
from django.db import connection

from audits import services
from audits.models import AuditRun
from tests.fixtures.worker import run_together

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor == "sqlite", reason="needs a server database (runs in the PostgreSQL pass)"),
]


def test_two_starts_of_one_scope_at_once_make_one_run(audit_env, staff):
    results, errors = run_together(
        lambda: services.audit_start(acting_user=staff, scope="prod"),
        lambda: services.audit_start(acting_user=staff, scope="prod"),
    )
    assert len(results) == 1 and len(errors) == 1
    assert isinstance(errors[0], services.AuditConflict)
    assert AuditRun.objects.filter(scope="prod").count() == 1


def test_two_people_handling_one_finding_at_once_one_wins(audit_env, staff, approver, run_audit):
    run = run_audit(acting_user=staff, scope="prod/web1")
    finding = run.findings.get(target="/etc/nginx/nginx.conf", kind="mode")
    results, errors = run_together(
        lambda: services.finding_acknowledge(finding=finding, acting_user=approver, note="first"),
        lambda: services.finding_acknowledge(finding=finding, acting_user=staff, note="second"),
    )
    assert len(results) == 1 and len(errors) == 1 and isinstance(errors[0], services.AuditConflict)
    finding.refresh_from_db()
    assert finding.state == "acknowledged" and finding.note in ("first", "second")
