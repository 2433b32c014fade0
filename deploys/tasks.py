"""Celery tasks of release: thin wrappers that take ids and call ``deploys.services``.

The task names keep their ``changes.tasks.`` prefix: queued tasks and beat entries from before the
dry runs moved to this app must still find them.
"""

from __future__ import annotations

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from deploys import retention, rollout, services
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


# Deploys and restores write to machines: their tasks are acknowledged on receipt and never run twice
# (a redelivered batch could write again over what a person fixed meanwhile); a lost batch ends the job
# "interrupted" through the reaper.
@shared_task(name="deploys.tasks.deploy_dispatch", acks_late=False)
def deploy_dispatch(job_id: int) -> None:
    first = rollout.rollout_begin(job_id=job_id)
    if first:
        deploy_batch.delay(job_id, first)


@shared_task(name="deploys.tasks.deploy_batch", acks_late=False, time_limit=settings.CMDB_DEPLOY_TIME_LIMIT)
def deploy_batch(job_id: int, machines: list[str]) -> None:
    following = rollout.rollout_run_batch(job_id=job_id, machine_paths=machines)
    if following:
        deploy_batch.delay(job_id, following)


@shared_task(name="deploys.tasks.jobs_prune")
def jobs_prune() -> dict:
    """Daily: remove old plans and logs as ``CMDB_RETAIN_JOB_*`` say (nothing by default)."""
    return retention.jobs_prune().__dict__
