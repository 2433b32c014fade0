"""Pruning old job plans and logs (``CMDB_RETAIN_JOB_*``), the daily beat task's work.

The job rows stay for ever (the record refers to them); what goes is the bulk under them: the
per-machine plans (file actions with their diffs) and the log lines. Never pruned: jobs not finished,
jobs of change requests not yet closed, withdrawn or rejected, jobs at a baseline's commit, the dry
run a kept deploy applied and the deploy a kept restore undid, and each machine's last
``CMDB_RETAIN_KEEP_LAST`` plans.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from changes.models import Baseline, ChangeRequest
from changes.services import record_event
from deploys.models import Job, JobLogLine, MachinePlan

FINAL_CHANGE_STATES = (ChangeRequest.State.CLOSED, ChangeRequest.State.WITHDRAWN, ChangeRequest.State.REJECTED)
CHUNK = 500


@dataclass(frozen=True)
class Pruned:
    plans: int = 0
    log_lines: int = 0
    jobs: int = 0


def _protected_jobs(before: datetime) -> set[int]:
    """Old jobs that something still refers to (see the module's docstring)."""
    old = Job.objects.filter(created_at__lt=before)
    kept = set(old.exclude(state__in=Job.FINISHED_STATES).values_list("id", flat=True))
    kept |= set(old.filter(change__isnull=False).exclude(change__state__in=FINAL_CHANGE_STATES)
                .values_list("id", flat=True))
    kept |= set(old.filter(revision__in=Baseline.objects.values("sha")).values_list("id", flat=True))
    last = (MachinePlan.objects.annotate(rank=Window(RowNumber(), partition_by=F("machine_path"),
                                                     order_by=[F("job__created_at").desc(), F("job_id").desc()]))
            .filter(rank__lte=settings.CMDB_RETAIN_KEEP_LAST).values_list("job_id", flat=True))
    kept |= set(last)
    # A deploy applies its dry run's plan, a restore undoes a deploy: keep what a kept job points at.
    frontier = set(kept)
    while frontier:
        frontier = set(Job.objects.filter(id__in=frontier, plan_job__isnull=False)
                       .values_list("plan_job_id", flat=True)) - kept
        kept |= frontier
    return kept


def jobs_prune(*, now: datetime | None = None) -> Pruned:
    """Delete plans and logs of jobs older than their retention; record what went."""
    now = now or timezone.now()
    plan_days, log_days = settings.CMDB_RETAIN_JOB_PLANS_DAYS, settings.CMDB_RETAIN_JOB_LOGS_DAYS
    if not plan_days and not log_days:
        return Pruned()
    oldest_cutoff = now - timedelta(days=min(d for d in (plan_days, log_days) if d))
    protected = _protected_jobs(oldest_cutoff)
    plans = lines = 0
    touched: set[int] = set()
    with transaction.atomic():
        if plan_days:
            doomed = (MachinePlan.objects.filter(job__created_at__lt=now - timedelta(days=plan_days),
                                                 job__state__in=Job.FINISHED_STATES)
                      .exclude(job_id__in=protected).values_list("id", "job_id"))
            rows = list(doomed)
            touched |= {job for _, job in rows}
            for start in range(0, len(rows), CHUNK):
                plans += MachinePlan.objects.filter(id__in=[i for i, _ in rows[start:start + CHUNK]]).delete()[0]
        if log_days:
            jobs = list(Job.objects.filter(created_at__lt=now - timedelta(days=log_days), state__in=Job.FINISHED_STATES,
                                           log_lines__isnull=False).exclude(id__in=protected)
                        .values_list("id", flat=True).distinct())
            touched |= set(jobs)
            for start in range(0, len(jobs), CHUNK):
                lines += JobLogLine.objects.filter(job_id__in=jobs[start:start + CHUNK]).delete()[0]
        if touched:
            Job.objects.filter(id__in=touched).update(pruned_at=now)
            record_event(actor=None, action="retention-pruned",
                         message=f"Retention removed {plans} machine plans and {lines} log lines of "
                                 f"{len(touched)} finished jobs (plans older than {plan_days or '∞'} days, "
                                 f"logs older than {log_days or '∞'} days; the last "
                                 f"{settings.CMDB_RETAIN_KEEP_LAST} per machine and those still referred to kept)",
                         kind="jobs", plans=plans, log_lines=lines, jobs=len(touched))
    return Pruned(plans=plans, log_lines=lines, jobs=len(touched))
