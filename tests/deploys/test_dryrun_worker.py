"""Dry runs end to end through a REAL redis-server broker and a REAL Celery worker (in a thread), with
one machine on a local directory and one over a real sshd."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.fixtures.dryrun_repo import build_machines, build_repo, snapshot_tree
from tests.fixtures.worker import need, wait_finished
from tests.services import start_sshd

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def sshd(tmp_path_factory):
    need("sshd", "ssh", "ssh-keygen")
    handle = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield handle
    handle.stop()


def test_dry_run_through_redis_and_a_worker_with_an_ssh_machine(
    work_repo, tmp_path, settings, sshd, celery_worker_on, make_change, requester
):
    from deploys import services as dryrun

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
