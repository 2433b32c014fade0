"""Workers on several hosts: each has a clone of its own (``CMDB_DATA_DIR``), which may not hold the
commit a run names (the web process that started it fetched it into *its* clone). A batch then fetches
origin once and goes on, instead of marking every machine "Cannot read the repository"."""

from __future__ import annotations

import pytest

from cmdb import services as cmdb_services
from deploys import rollout
from deploys import services as dryruns
from deploys import tasks as deploy_tasks
from deploys.models import Job

pytestmark = pytest.mark.django_db


def other_host(settings, tmp_path, name: str) -> None:
    """From now on this process is a worker on another host: its data directory has no clone yet."""
    data = tmp_path / name
    data.mkdir()
    settings.CMDB_DATA_DIR = data
    settings.CMDB_CLONE_DIR = data / "repo"


def test_a_dry_run_batch_on_another_host_fetches_the_branch_it_plans(
        dry_env, make_change, requester, settings, tmp_path, django_capture_on_commit_callbacks):
    cr = make_change(dry_env["branch"])
    with django_capture_on_commit_callbacks(execute=False):
        job = dryruns.dryrun_start(acting_user=requester, change=cr)
    other_host(settings, tmp_path, "worker-host-2")
    deploy_tasks.dryrun_dispatch(job.pk)
    job.refresh_from_db()
    assert job.state == "succeeded"
    plans = dict(job.plans.values_list("machine_path", "status"))
    assert plans["prod/web1"] == "planned" and plans["prod/db1"] == "manual"

def test_a_deploy_batch_on_another_host_fetches_the_release(
        released, approver, dry_env, settings, tmp_path, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        dryruns.dryrun_start(acting_user=approver, change=released)
    with django_capture_on_commit_callbacks(execute=False):
        job = rollout.deploy_start(acting_user=approver, change=released)
    other_host(settings, tmp_path, "worker-host-2")
    assert not cmdb_services.has_commit(cmdb_services.get_repo(), released.merged_sha)
    deploy_tasks.deploy_dispatch(job.pk)
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED, job.error
    assert job.plans.get(machine_path="prod/web1").status == "applied"
    assert (dry_env["web1"] / "etc/nginx/new.conf").read_text() == "server { listen 8080; }\n"
