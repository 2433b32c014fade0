"""What every batch task shares: a database or broker error is transient, and the batch is retried
with backoff instead of being acknowledged as done (its machines would otherwise be lost until the
reaper closes the run). A retried batch skips what is stored, so nothing is written twice."""

from __future__ import annotations

import logging

from django.db import InterfaceError, OperationalError, connections
from kombu.exceptions import OperationalError as BrokerError

log = logging.getLogger(__name__)

TRANSIENT = (OperationalError, InterfaceError, BrokerError)
RETRIES = 10
BACKOFF_MAX = 60  # seconds: 1, 2, 4, ... 60, 60 — about 6 minutes in all, longer than a database restart


def retry_later(task, exc: Exception) -> None:
    """Retry ``task`` after a backoff; raises Celery's Retry (or the error once the retries are spent)."""
    # The connection that failed is broken: the retry must open a new one.
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None and not conn.is_usable():
            try:
                conn.close()
            except Exception:  # a dead connection may fail to close; it is dropped either way
                conn.connection = None
    countdown = min(BACKOFF_MAX, 2 ** task.request.retries)
    log.warning("%s: %s; retrying in %s s (retry %d of %d)", task.name, exc, countdown,
                task.request.retries + 1, RETRIES)
    raise task.retry(exc=exc, countdown=countdown, max_retries=RETRIES)
