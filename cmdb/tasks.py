"""Celery tasks of CM identification: thin wrappers that load ids and call services."""

from __future__ import annotations

from celery import shared_task
from django.contrib.auth import get_user_model

from cmdb import services


@shared_task(name="cmdb.tasks.sync_repository", ignore_result=False)
def sync_repository(trigger: str = "periodic", user_id: int | None = None) -> dict:
    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    try:
        run = services.repo_sync(trigger=trigger, acting_user=user)
    except services.SyncError as exc:
        return {"status": "failed", "error": str(exc)}
    if run is None:
        return {"status": "coalesced"}
    return {"status": run.status, "mode": run.mode, "to": run.to_sha}
