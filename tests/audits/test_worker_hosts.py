"""Workers on several hosts: each has a clone of its own (``CMDB_DATA_DIR``), which may not hold the
commit a run names (the web process that started it fetched it into *its* clone). A batch then fetches
origin once and goes on, instead of marking every machine "Cannot read the repository"."""

from __future__ import annotations

import pytest

from audits import services as audits
from audits import tasks as audit_tasks
from cmdb import services as cmdb_services
from cmdb.gitrepo import UnknownRevision

pytestmark = pytest.mark.django_db


def other_host(settings, tmp_path, name: str) -> None:
    """From now on this process is a worker on another host: its data directory has no clone yet."""
    data = tmp_path / name
    data.mkdir()
    settings.CMDB_DATA_DIR = data
    settings.CMDB_CLONE_DIR = data / "repo"


def test_an_audit_batch_on_a_host_whose_clone_lacks_the_commit_fetches_it(
        audit_env, staff, settings, tmp_path, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):  # queued, not yet taken by a worker
        run = audits.audit_start(acting_user=staff)
    other_host(settings, tmp_path, "worker-host-2")
    assert not cmdb_services.has_commit(cmdb_services.get_repo(), run.main_sha)  # a fresh clone: nothing fetched
    audit_tasks.audit_dispatch(run.pk)
    run.refresh_from_db()
    assert run.state == "succeeded"
    statuses = dict(run.results.values_list("machine_path", "status"))
    assert statuses["prod/web1"] == "drifted" and statuses["test/t1"] == "compliant"
    assert statuses["prod/broken"] == "error"  # its manifest, not the repository
    assert not run.results.filter(reason__contains="Cannot read the repository").exists()

def test_a_commit_origin_does_not_have_is_a_clear_error(audit_env, settings, tmp_path):
    cmdb_services.get_repo().fetch(settings.CMDB_BRANCH)
    with pytest.raises(UnknownRevision, match="neither in this host's clone nor on origin"):
        cmdb_services.repo_with("0" * 40)

