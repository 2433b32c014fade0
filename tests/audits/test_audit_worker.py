"""An audit end to end through a REAL redis-server broker and a REAL Celery worker (in a thread): the
dispatch fans batches out through the broker, results land machine by machine, the summary mail goes."""

from __future__ import annotations

import time

import pytest

from tests.fixtures.dryrun_repo import snapshot_tree
from tests.fixtures.worker import wait_finished

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_audit_through_redis_and_a_worker(audit_env, celery_worker_on, staff, settings, mailoutbox):  # noqa: F811
    from django_celery_results.models import TaskResult

    from audits import services

    staff.email = "sam@example.org"
    staff.save()
    before = snapshot_tree(audit_env["machines"])
    run = services.audit_start(acting_user=staff)  # autocommit: queued at once
    run = wait_finished(run)

    assert run.state == "succeeded" and (run.machines_done, run.machines_total) == (7, 7)
    assert dict(run.results.values_list("machine_path", "status"))["prod/web1"] == "drifted"
    assert run.findings.count() == 9 and run.summary["compliance"] == 30.0
    assert snapshot_tree(audit_env["machines"]) == before
    deadline = time.monotonic() + 15
    while TaskResult.objects.filter(task_name="audits.tasks.audit_batch", status="SUCCESS").count() < 4:
        assert time.monotonic() < deadline, list(TaskResult.objects.values_list("task_name", "status"))
        time.sleep(0.2)
    deadline = time.monotonic() + 15
    while not mailoutbox:  # sent by the worker thread after the last batch commits
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert "Audit #" in mailoutbox[0].subject
