"""Audit runs through the services and (eager) Celery tasks, on local-directory machines."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.utils import timezone

from audits import services, tasks
from audits.models import AuditRun, Finding, MachineResult, MachineStatus, ManualCheck
from audits.services import AuditConflict, AuditError, AuditForbidden
from cmdb.secrets import MASK
from fleet import planner
from tests.fixtures.dryrun_repo import snapshot_tree

pytestmark = pytest.mark.django_db


def findings_of(run):
    return {(f.machine_path, f.target, f.kind): f for f in run.findings.all()}


def test_full_audit_finds_every_kind_of_drift_and_writes_nothing(audit_env, staff, run_audit):
    before = snapshot_tree(audit_env["machines"])
    run = run_audit(acting_user=staff)
    assert snapshot_tree(audit_env["machines"]) == before  # byte for byte, mode for mode

    assert run.state == "succeeded" and run.trigger == "manual" and run.requested_by == staff
    assert (run.machines_done, run.machines_total) == (7, 7)
    assert run.main_sha == audit_env["repo"].git("rev-parse", "main").strip()
    statuses = dict(run.results.values_list("machine_path", "status"))
    assert statuses == {
        "prod/bad1": "drifted", "prod/broken": "error", "prod/db1": "manual", "prod/ssh1": "unreachable",
        "prod/web1": "drifted", "prod/web2": "drifted", "test/t1": "compliant",
    }
    found = findings_of(run)
    assert set(found) == {
        ("prod/bad1", "/etc/bad.conf", "missing"),
        ("prod/web1", "/etc/app/app.conf", "mode"),
        ("prod/web1", "/etc/app/secrets/token", "content"),
        ("prod/web1", "/etc/app/secrets/token", "mode"),
        ("prod/web1", "/etc/nginx/nginx.conf", "content"),
        ("prod/web1", "/etc/nginx/nginx.conf", "mode"),
        ("prod/web2", "/etc/dir.conf", "unreadable"),
        ("prod/web2", "/etc/missing.conf", "missing"),
        ("prod/web2", "/etc/owned.conf", "owner"),
    }
    content = found[("prod/web1", "/etc/nginx/nginx.conf", "content")]
    assert "-worker_processes 1;" in content.diff and "+worker_processes 2;" in content.diff
    assert content.app_path == "prod/web1/nginx" and content.source_path.endswith("files/etc/nginx/nginx.conf")
    mode = found[("prod/web1", "/etc/nginx/nginx.conf", "mode")]
    assert (mode.declared, mode.live) == ("0640", "0644")
    secret = found[("prod/web1", "/etc/app/secrets/token", "content")]
    assert secret.secret and secret.diff == MASK and "live-token-value" not in secret.diff
    owner = found[("prod/web2", "/etc/owned.conf", "owner")]
    assert owner.declared == "nobody-such-user:nogroup-such" and owner.live.count(":") == 1
    assert "not a regular file" in found[("prod/web2", "/etc/dir.conf", "unreadable")].reason
    assert all(f.state == "open" for f in found.values())
    assert "connection refused" in run.results.get(machine_path="prod/ssh1").reason
    assert "telnet" in run.results.get(machine_path="prod/broken").reason


def test_no_file_content_outlives_the_batch_that_read_it(audit_env, staff, run_audit):
    run = run_audit(acting_user=staff)
    assert run.state == "succeeded"
    # the planner keeps what it learnt of each content (digest, key, text) for the batch only: the
    # secret token read from prod/web1 is not held by the worker afterwards
    assert planner._facts == {}
    assert planner._facts_held == 0


def test_compliance_per_application_machine_and_environment(audit_env, staff, run_audit):
    run = run_audit(acting_user=staff)
    web1 = run.results.get(machine_path="prod/web1")
    # nginx: nginx.conf drifts, old.conf and same.conf are in sync; app: both files drift.
    assert web1.applications == {"prod/web1/nginx": [2, 3], "prod/web1/app": [0, 2]}
    assert (web1.files_in_sync, web1.files_total, web1.compliance) == (2, 5, 40.0)
    assert run.results.get(machine_path="test/t1").compliance == 100.0
    for machine in ("prod/ssh1", "prod/db1", "prod/broken"):  # never counted as compliant
        assert run.results.get(machine_path=machine).compliance is None
    prod = run.summary["environments"]["prod"]
    # prod audited files: web1 5 + web2 3 + bad1 1 = 9, of which 2 in sync.
    assert (prod["files"], prod["in_sync"], prod["compliance"]) == (9, 2, 22.2)
    assert prod["statuses"] == {"drifted": 3, "error": 1, "manual": 1, "unreachable": 1}
    assert run.summary["environments"]["test"]["compliance"] == 100.0
    assert run.summary["compliance"] == 30.0 and run.summary["findings"] == 9
    status = MachineStatus.objects.get(machine_path="prod/web1")
    assert (status.status, status.compliance, status.open_findings) == ("drifted", 40.0, 5)


def test_each_run_makes_a_checklist_item_for_every_manual_machine(audit_env, staff, requester, viewer, run_audit):
    run = run_audit(acting_user=staff)
    [check] = run.manual_checks.all()
    assert check.machine_path == "prod/db1" and check.state == "open"
    assert check.due == (timezone.localdate().replace(day=1) + timedelta(days=32)).replace(day=1)
    assert not check.is_overdue

    with pytest.raises(AuditForbidden):
        services.manual_check_record(check=check, acting_user=viewer, state="matches")
    with pytest.raises(AuditError, match="Describe"):
        services.manual_check_record(check=check, acting_user=requester, state="discrepancy")
    done = services.manual_check_record(check=check, acting_user=requester, state="discrepancy", note="VLAN 12 missing")
    assert (done.state, done.checked_by, done.note) == ("discrepancy", requester, "VLAN 12 missing")
    with pytest.raises(AuditConflict):
        services.manual_check_record(check=check, acting_user=requester, state="matches")


def test_open_checks_of_an_earlier_month_are_overdue(audit_env, staff, run_audit):
    run = run_audit(acting_user=staff)
    check = run.manual_checks.get()
    ManualCheck.objects.filter(pk=check.pk).update(due=date(2000, 2, 1))
    check.refresh_from_db()
    assert check.is_overdue


def test_two_runs_of_one_scope_never_run_at_once(audit_env, staff):
    first = services.audit_start(acting_user=staff, scope="prod")  # queued: its task has not run
    with pytest.raises(AuditConflict, match=f"#{first.pk}"):
        services.audit_start(acting_user=staff, scope="prod")
    other = services.audit_start(acting_user=staff, scope="test")  # another scope may run meanwhile
    assert AuditRun.objects.filter(state="queued").count() == 2 and other.scope == "test"


def test_scope_is_an_environment_or_a_machine(audit_env, staff, run_audit):
    run = run_audit(acting_user=staff, scope="prod/web1")
    assert run.machines == ["prod/web1"] and run.state == "succeeded"
    run = run_audit(acting_user=staff, scope="test")
    assert run.machines == ["test/t1"]
    for bad in ("nowhere", "prod/nothing", "../etc", "a/b/c"):
        with pytest.raises(AuditError):
            services.audit_start(acting_user=staff, scope=bad)


@pytest.mark.parametrize("role", ["viewer", "requester", "approver"])
def test_only_staff_start_audits(audit_env, role, request):
    with pytest.raises(AuditForbidden):
        services.audit_start(acting_user=request.getfixturevalue(role))
    assert not AuditRun.objects.exists()


def test_a_run_whose_worker_died_is_closed_incomplete_with_the_machines_not_done(audit_env, staff, settings):
    run = services.audit_start(acting_user=staff)
    parts = services.audit_begin(run_id=run.pk)  # the dispatcher ran, then the worker died mid-run
    services.audit_run_batch(run_id=run.pk, machine_paths=parts[0])
    services.audit_run_batch(run_id=run.pk, machine_paths=parts[0])  # a redelivered batch adds nothing
    run.refresh_from_db()
    assert run.state == "running" and run.machines_done == len(parts[0])

    # Started long ago but still storing batches: not reaped. Reaped once progress stops.
    AuditRun.objects.filter(pk=run.pk).update(started_at=timezone.now() - timedelta(hours=3))
    assert services.audit_reap_stale() == 0
    AuditRun.objects.filter(pk=run.pk).update(progress_at=timezone.now() - timedelta(hours=3))
    assert services.audit_reap_stale() == 1
    run.refresh_from_db()
    assert run.state == "incomplete" and "worker lost" in run.error
    assert run.machines_missing == [m for p in parts[1:] for m in p]
    assert run.summary["machines"] == len(parts[0])
    # A batch delivered after the run was closed changes nothing.
    services.audit_run_batch(run_id=run.pk, machine_paths=parts[1])
    assert run.results.count() == len(parts[0])


def test_a_timed_out_batch_marks_its_machines_as_errors(audit_env, staff):
    run = services.audit_start(acting_user=staff, scope="prod/web1")
    services.audit_begin(run_id=run.pk)
    services.audit_fail_machines(run_id=run.pk, machine_paths=["prod/web1"], reason="timed out (no answer within 600s)")
    run.refresh_from_db()
    assert run.state == "succeeded"
    assert run.results.get().status == "error" and "timed out" in run.results.get().reason


def test_acknowledged_drift_seen_again_stays_acknowledged_and_new_drift_is_new(audit_env, staff, approver, requester,
                                                                                run_audit):
    first = run_audit(acting_user=staff, scope="prod/web1")
    content = first.findings.get(target="/etc/nginx/nginx.conf", kind="content")
    with pytest.raises(AuditForbidden):
        services.finding_acknowledge(finding=content, acting_user=requester, note="fine")
    with pytest.raises(AuditError, match="note"):
        services.finding_acknowledge(finding=content, acting_user=approver, note=" ")
    services.finding_acknowledge(finding=content, acting_user=approver, note="tuned live for the sale")
    assert MachineStatus.objects.get(machine_path="prod/web1").open_findings == 4
    with pytest.raises(AuditConflict):
        services.finding_acknowledge(finding=content, acting_user=approver, note="again")

    second = run_audit(acting_user=staff, scope="prod/web1")
    again = second.findings.get(target="/etc/nginx/nginx.conf", kind="content")
    assert (again.state, again.note, again.handled_by, again.carried_from_id) == (
        "acknowledged", "tuned live for the sale", approver, content.pk)
    assert second.findings.get(target="/etc/nginx/nginx.conf", kind="mode").state == "open"

    (audit_env["machines"] / "machines/web1/etc/nginx/nginx.conf").write_text("worker_processes 8;\n")
    third = run_audit(acting_user=staff, scope="prod/web1")
    assert third.findings.get(target="/etc/nginx/nginx.conf", kind="content").state == "open"  # new drift


def test_the_summary_is_mailed_to_staff_after_each_run(audit_env, staff, run_audit, mailoutbox, django_user_model):
    staff.email = "sam@example.org"
    staff.save()
    django_user_model.objects.create_user("gone", email="gone@example.org", is_staff=True, is_active=False)
    run = run_audit(acting_user=staff)
    [mail] = mailoutbox
    assert mail.to == ["sam@example.org"]
    assert f"Audit #{run.pk}" in mail.subject and "30.0% compliant" in mail.subject and "3 drifted" in mail.subject
    assert "prod" in mail.body and "22.2%" in mail.body and run.get_absolute_url() in mail.body
    assert "manual check" in mail.body
    run.refresh_from_db()
    assert run.summary_mailed_at is not None


def test_the_monthly_schedule_is_a_beat_entry_that_starts_a_full_audit(audit_env, settings):
    entry = settings.CELERY_BEAT_SCHEDULE["audits-monthly"]
    assert entry["task"] == "audits.tasks.audit_scheduled"
    schedule = entry["schedule"]
    assert (schedule._orig_minute, schedule._orig_hour, schedule._orig_day_of_month) == ("0", "2", "1")
    assert settings.CMDB_AUDIT_CRONTAB == {"minute": "0", "hour": "2", "day_of_month": "1", "month_of_year": "*",
                                           "day_of_week": "*"}
    run_id = tasks.audit_scheduled.delay().get()
    run = AuditRun.objects.get(pk=run_id)
    assert (run.scope, run.trigger, run.requested_by) == ("", "schedule", None)
    assert tasks.audit_scheduled.delay().get() is None  # the full audit is still active: skipped


def test_next_scheduled_run_follows_the_crontab_in_the_portal_time_zone(settings):
    from audits.queries import next_scheduled_audit

    tz = timezone.get_current_timezone()
    now = timezone.make_aware(timezone.datetime(2026, 11, 22, 10, 0), tz)
    nxt = next_scheduled_audit(now=now)
    assert timezone.localtime(nxt, tz).replace(tzinfo=None) == timezone.datetime(2026, 12, 1, 2, 0)
    just_before = timezone.make_aware(timezone.datetime(2026, 12, 1, 1, 59), tz)
    assert timezone.localtime(next_scheduled_audit(now=just_before), tz).day == 1


def test_results_are_kept_per_machine_and_statuses_follow_the_latest_run(audit_env, staff, run_audit):
    run_audit(acting_user=staff)
    (audit_env["machines"] / "machines/web1/etc/nginx/nginx.conf").write_text("worker_processes 2;\n")
    run_audit(acting_user=staff, scope="prod/web1")
    assert MachineResult.objects.filter(machine_path="prod/web1").count() == 2
    status = MachineStatus.objects.get(machine_path="prod/web1")
    assert status.open_findings == 4 and status.compliance == 40.0  # content fixed; the mode still drifts
    assert Finding.objects.filter(machine_path="prod/web1", run__scope="prod/web1", kind="content",
                                  target="/etc/nginx/nginx.conf").count() == 0
