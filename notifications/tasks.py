"""Celery tasks of notifications: send one delivery (retried with backoff), and the monthly look for
overdue manual checks. A delivery that keeps failing ends ``gave-up`` in its log; it never raises."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from notifications import receivers, services
from portal.tasks import TRANSIENT


@shared_task(name="notifications.tasks.delivery_send", bind=True, acks_late=True, max_retries=None)
def delivery_send(self, delivery_id: int) -> str:
    try:
        delivery, again = services.delivery_attempt(delivery_id=delivery_id)
    except TRANSIENT:  # our database or broker, not the target: try the same attempt later
        return _later(self, settings.CMDB_NOTIFY_RETRY_DELAY)
    if delivery is None:
        return "skipped"
    if again:
        return _later(self, min(settings.CMDB_NOTIFY_RETRY_DELAY * 2 ** (delivery.attempts - 1), 3600))
    return delivery.state


def _later(task, countdown: int):
    """Schedule the retry without raising: run eagerly (tests, CELERY_TASK_ALWAYS_EAGER) a raised
    Retry would propagate into the action that caused the event. Celery runs a returned one at once."""
    retry = task.retry(countdown=countdown, throw=False)
    return retry if task.request.is_eager else f"retry in {countdown}s"


@shared_task(name="notifications.tasks.checks_overdue")
def checks_overdue() -> int:
    """Beat, daily: raise the overdue-checks event (once per month: its key is the month)."""
    return receivers.raise_checks_overdue()
