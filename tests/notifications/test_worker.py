"""A notification through a REAL redis-server broker and a REAL Celery worker (in a thread): the
receiver fails once, the worker retries after its backoff, the event is delivered once."""

from __future__ import annotations

import time

import pytest

from tests.fixtures.worker import wait_finished

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_a_failed_delivery_is_retried_by_the_worker_and_delivered_once(celery_worker_on, http_receiver, staff,
                                                                       test_branch, make_change, requester,
                                                                       approver, settings):
    from changes import services as change_services
    from notifications import services, tasks
    from notifications.models import Delivery

    settings.CMDB_NOTIFY_RETRY_DELAY = 1
    target = services.target_create(acting_user=staff, name="hook", kind="webhook", url=http_receiver.url + "/h",
                                    secret="worker-secret", events=["cr-approved"])
    change = make_change(test_branch)
    change_services.change_submit(change=change, acting_user=requester)
    http_receiver.fail_next(503)
    started = time.monotonic()
    change_services.change_approve(change=change, acting_user=approver)  # autocommit: queued on commit

    delivery = wait_finished(Delivery.objects.get(target=target), timeout=30)
    assert (delivery.state, delivery.attempts, delivery.http_status) == ("sent", 2, 200)
    first, second = http_receiver.requests
    assert first.headers["X-CMDB-Delivery"] == second.headers["X-CMDB-Delivery"] == delivery.dedupe_key
    assert time.monotonic() - started >= 1  # the retry waited for its backoff

    # The same delivery queued again (a redelivered message): the worker skips it.
    tasks.delivery_send.delay(delivery.pk)
    time.sleep(2)
    assert len(http_receiver.requests) == 2
