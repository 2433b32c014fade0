"""A dry run stores each machine's plan as soon as that machine has answered, not at the end of its
batch: the job page shows the first machine while the others are still being looked at."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from deploys import services as dryrun
from deploys.models import Job, MachinePlan
from fleet.transport import local as local_transport

pytestmark = pytest.mark.django_db(transaction=True)

MACHINES = ["prod/m1", "prod/m2", "prod/m3"]


@pytest.fixture
def three_machines(work_repo, tmp_path, settings):
    live = tmp_path / "live"
    for machine in MACHINES:
        name = machine.split("/")[1]
        work_repo.write(f"{machine}/manifest.toml", f'[machine]\ntransport = "local"\nroot = "machines/{name}"\n')
        work_repo.write(f"{machine}/app/files/etc/app.conf", "declared\n")
        (live / "machines" / name / "etc").mkdir(parents=True)
        (live / "machines" / name / "etc/app.conf").write_text("live\n")
    work_repo.commit("Three machines")
    settings.CMDB_LOCAL_ROOT_BASE = live
    settings.CMDB_DRY_RUN_BATCH = 3  # one batch holds all three
    return live


def test_each_plan_is_readable_while_the_rest_of_its_batch_is_looked_at(three_machines, staff, monkeypatch):
    monkeypatch.setattr(dryrun, "_enqueue_dispatch", lambda job_id: None)  # the batch runs in the thread below
    job = dryrun.dryrun_start(acting_user=staff, revision="main", machines=MACHINES)
    (batch,) = dryrun.dryrun_begin(job_id=job.pk)
    assert batch == MACHINES

    # m2 does not answer until released: m1 is done, m3 not yet looked at.
    release, m2_reached = threading.Event(), threading.Event()
    stat_many = local_transport.LocalTransport.stat_many

    def blocking_stat_many(self, paths):
        if str(self.root).endswith("machines/m2"):
            m2_reached.set()
            assert release.wait(30), "m2 was never released"
        return stat_many(self, paths)

    monkeypatch.setattr(local_transport.LocalTransport, "stat_many", blocking_stat_many)
    errors: list[BaseException] = []

    def worker():
        try:
            dryrun.dryrun_run_batch(job_id=job.pk, machine_paths=batch)
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert m2_reached.wait(30)
        # Read from this thread's own connection: what the job page and the API see.
        deadline = time.monotonic() + 10
        while not MachinePlan.objects.filter(job_id=job.pk, machine_path="prod/m1").exists():
            assert time.monotonic() < deadline, "m1's plan was not stored before its batch ended"
            time.sleep(0.05)
        assert list(MachinePlan.objects.filter(job_id=job.pk).values_list("machine_path", flat=True)) == ["prod/m1"]
        running = Job.objects.get(pk=job.pk)
        assert (running.state, running.machines_done) == ("running", 1)
    finally:
        release.set()
        thread.join(60)
    assert not errors, errors
    job.refresh_from_db()
    assert job.state == "succeeded" and job.machines_done == 3
    plans = {p.machine_path: p for p in job.plans.all()}
    assert set(plans) == set(MACHINES)
    assert all(p.status == "planned" and p.items[0]["action"] == "update" for p in plans.values())


def test_the_job_page_asks_again_soon_while_a_new_job_shows_nothing(three_machines, staff, client, monkeypatch):
    monkeypatch.setattr(dryrun, "_enqueue_dispatch", lambda job_id: None)
    job = dryrun.dryrun_start(acting_user=staff, revision="main", machines=MACHINES)
    client.force_login(staff)
    assert 'hx-trigger="every 300ms"' in client.get(f"/jobs/{job.pk}/").content.decode()

    (batch,) = dryrun.dryrun_begin(job_id=job.pk)
    dryrun.dryrun_run_batch(job_id=job.pk, machine_paths=batch[:1])
    html = client.get(f"/jobs/{job.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert 'data-machine="prod/m1"' in html and 'hx-trigger="every 2s"' in html
