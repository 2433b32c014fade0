"""Retention of per-machine audit results: fine machines' old rows go; findings' evidence stays."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audits import retention, tasks
from audits.models import AuditRun, Finding, MachineResult, MachineStatus
from changes.models import Baseline, ChangeEvent, ChangeRequest

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def run(user, *, days_old: int, machines=("prod/web1", "prod/db1"), sha="") -> AuditRun:
    at = NOW - timedelta(days=days_old)
    r = AuditRun.objects.create(state="succeeded", requested_by=user, created_at=at, started_at=at, finished_at=at,
                                main_sha=sha, summary={"compliance": 100.0})
    for path in machines:
        MachineResult.objects.create(run=r, machine_path=path, environment="prod", status="compliant",
                                     files_total=2, files_in_sync=2, compliance=100.0, finished_at=at)
    return r


@pytest.fixture
def policy(settings):
    settings.CMDB_RETAIN_AUDIT_RESULTS_DAYS = 90
    settings.CMDB_RETAIN_KEEP_LAST = 1


def test_defaults_keep_every_result(staff):
    run(staff, days_old=999)
    assert retention.results_prune(now=NOW) == retention.Pruned()
    assert MachineResult.objects.count() == 2


def test_old_results_go_the_latest_per_machine_and_the_runs_stay(policy, staff):
    old, newer = run(staff, days_old=200), run(staff, days_old=150)
    latest = run(staff, days_old=10)
    assert tasks.results_prune() == {"results": 4, "runs": 2}
    assert set(MachineResult.objects.values_list("run_id", flat=True)) == {latest.pk}
    assert AuditRun.objects.count() == 3 and AuditRun.objects.get(pk=old.pk).pruned_at is not None
    assert AuditRun.objects.get(pk=newer.pk).summary == {"compliance": 100.0}  # the chart's figures stay
    event = ChangeEvent.objects.get(action="retention-pruned")
    assert event.data == {"kind": "audits", "results": 4, "runs": 2}


def test_results_with_findings_latest_status_baselines_and_open_verifications_stay(policy, staff, requester):
    drifted_run = run(staff, days_old=300, machines=("prod/web1",))
    evidence = drifted_run.results.get()
    Finding.objects.create(run=drifted_run, result=evidence, machine_path="prod/web1", environment="prod",
                           target="/etc/x", kind="content", fingerprint="f" * 64, state="acknowledged")
    Baseline.objects.create(name="baseline-2026-01", sha="c" * 40, created_by=staff)
    at_baseline = run(staff, days_old=300, sha="c" * 40, machines=("prod/db1",))
    verification = run(staff, days_old=300, machines=("prod/db1",))
    ChangeRequest.objects.create(title="v", branch="change/v", requester=requester, state="implemented",
                                 verification={"state": "pending", "audit": verification.pk})
    only = run(staff, days_old=300, machines=("test/printer",))
    MachineStatus.objects.create(machine_path="test/printer", environment="test", status="compliant",
                                 last_result=only.results.get())
    prunable = run(staff, days_old=300, machines=("prod/db1",))
    run(staff, days_old=1)

    retention.results_prune(now=NOW)
    remaining = set(MachineResult.objects.values_list("run_id", flat=True))
    assert {drifted_run.pk, at_baseline.pk, verification.pk, only.pk} <= remaining
    assert prunable.pk not in remaining
    assert Finding.objects.filter(result=evidence).exists()
