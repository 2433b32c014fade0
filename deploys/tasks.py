"""Celery tasks of release: thin wrappers that take ids and call ``deploys.services``.

The task names keep their ``changes.tasks.`` prefix: queued tasks and beat entries from before the
dry runs moved to this app must still find them.
"""

from __future__ import annotations

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from deploys import services
from portal.tasks import RETRIES, TRANSIENT, retry_later


@shared_task(name="changes.tasks.dryrun_dispatch", acks_late=True, reject_on_worker_lost=True)
def dryrun_dispatch(job_id: int) -> int:
    """Mark the job running and queue one batch task per ``CMDB_DRY_RUN_BATCH`` machines."""
    parts = services.dryrun_begin(job_id=job_id)
    for machines in parts:
        dryrun_batch.delay(job_id, machines)
    return len(parts)


@shared_task(
    bind=True,
    name="changes.tasks.dryrun_batch",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=settings.CMDB_DRY_RUN_SOFT_TIME_LIMIT,
    time_limit=settings.CMDB_DRY_RUN_TIME_LIMIT,
    max_retries=RETRIES,
)
def dryrun_batch(self, job_id: int, machines: list[str]) -> None:
    """Look at a batch of machines (a redelivered or retried batch skips machines already planned)."""
    try:
        services.dryrun_run_batch(job_id=job_id, machine_paths=machines)
    except TRANSIENT as exc:
        retry_later(self, exc)
    except SoftTimeLimitExceeded:
        services.dryrun_fail_machines(
            job_id=job_id, machine_paths=machines,
            reason=f"timed out (no answer within {settings.CMDB_DRY_RUN_SOFT_TIME_LIMIT}s)",
        )


@shared_task(name="changes.tasks.dryrun_reap")
def dryrun_reap() -> int:
    """Periodic: fail jobs whose worker died."""
    return services.dryrun_reap_stale()
