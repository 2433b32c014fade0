"""What a CI pipeline relies on: posting a change request for a branch on every push gives the branch's
open one back (200, same id, nothing written), and every 201 says where the new resource lives
(``Location`` and the body's URLs, absolute)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from changes import services
from changes.models import ChangeEvent, ChangeRequest
from tests.changes.apiutil import TEST_BRANCH, TLS_BRANCH, token_client
from tests.changes.ui import post as ui_post
from tests.fixtures.windows import around_now_iso

pytestmark = pytest.mark.django_db


def post(client, url, data=None):
    return client.post(url, data if data is not None else "", content_type="application/json")


def open_change(client, branch=TEST_BRANCH, title="From the pipeline"):
    return post(client, "/api/changes/", {"branch": branch, "title": title, "type": "normal", "risk": "low",
                                          **around_now_iso()})


def test_posting_a_branch_twice_answers_its_open_change_request(branch_repo, requester, approver):
    first = open_change(token_client(requester))
    assert first.status_code == 201, first.content
    cr = ChangeRequest.objects.get()
    assert first["Location"] == f"http://testserver/api/changes/{cr.pk}/"
    assert first.json()["url"] == f"http://testserver/changes/{cr.pk}/"

    again = open_change(token_client(approver), title="Another title")
    assert again.status_code == 200, again.content
    assert again.json()["id"] == cr.pk and again.json()["title"] == "From the pipeline"
    assert not again.has_header("Location")
    assert ChangeRequest.objects.count() == 1
    assert ChangeEvent.objects.filter(change=cr, action="created").count() == 1


def test_a_submitted_change_is_still_the_open_one(branch_repo, requester):
    client = token_client(requester)
    cr_id = open_change(client).json()["id"]
    assert post(client, f"/api/changes/{cr_id}/submit/").status_code == 200
    again = open_change(client)
    assert again.status_code == 200 and again.json()["id"] == cr_id and again.json()["state"] == "submitted"


def test_a_closed_change_leaves_room_for_a_new_one(branch_repo, requester):
    client = token_client(requester)
    old = open_change(client).json()["id"]
    assert post(client, f"/api/changes/{old}/withdraw/").status_code == 200
    new = open_change(client)
    assert new.status_code == 201 and new.json()["id"] != old
    assert ChangeRequest.objects.filter(branch=TEST_BRANCH).count() == 2


def test_the_web_form_lands_on_the_open_change_request_too(branch_repo, requester, client_for):
    cr, _ = services.change_get_or_create(acting_user=requester, branch=TEST_BRANCH, title="First")
    client = client_for(requester)
    response = ui_post(client, reverse("changes:change_create"),
                       {"branch": TEST_BRANCH, "title": "Again", "type": "normal", "risk": "low"})
    assert response.status_code == 302 and response["Location"] == cr.get_absolute_url()
    assert ChangeRequest.objects.count() == 1


def test_every_201_of_the_change_api_has_an_absolute_location(branch_repo, requester, staff):
    rick, sam = token_client(requester), token_client(staff)
    cr_id = open_change(rick, branch=TLS_BRANCH).json()["id"]
    comment = post(rick, f"/api/changes/{cr_id}/comments/", {"body": "Looks fine"})
    assert comment.status_code == 201
    assert comment["Location"] == f"http://testserver/api/changes/{cr_id}/comments/"
    baseline = post(sam, "/api/baselines/", {"name": "baseline-2026-11"})
    assert baseline.status_code == 201 and baseline["Location"] == "http://testserver/api/baselines/"


def test_the_schema_documents_both_answers_of_opening_a_change(db, viewer):
    schema = token_client(viewer).get("/api/schema/?format=json").json()
    create = schema["paths"]["/api/changes/"]["post"]
    assert {"200", "201"} <= set(create["responses"])
    assert "one open change request" in create["description"]


def test_a_branch_name_too_long_for_the_database_is_a_400(db, requester):
    r = post(token_client(requester), "/api/changes/", {"branch": "b" * 256, "title": "Long"})
    assert r.status_code == 400 and r.json()["detail"].startswith("branch")
