"""The jobs list (page and API), the release box of the change request page, deploy and restore buttons."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from deploys import rollout
from deploys import services as dryruns
from deploys.models import Job, MachinePlan
from tests.changes.ui import post


def count(client, url) -> int:
    client.get(url)
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def make_jobs(user, n: int, **kwargs) -> list[Job]:
    jobs = []
    for i in range(n):
        job = Job.objects.create(revision=f"{i:040d}", requested_by=user, state=Job.State.SUCCEEDED,
                                 machines=["prod/web1"], machines_total=1, machines_done=1, **kwargs)
        MachinePlan.objects.create(job=job, machine_path="prod/web1", status="planned")
        jobs.append(job)
    return jobs


@pytest.mark.django_db
def test_the_jobs_list_filters_and_costs_the_same_whatever_the_number_of_jobs(staff, viewer, client_for, api_for):
    make_jobs(staff, 2)
    deploy = make_jobs(staff, 1, kind=Job.Kind.DEPLOY)[0]
    client = client_for(viewer)
    page_cost, api_cost = count(client, reverse("jobs:job_list")), count(api_for(viewer), "/api/jobs/")
    make_jobs(staff, 30)
    assert count(client, reverse("jobs:job_list")) == page_cost  # session, user, sync state, count, page
    assert count(api_for(viewer), "/api/jobs/") == api_cost
    assert page_cost <= 6 and api_cost <= 3
    page = client.get(reverse("jobs:job_list"), {"kind": "deploy"}).content.decode()
    assert f'data-job="{deploy.pk}"' in page and page.count("data-job=") == 1
    body = api_for(viewer).get("/api/jobs/", {"kind": "deploy", "machine": "prod/web1"}).json()
    assert [j["id"] for j in body["results"]] == [deploy.pk] and body["results"][0]["kind"] == "deploy"
    assert api_for(viewer).get("/api/jobs/", {"machine": "nope/none"}).json()["count"] == 0
    assert api_for(viewer).get("/api/jobs/", {"state": "bogus"}).status_code == 400
    assert api_for(viewer).get("/api/jobs/", {"change": "x"}).status_code == 400


@pytest.mark.django_db
def test_the_jobs_list_needs_a_login(client):
    assert client.get(reverse("jobs:job_list")).status_code == 302
    assert client.get("/api/jobs/").status_code in (401, 403)


def test_the_change_page_offers_the_reviewed_plan_to_approvers_and_deploys_it(
        released, approver, requester, viewer, client_for, django_capture_on_commit_callbacks):
    page = client_for(approver).get(released.get_absolute_url()).content.decode()
    assert "Plan the release" in page and 'data-action="deploy"' not in page
    with django_capture_on_commit_callbacks(execute=True):
        plan = dryruns.dryrun_start(acting_user=approver, change=released)
    page = client_for(approver).get(released.get_absolute_url()).content.decode()
    assert f"Deploy plan {plan.pk}" in page and 'data-origin-count="conflict">2 conflict(s)' in page
    assert 'data-action="deploy"' not in client_for(requester).get(released.get_absolute_url()).content.decode()
    assert 'data-action="deploy"' not in client_for(viewer).get(released.get_absolute_url()).content.decode()
    url = reverse("jobs:change_deploy", kwargs={"pk": released.pk})
    assert post(client_for(viewer), url, {"plan": plan.pk}).status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client_for(approver), url, {"plan": plan.pk, "confirm_conflicts": "on"})
    job = Job.objects.get(kind=Job.Kind.DEPLOY)
    assert response.status_code == 302 and response["Location"] == job.get_absolute_url()
    assert job.confirm_conflicts and Job.objects.get(pk=job.pk).state == "succeeded"
    detail = client_for(viewer).get(job.get_absolute_url()).content.decode()
    assert "Deploy " + str(job.pk) in detail and "data-reload-results" in detail and 'data-action="restore"' not in detail


def test_a_failed_deploy_offers_restore_to_approvers(released, approver, viewer, client_for,
                                                   django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        dryruns.dryrun_start(acting_user=approver, change=released)
    with django_capture_on_commit_callbacks(execute=True):
        job = rollout.deploy_start(acting_user=approver, change=released)
    Job.objects.filter(pk=job.pk).update(state=Job.State.HALTED)
    assert 'data-action="restore"' in client_for(approver).get(job.get_absolute_url()).content.decode()
    assert 'data-action="restore"' not in client_for(viewer).get(job.get_absolute_url()).content.decode()
    url = reverse("jobs:job_restore", kwargs={"pk": job.pk})
    assert post(client_for(viewer), url).status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client_for(approver), url)
    restore = Job.objects.get(kind=Job.Kind.RESTORE)
    assert response.status_code == 302 and restore.plan_job_id == job.pk and restore.state == "succeeded"
