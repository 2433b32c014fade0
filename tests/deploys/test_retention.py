"""Retention of job plans and logs: old bulk goes, what anything still refers to stays."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from changes.models import Baseline, ChangeEvent, ChangeRequest
from deploys import retention, tasks
from deploys.models import Job, JobLogLine, MachinePlan

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def job(user, *, days_old: int, machine="prod/web1", state="succeeded", change=None, revision="a" * 40,
        kind="dry-run", plan_job=None) -> Job:
    at = NOW - timedelta(days=days_old)
    j = Job.objects.create(kind=kind, revision=revision, requested_by=user, state=state, change=change,
                           plan_job=plan_job, created_at=at, started_at=at, finished_at=at, machines=[machine])
    MachinePlan.objects.create(job=j, machine_path=machine, status="planned", items=[{"target": "/etc/x", "diff": "…"}])
    JobLogLine.objects.create(job=j, message="Finished.")
    return j


@pytest.fixture
def keep_last(settings):
    settings.CMDB_RETAIN_KEEP_LAST = 1
    settings.CMDB_RETAIN_JOB_PLANS_DAYS = 30
    settings.CMDB_RETAIN_JOB_LOGS_DAYS = 60
    return settings


def test_defaults_keep_everything(staff):
    old = job(staff, days_old=999)
    job(staff, days_old=0)
    assert retention.jobs_prune(now=NOW) == retention.Pruned()
    assert MachinePlan.objects.filter(job=old).exists() and JobLogLine.objects.filter(job=old).exists()
    assert not ChangeEvent.objects.exists()


def test_old_plans_and_logs_go_by_age_and_the_record_says_so(keep_last, staff):
    ancient, month_old, newest = job(staff, days_old=90), job(staff, days_old=45), job(staff, days_old=1)
    pruned = tasks.jobs_prune()
    assert pruned == {"plans": 2, "log_lines": 1, "jobs": 2}
    assert set(MachinePlan.objects.values_list("job_id", flat=True)) == {newest.pk}
    assert set(JobLogLine.objects.values_list("job_id", flat=True)) == {month_old.pk, newest.pk}  # logs: 60 days
    assert Job.objects.count() == 3  # the jobs themselves stay
    ancient.refresh_from_db()
    assert ancient.pruned_at is not None
    event = ChangeEvent.objects.get(action="retention-pruned")
    assert event.actor is None and event.data == {"kind": "jobs", "plans": 2, "log_lines": 1, "jobs": 2}
    assert tasks.jobs_prune() == {"plans": 0, "log_lines": 0, "jobs": 0}  # nothing twice
    assert ChangeEvent.objects.filter(action="retention-pruned").count() == 1


def test_the_last_plans_of_each_machine_are_kept_however_old(keep_last, staff):
    lonely = job(staff, days_old=400, machine="test/printer")
    job(staff, days_old=300, machine="prod/web1")
    latest_web1 = job(staff, days_old=200, machine="prod/web1")
    retention.jobs_prune(now=NOW)
    assert set(MachinePlan.objects.values_list("job_id", flat=True)) == {lonely.pk, latest_web1.pk}


def test_what_an_open_change_request_a_baseline_or_a_kept_deploy_refers_to_stays(keep_last, staff, requester):
    open_cr = ChangeRequest.objects.create(title="open", branch="change/open", requester=requester, state="implemented")
    closed_cr = ChangeRequest.objects.create(title="done", branch="change/done", requester=requester, state="closed")
    of_open = job(staff, days_old=100, change=open_cr, machine="m/1")
    of_closed = job(staff, days_old=100, change=closed_cr, machine="m/1")
    Baseline.objects.create(name="baseline-2026-01", sha="b" * 40, created_by=staff)
    at_baseline = job(staff, days_old=100, revision="b" * 40, machine="m/1")
    reviewed = job(staff, days_old=100, machine="m/2")
    job(staff, days_old=100, machine="m/2", kind="deploy", plan_job=reviewed)  # the last for m/2: kept
    unfinished = job(staff, days_old=100, state="running", machine="m/3")
    job(staff, days_old=1, machine="m/1")
    job(staff, days_old=1, machine="m/3")

    retention.jobs_prune(now=NOW)
    remaining = set(MachinePlan.objects.values_list("job_id", flat=True))
    assert {of_open.pk, at_baseline.pk, reviewed.pk, unfinished.pk} <= remaining
    assert of_closed.pk not in remaining
