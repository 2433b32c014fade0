"""Celery tasks of auditing: thin wrappers that take ids and call ``audits.services``."""

from __future__ import annotations

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from audits import services
from portal.tasks import RETRIES, TRANSIENT, retry_later


@shared_task(name="audits.tasks.audit_dispatch", acks_late=True, reject_on_worker_lost=True)
def audit_dispatch(run_id: int) -> int:
    """Mark the run running and queue one batch task per ``CMDB_AUDIT_BATCH`` machines."""
    parts = services.audit_begin(run_id=run_id)
    for machines in parts:
        audit_batch.delay(run_id, machines)
    return len(parts)


@shared_task(
    bind=True,
    name="audits.tasks.audit_batch",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=settings.CMDB_AUDIT_SOFT_TIME_LIMIT,
    time_limit=settings.CMDB_AUDIT_TIME_LIMIT,
    max_retries=RETRIES,
)
def audit_batch(self, run_id: int, machines: list[str]) -> None:
    """Audit a batch of machines (a redelivered or retried batch skips machines already stored)."""
    try:
        services.audit_run_batch(run_id=run_id, machine_paths=machines)
    except TRANSIENT as exc:
        retry_later(self, exc)
    except SoftTimeLimitExceeded:
        services.audit_fail_machines(
            run_id=run_id, machine_paths=machines,
            reason=f"timed out (no answer within {settings.CMDB_AUDIT_SOFT_TIME_LIMIT}s)",
        )


@shared_task(name="audits.tasks.audit_scheduled")
def audit_scheduled() -> int | None:
    """Beat, monthly (``CMDB_AUDIT_CRONTAB``): a full audit."""
    run = services.audit_scheduled()
    return run.pk if run is not None else None


@shared_task(name="audits.tasks.audit_reap")
def audit_reap() -> int:
    """Periodic: close runs whose worker died as incomplete."""
    return services.audit_reap_stale()
