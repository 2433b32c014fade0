"""Dry-run jobs through the services and (eager) Celery tasks, on local-directory machines."""

from __future__ import annotations

import pytest

from changes.models import ChangeEvent
from cmdb.secrets import MASK
from deploys import services as dryrun
from deploys.models import Job, MachinePlan
from tests.fixtures.dryrun_repo import snapshot_tree


@pytest.fixture
def cr(dry_env, make_change):
    return make_change(dry_env["branch"])


def run(django_capture_on_commit_callbacks, **kwargs) -> Job:
    with django_capture_on_commit_callbacks(execute=True):
        job = dryrun.dryrun_start(**kwargs)
    job.refresh_from_db()
    return job


def test_dry_run_of_a_change_request(dry_env, cr, requester, django_capture_on_commit_callbacks):
    before = snapshot_tree(dry_env["machines"])
    job = run(django_capture_on_commit_callbacks, acting_user=requester, change=cr)
    assert snapshot_tree(dry_env["machines"]) == before  # byte for byte, mode for mode: nothing written

    assert job.state == "succeeded", list(job.log_lines.values_list("message", flat=True))
    assert job.revision == cr.head_sha and job.for_head_sha == cr.head_sha
    assert job.machines == ["prod/bad1", "prod/db1", "prod/ssh1", "prod/web1"]
    assert (job.machines_done, job.machines_total) == (4, 4)
    plans = {p.machine_path: p for p in job.plans.all()}

    web1 = plans["prod/web1"]
    assert web1.status == "planned"
    items = {i["target"]: i for i in web1.items}
    assert {t: (i["action"], i["changes"]) for t, i in items.items()} == {
        "/etc/nginx/nginx.conf": ("update", ["content", "mode"]),
        "/etc/nginx/new.conf": ("create", ["content"]),
        "/etc/nginx/old.conf": ("delete", ["content"]),
        "/etc/nginx/same.conf": ("unchanged", []),
        "/etc/app/app.conf": ("update", ["mode"]),
        "/etc/app/secrets/token": ("update", ["content", "mode"]),
    }
    assert "-worker_processes 1;" in items["/etc/nginx/nginx.conf"]["diff"]
    assert "+worker_processes 4;" in items["/etc/nginx/nginx.conf"]["diff"]
    assert (items["/etc/nginx/nginx.conf"]["live_mode"], items["/etc/nginx/nginx.conf"]["declared_mode"]) == ("0644", "0640")
    token = items["/etc/app/secrets/token"]
    assert token["secret"] and token["diff"] == MASK
    assert "token-value" not in str(web1.items)
    assert web1.reload == ["systemctl restart app", "nginx -t", "systemctl reload nginx"]

    assert plans["prod/db1"].status == "manual"
    bad = plans["prod/bad1"]
    assert bad.status == "error"
    assert "prod/bad1/manifest.toml:4:" in bad.reason and "port" in bad.reason
    ssh1 = plans["prod/ssh1"]
    assert ssh1.status == "unreachable" and "connection refused" in ssh1.reason

    assert ChangeEvent.objects.filter(change=cr, action="dry-run-started").count() == 1
    assert job.log_lines.filter(message__contains="Finished").exists()


def test_dry_run_of_a_revision_defaults_to_every_machine(dry_env, approver, django_capture_on_commit_callbacks):
    job = run(django_capture_on_commit_callbacks, acting_user=approver, revision="main", machines=None)
    assert job.change is None and job.state == "succeeded"
    assert job.machines == ["prod/bad1", "prod/db1", "prod/ssh1", "prod/web1"]
    # main against main: nothing deleted, the machine's drift is shown.
    web1 = MachinePlan.objects.get(job=job, machine_path="prod/web1")
    actions = {i["target"]: i["action"] for i in web1.items}
    assert actions["/etc/nginx/old.conf"] == "unchanged" and "/etc/nginx/new.conf" not in actions
    assert MachinePlan.objects.get(job=job, machine_path="prod/bad1").status == "planned"  # fine on main


def test_branch_names_and_machine_lists(dry_env, staff, django_capture_on_commit_callbacks):
    job = run(django_capture_on_commit_callbacks, acting_user=staff, revision=dry_env["branch"],
              machines=["prod/web1"])
    assert job.rev_label == dry_env["branch"] and job.machines == ["prod/web1"] and job.state == "succeeded"
    with pytest.raises(dryrun.BadRevision):
        dryrun.dryrun_start(acting_user=staff, revision="no-such-branch")
    with pytest.raises(dryrun.BadRevision):
        dryrun.dryrun_start(acting_user=staff, revision="main", machines=["prod"])


