"""Dry runs end to end through a REAL redis-server broker and a REAL Celery worker (in a thread), with
one machine on a local directory and one over a real sshd."""

from __future__ import annotations

import os
import time
import uuid

import pytest

from tests.changes.dryrun_util import build_machines, build_repo, snapshot_tree
from tests.services import find_binary, start_redis, start_sshd

SERVICES_REQUIRED = bool(os.environ.get("CMDB_TEST_SERVICES"))

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def _need(*names: str) -> None:
    missing = [n for n in names if find_binary(n) is None]
    if missing and not SERVICES_REQUIRED:
        pytest.skip(f"not installed: {', '.join(missing)} (run make system-packages)")


@pytest.fixture
def redis_url(tmp_path):
    _need("redis-server")
    url, handle = start_redis(tmp_path / "redis")
    yield url
    handle.stop()


@pytest.fixture
def sshd(tmp_path_factory):
    _need("sshd", "ssh", "ssh-keygen")
    handle = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield handle
    handle.stop()


@pytest.fixture
def celery_worker_on(redis_url):
    """The portal's Celery app pointed at the real broker, not eager, with a worker thread."""
    from celery.contrib.testing.worker import start_worker

    from portal.celery import app

    saved = {k: app.conf[k] for k in ("broker_url", "broker_transport_options", "task_always_eager")}
    app.conf.update(broker_url=redis_url, broker_transport_options={}, task_always_eager=False)
    app._pool = None
    app.amqp._producer_pool = None
    before = _backends()
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
            yield app
    finally:
        app.conf.update(saved)
        app._pool = None
        app.amqp._producer_pool = None
        _drop_worker_connections(before)


def _backends() -> set[int]:
    from django.db import connection

    if connection.vendor != "postgresql":
        return set()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        return {row[0] for row in cursor.fetchall()}


def _drop_worker_connections(before: set[int]) -> None:
    """The worker thread's database connection (opened to store task results) dies with the thread
    unclosed; on PostgreSQL it would keep the test database busy and its teardown would fail. Only
    connections opened while the worker ran go: others (the live server's thread, kept for the whole
    session) must stay usable for later tests."""
    from django.db import connection

    if connection.vendor == "postgresql":
        new = sorted(_backends() - before)
        with connection.cursor() as cursor:
            for pid in new:
                if pid != connection.connection.info.backend_pid:
                    cursor.execute("SELECT pg_terminate_backend(%s)", [pid])


def wait_finished(row, timeout: float = 90.0):
    """Poll a dry-run job or an audit run until it is finished. On SQLite the test database is in
    memory with a shared cache, where a reader's table lock makes the worker's writes fail at once
    ("database table is locked", no busy wait): this connection reads uncommitted, so it never takes
    read locks."""
    from django.db import OperationalError, connection

    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA read_uncommitted = 1")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.5)
        try:
            row.refresh_from_db()
        except OperationalError:  # the worker holds the table right now
            continue
        if row.is_finished:
            return row
    raise AssertionError(f"{row} still not finished after {timeout}s")


def test_dry_run_through_redis_and_a_worker_with_an_ssh_machine(
    work_repo, tmp_path, settings, sshd, celery_worker_on, make_change, requester
):
    from changes import dryrun

    # The SSH "machine": a tree the unprivileged ssh user can read, declared by absolute path.
    remote = sshd.workdir / f"tree-{uuid.uuid4().hex[:8]}"
    (remote / "etc").mkdir(parents=True)
    remote.chmod(0o755)
    (remote / "etc").chmod(0o755)
    (remote / "etc/ssh1.conf").write_bytes(b"a\n")
    (remote / "etc/ssh1.conf").chmod(0o644)
    ssh_target = f"{remote}/etc/ssh1.conf"

    machines = tmp_path / "live"
    machines.mkdir()
    build_machines(machines)
    settings.CMDB_LOCAL_ROOT_BASE = machines
    settings.CMDB_SSH_KEY = str(sshd.key_path)
    settings.CMDB_SSH_KNOWN_HOSTS = str(sshd.known_hosts_path)
    settings.CMDB_SSH_CONNECT_TIMEOUT = 10
    settings.CMDB_DRY_RUN_BATCH = 2  # two batch tasks through the broker
    branch = build_repo(work_repo, ssh_port=sshd.port, ssh_host=sshd.host, ssh_user=sshd.user,
                        ssh_files={ssh_target: "a\n"})
    change = make_change(branch)
    before_local, before_remote = snapshot_tree(machines), snapshot_tree(remote)

    job = dryrun.dryrun_start(acting_user=requester, change=change)  # autocommit: queued at once
    job = wait_finished(job)

    assert job.state == "succeeded", list(job.log_lines.values_list("message", flat=True))
    assert (job.machines_done, job.machines_total) == (4, 4)
    plans = {p.machine_path: p for p in job.plans.all()}
    assert {m: p.status for m, p in plans.items()} == {
        "prod/bad1": "error", "prod/db1": "manual", "prod/ssh1": "planned", "prod/web1": "planned",
    }
    (ssh_item,) = plans["prod/ssh1"].items
    assert ssh_item["target"] == ssh_target and ssh_item["action"] == "update"
    assert ssh_item["changes"] == ["content"] and "+changed" in ssh_item["diff"]
    web1 = {i["target"]: i["action"] for i in plans["prod/web1"].items}
    assert web1["/etc/nginx/nginx.conf"] == "update" and web1["/etc/nginx/old.conf"] == "delete"
    assert snapshot_tree(machines) == before_local and snapshot_tree(remote) == before_remote
    # The work really went through the broker: the batch tasks have results from the worker.
    from django_celery_results.models import TaskResult

    deadline = time.monotonic() + 15  # the worker stores a result just after the task returns
    while TaskResult.objects.filter(task_name="changes.tasks.dryrun_batch", status="SUCCESS").count() < 2:
        assert time.monotonic() < deadline, list(TaskResult.objects.values_list("task_name", "status"))
        time.sleep(0.2)
