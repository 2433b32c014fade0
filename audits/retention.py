"""Pruning old per-machine audit results (``CMDB_RETAIN_AUDIT_RESULTS_DAYS``), the daily beat task's work.

The runs stay (their summary keeps the figures the compliance chart draws); what goes is the
per-machine rows of machines that were fine. Never pruned: a result a finding refers to (any state:
the finding is the evidence of a drift and of what was decided), the latest result of each machine and
its last ``CMDB_RETAIN_KEEP_LAST``, results of runs not finished, of a verification audit of a change
request not yet closed, withdrawn or rejected, and of runs at a baseline's commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from audits.models import AuditRun, Finding, MachineResult, MachineStatus
from changes.models import Baseline, ChangeRequest
from changes.services import record_event

FINAL_CHANGE_STATES = (ChangeRequest.State.CLOSED, ChangeRequest.State.WITHDRAWN, ChangeRequest.State.REJECTED)
CHUNK = 500


@dataclass(frozen=True)
class Pruned:
    results: int = 0
    runs: int = 0


def _protected_runs() -> set[int]:
    runs = set(AuditRun.objects.filter(state__in=(AuditRun.State.QUEUED, AuditRun.State.RUNNING))
               .values_list("id", flat=True))
    runs |= set(AuditRun.objects.filter(main_sha__in=Baseline.objects.values("sha")).values_list("id", flat=True))
    for verification in (ChangeRequest.objects.exclude(state__in=FINAL_CHANGE_STATES)
                         .exclude(verification={}).values_list("verification", flat=True)):
        if isinstance(verification, dict) and isinstance(verification.get("audit"), int):
            runs.add(verification["audit"])
    return runs


def results_prune(*, now: datetime | None = None) -> Pruned:
    now = now or timezone.now()
    days = settings.CMDB_RETAIN_AUDIT_RESULTS_DAYS
    if not days:
        return Pruned()
    ranked = (MachineResult.objects.annotate(rank=Window(RowNumber(), partition_by=F("machine_path"),
                                                         order_by=[F("finished_at").desc(), F("id").desc()]))
              .filter(rank__lte=settings.CMDB_RETAIN_KEEP_LAST).values_list("id", flat=True))
    keep = set(ranked)
    keep |= set(Finding.objects.values_list("result_id", flat=True))
    keep |= set(MachineStatus.objects.filter(last_result__isnull=False).values_list("last_result_id", flat=True))
    rows = list(MachineResult.objects.filter(run__created_at__lt=now - timedelta(days=days))
                .exclude(run_id__in=_protected_runs()).values_list("id", "run_id"))
    rows = [(i, run) for i, run in rows if i not in keep]
    removed = 0
    with transaction.atomic():
        for start in range(0, len(rows), CHUNK):
            removed += MachineResult.objects.filter(id__in=[i for i, _ in rows[start:start + CHUNK]]).delete()[0]
        runs = {run for _, run in rows}
        if runs:
            AuditRun.objects.filter(id__in=runs).update(pruned_at=now)
            record_event(actor=None, action="retention-pruned",
                         message=f"Retention removed {removed} per-machine results of {len(runs)} audit runs older "
                                 f"than {days} days (machines without findings; the last "
                                 f"{settings.CMDB_RETAIN_KEEP_LAST} per machine and those still referred to kept)",
                         kind="audits", results=removed, runs=len(runs))
    return Pruned(results=removed, runs=len(runs))