@pytest.mark.parametrize("role,allowed", [("viewer", False), ("requester", True), ("approver", True), ("staff", True)])
def test_permission_per_role(dry_env, cr, all_roles, role, allowed, django_capture_on_commit_callbacks):
    user = all_roles[role]
    if not allowed:
        with pytest.raises(dryrun.DeployForbidden):
            dryrun.dryrun_start(acting_user=user, change=cr)
        with pytest.raises(dryrun.DeployForbidden):
            dryrun.dryrun_start(acting_user=user, revision="main")
        assert not Job.objects.exists()
        return
    job = run(django_capture_on_commit_callbacks, acting_user=user, change=cr, machines=["prod/db1"])
    assert job.state == "succeeded"


def test_tasks_are_enqueued_only_after_commit(dry_env, cr, requester, django_capture_on_commit_callbacks,
                                               monkeypatch):
    from deploys import tasks

    sent = []
    monkeypatch.setattr(tasks.dryrun_dispatch, "delay", lambda job_id: sent.append(job_id))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = dryrun.dryrun_start(acting_user=requester, change=cr)
    assert sent == [] and len(callbacks) == 1
    callbacks[0]()
    assert sent == [job.pk]
    job.refresh_from_db()
    assert job.state == "queued"


def test_cancel(dry_env, cr, requester, viewer, approver, django_capture_on_commit_callbacks, settings):
    with django_capture_on_commit_callbacks(execute=False):
        job = dryrun.dryrun_start(acting_user=requester, change=cr)
    with pytest.raises(dryrun.DeployForbidden):
        dryrun.dryrun_cancel(job=job, acting_user=viewer)
    job = dryrun.dryrun_cancel(job=job, acting_user=requester)
    assert job.state == "cancelled" and job.finished_at
    # A worker picking the job up later does nothing.
    from deploys import tasks

    assert tasks.dryrun_dispatch.delay(job.pk).get() == 0
    tasks.dryrun_batch.delay(job.pk, ["prod/web1"]).get()
    assert not job.plans.exists()
    with pytest.raises(dryrun.DeployConflict):
        dryrun.dryrun_cancel(job=job, acting_user=approver)
    assert ChangeEvent.objects.filter(change=cr, action="dry-run-cancelled").count() == 1


def test_batches_split_and_redelivery_is_idempotent(dry_env, cr, requester, settings,
                                                     django_capture_on_commit_callbacks):
    settings.CMDB_DRY_RUN_BATCH = 1
    job = run(django_capture_on_commit_callbacks, acting_user=requester, change=cr)
    assert job.state == "succeeded" and job.plans.count() == 4
    # A batch delivered twice (acks_late after a lost worker) changes nothing.
    Job.objects.filter(pk=job.pk).update(state="running")
    dryrun.dryrun_run_batch(job_id=job.pk, machine_paths=["prod/web1"])
    job.refresh_from_db()
    assert job.machines_done == 4 and job.plans.count() == 4


