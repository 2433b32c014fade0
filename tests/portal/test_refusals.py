"""A refused action reaches the browser one way: the refusal page, with the service's status and message."""

from __future__ import annotations

import pytest
from django.urls import reverse

from deploys.models import Job

pytestmark = pytest.mark.django_db


def test_a_refusal_is_a_page_with_the_services_status_message_and_a_way_back(client, viewer):
    client.force_login(viewer)
    back = "http://testserver" + reverse("audits:audit_list")
    response = client.post(reverse("audits:audit_start"), {"scope": ""}, HTTP_REFERER=back)
    assert response.status_code == 403
    assert [t.name for t in response.templates][0] == "refused.html"
    page = response.content.decode()
    assert "Only staff may start audits." in page and "Not allowed" in page
    assert f'href="{back}"' in page


def test_the_way_back_never_leads_to_another_site(client, viewer):
    client.force_login(viewer)
    response = client.post(reverse("audits:audit_start"), {"scope": ""}, HTTP_REFERER="https://evil.example/")
    assert response.status_code == 403
    assert "evil.example" not in response.content.decode()


def test_a_state_conflict_is_409_and_an_htmx_request_gets_only_the_message(client, staff):
    job = Job.objects.create(revision="a" * 40, requested_by=staff, state=Job.State.SUCCEEDED)
    client.force_login(staff)
    response = client.post(reverse("jobs:job_cancel", kwargs={"pk": job.pk}))
    assert response.status_code == 409 and b"Cannot cancel a dry run that is succeeded." in response.content
    partial = client.post(reverse("jobs:job_cancel", kwargs={"pk": job.pk}), HTTP_HX_REQUEST="true")
    assert partial.status_code == 409 and b"<html" not in partial.content and b"action-error" in partial.content


def test_the_api_answers_the_same_refusal_as_json(client, staff):
    job = Job.objects.create(revision="a" * 40, requested_by=staff, state=Job.State.SUCCEEDED)
    client.force_login(staff)
    response = client.post(f"/api/jobs/{job.pk}/cancel/")
    assert response.status_code == 409
    assert response.json() == {"detail": "Cannot cancel a dry run that is succeeded."}