def test_timed_out_batch_and_reaper(dry_env, cr, requester, settings, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    with django_capture_on_commit_callbacks(execute=False):
        job = dryrun.dryrun_start(acting_user=requester, change=cr)
    dryrun.dryrun_begin(job_id=job.pk)
    dryrun.dryrun_fail_machines(job_id=job.pk, machine_paths=job.machines, reason="timed out")
    job.refresh_from_db()
    assert job.state == "succeeded" and set(job.plans.values_list("status", flat=True)) == {"error"}

    with django_capture_on_commit_callbacks(execute=False):
        stale = dryrun.dryrun_start(acting_user=requester, change=cr)
    parts = dryrun.dryrun_begin(job_id=stale.pk)
    dryrun.dryrun_run_batch(job_id=stale.pk, machine_paths=stale.machines[:1])  # then the worker died
    assert dryrun.dryrun_reap_stale() == 0
    Job.objects.filter(pk=stale.pk).update(started_at=timezone.now() - timedelta(hours=1))
    assert dryrun.dryrun_reap_stale() == 0  # old, but it made progress a moment ago
    Job.objects.filter(pk=stale.pk).update(progress_at=timezone.now() - timedelta(hours=1))
    assert dryrun.dryrun_reap_stale() == 1
    stale.refresh_from_db()
    assert stale.state == "incomplete" and "without a plan" in stale.error
    assert stale.machines_missing == stale.machines[1:] and parts
    # A batch that arrives after the job was closed writes nothing into it.
    dryrun.dryrun_run_batch(job_id=stale.pk, machine_paths=stale.machines[1:])
    assert stale.plans.count() == 1


def api_client(user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(user)
    return client


def test_api_and_job_page(dry_env, cr, requester, viewer, client_for, django_capture_on_commit_callbacks):
    client = api_client(requester)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/api/changes/{cr.pk}/dry-run/", {}, format="json")
    assert response.status_code == 202, response.content
    job_id = response.json()["id"]
    assert response["Location"] == f"http://testserver/api/jobs/{job_id}/"
    assert response.json()["url"] == f"http://testserver/jobs/{job_id}/"
    data = client.get(f"/api/jobs/{job_id}/").json()
    assert data["state"] == "succeeded" and data["machines_done"] == 4
    assert {p["machine_path"]: p["status"] for p in data["plans"]}["prod/web1"] == "planned"
    assert data["log"]

    with django_capture_on_commit_callbacks(execute=False):
        response = client.post("/api/dry-runs/", {"revision": "main", "machines": ["prod/db1"]},
                               format="json")
    assert response.status_code == 202 and response.json()["state"] == "queued"
    queued = response.json()["id"]
    assert response["Location"] == f"http://testserver/api/jobs/{queued}/"
    assert api_client(viewer).post(f"/api/jobs/{queued}/cancel/").status_code == 403
    assert api_client(viewer).post("/api/dry-runs/", {"revision": "main"},
                                   format="json").status_code == 403
    assert client.post("/api/dry-runs/", {}, format="json").status_code == 400
    assert client.post("/api/dry-runs/", {"revision": "nope"}, format="json").status_code == 400
    assert client.post(f"/api/jobs/{queued}/cancel/").json()["state"] == "cancelled"
    assert client.post(f"/api/jobs/{queued}/cancel/").status_code == 409
    assert client.get("/api/jobs/999999/").status_code == 404

    page = client_for(viewer).get(f"/jobs/{job_id}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "prod/web1" in html and "worker_processes" in html and "token-value" not in html
    assert 'hx-trigger="every 2s"' not in html  # finished: no more polling
    partial = client_for(viewer).get(f"/jobs/{queued}/", headers={"HX-Request": "true"})
    assert partial.status_code == 200 and "<html" not in partial.content.decode()


def logged_in(user):
    from django.test import Client

    client = Client()  # CSRF is Django's, tested elsewhere
    client.force_login(user)
    return client


def test_dry_run_button(dry_env, cr, requester, viewer, client_for, django_capture_on_commit_callbacks):
    assert logged_in(viewer).post(f"/jobs/change/{cr.pk}/dry-run/").status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        response = logged_in(requester).post(f"/jobs/change/{cr.pk}/dry-run/")
    job = Job.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/jobs/{job.pk}/"
    page = client_for(requester).get(response["Location"]).content.decode()
    assert 'data-state="succeeded"' in page and "systemctl reload nginx" in page


def test_soft_time_limit_marks_the_batch_timed_out(dry_env, cr, requester, monkeypatch,
                                                  django_capture_on_commit_callbacks):
    from celery.exceptions import SoftTimeLimitExceeded

    from deploys import tasks

    def slow(**kwargs):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(dryrun, "dryrun_run_batch", slow)
    job = run(django_capture_on_commit_callbacks, acting_user=requester, change=cr)
    assert job.state == "succeeded"
    assert {p.status for p in job.plans.all()} == {"error"}
    assert all(p.reason.startswith("timed out") for p in job.plans.all())
    assert tasks.dryrun_batch.soft_time_limit < tasks.dryrun_batch.time_limit
    assert tasks.dryrun_batch.acks_late and tasks.dryrun_batch.reject_on_worker_lost


def test_change_page_snippet_renders(dry_env, cr, requester, viewer, rf, django_capture_on_commit_callbacks):
    """The snippet proposed for change_detail.html (kept in the report) renders with the tags."""
    from django.template import Context, Template

    snippet = (
        "{% load deploys_tags %}{% can_dry_run change as may %}{% recent_dry_runs change as jobs %}"
        "{% if may %}BUTTON{% endif %}{% for j in jobs %}[{{ j.pk }} {{ j.state }}]{% endfor %}"
    )
    run(django_capture_on_commit_callbacks, acting_user=requester, change=cr, machines=["prod/db1"])
    request = rf.get("/")
    request.user = requester
    assert Template(snippet).render(Context({"change": cr, "request": request})).startswith("BUTTON[")
    request.user = viewer
    assert "BUTTON" not in Template(snippet).render(Context({"change": cr, "request": request}))
