"""The notification pages and API: staff only, secrets never shown back, the *send test* button."""

from __future__ import annotations

import pytest

from notifications import services
from notifications.models import Delivery, Target

pytestmark = pytest.mark.django_db

SECRET = "a-secret-nobody-may-read-back-0042"
TOKEN_URL_PATH = "/services/T000/B000/tokenpart"


@pytest.fixture
def target(staff, http_receiver):
    return services.target_create(acting_user=staff, name="ops hook", kind="webhook", secret=SECRET,
                                  url=http_receiver.url + TOKEN_URL_PATH, events=["cr-approved"])


PAGES = ["/notifications/", "/notifications/new/", "/notifications/{pk}/", "/notifications/{pk}/edit/"]


@pytest.mark.parametrize("role", ["viewer", "requester", "approver"])
def test_only_staff_reach_the_pages(role, all_roles, target, client_for):
    client = client_for(all_roles[role])
    for url in PAGES:
        assert client.get(url.format(pk=target.pk)).status_code == 403, url
    for action in ("test", "delete"):
        assert client.post(f"/notifications/{target.pk}/{action}/").status_code in (403,)
    assert Target.objects.filter(pk=target.pk).exists() and not Delivery.objects.exists()


def test_staff_see_targets_and_the_log_without_secrets(staff, target, client_for):
    client = client_for(staff)
    for url in PAGES:
        response = client.get(url.format(pk=target.pk))
        assert response.status_code == 200, url
        body = response.content.decode()
        assert SECRET not in body and "tokenpart" not in body, url
    assert "ops hook" in client.get("/notifications/").content.decode()


def test_staff_create_a_webhook_and_see_its_generated_secret_once(staff, client_for, http_receiver):
    client = client_for(staff)
    client.get("/notifications/new/")
    response = client.post("/notifications/new/", {
        "name": "new hook", "kind": "webhook", "url": http_receiver.url + "/hook", "events": ["cr-submitted",
                                                                                            "deploy-failed"],
        "environments": [], "enabled": "on", "csrfmiddlewaretoken": client.cookies["csrftoken"].value,
    })
    assert response.status_code == 200
    created = Target.objects.get(name="new hook")
    assert created.events == ["cr-submitted", "deploy-failed"] and created.created_by == staff
    assert len(created.secret) >= 32 and created.secret in response.content.decode()
    assert created.secret not in client.get(created.get_absolute_url()).content.decode()


def test_the_form_refuses_what_cannot_be_delivered(staff, client_for):
    client = client_for(staff)
    client.get("/notifications/new/")
    token = client.cookies["csrftoken"].value
    for data in ({"name": "x", "kind": "webhook", "url": "file:///etc/passwd"},
                 {"name": "x", "kind": "email", "addresses": "not an address"},
                 {"name": "x", "kind": "matrix", "url": "https://matrix.example.org"},
                 {"name": "x", "kind": "webhook", "url": "http://hooks.example.org:99999999/x"},
                 {"name": "x", "kind": "webhook", "url": "http://[::1/x"},
                 {"name": "x", "kind": "webhook", "url": ""},
                 {"name": "x", "kind": "nonsense"}):
        response = client.post("/notifications/new/", {**data, "csrfmiddlewaretoken": token})
        assert response.status_code == 400, data
    assert not Target.objects.exists()


def test_editing_without_a_secret_keeps_the_stored_one(staff, target, client_for):
    client = client_for(staff)
    client.get(f"/notifications/{target.pk}/edit/")
    response = client.post(f"/notifications/{target.pk}/edit/", {
        "name": "ops hook", "kind": "webhook", "url": "", "secret": "", "events": ["cr-rejected"],
        "enabled": "on", "csrfmiddlewaretoken": client.cookies["csrftoken"].value,
    })
    assert response.status_code == 302
    target.refresh_from_db()
    assert target.secret == SECRET and target.events == ["cr-rejected"] and target.url.endswith(TOKEN_URL_PATH)


def test_send_test_delivers_and_shows_the_outcome(staff, target, client_for, http_receiver,
                                                 django_capture_on_commit_callbacks):
    client = client_for(staff)
    client.get(target.get_absolute_url())
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/notifications/{target.pk}/test/",
                               {"csrfmiddlewaretoken": client.cookies["csrftoken"].value})
    delivery = Delivery.objects.get(target=target, event="test")
    assert response.status_code == 302 and response["Location"] == f"/notifications/deliveries/{delivery.pk}/"
    [got] = http_receiver.requests
    assert got.path == TOKEN_URL_PATH and got.headers["X-CMDB-Event"] == "test"
    page = client.get(response["Location"]).content.decode()
    assert 'data-state="sent"' in page and SECRET not in page
    assert '<td>test</td>' in client.get(target.get_absolute_url()).content.decode()


def test_send_test_needs_the_csrf_token(staff, target, client_for):
    assert client_for(staff).post(f"/notifications/{target.pk}/test/").status_code == 403
    assert not Delivery.objects.exists()


def test_the_delivery_log_is_paginated_newest_first(staff, target, client_for):
    for n in range(55):
        Delivery.objects.create(target=target, event="cr-approved", dedupe_key=f"k{n}", state="sent")
    client = client_for(staff)
    first = client.get(target.get_absolute_url()).content.decode()
    assert "k54" in first and "k0<" not in first and "1 / 2" in first
    assert "k0<" in client.get(target.get_absolute_url() + "?page=2").content.decode()


# --- API -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("role", ["viewer", "requester", "approver"])
def test_the_api_is_staff_only(role, all_roles, target, api_for):
    api = api_for(all_roles[role])
    assert api.get("/api/notification-targets/").status_code == 403
    assert api.get(f"/api/notification-targets/{target.pk}/").status_code == 403
    assert api.post("/api/notification-targets/", {"name": "x", "kind": "email"}, format="json").status_code == 403
    assert api.post(f"/api/notification-targets/{target.pk}/test/").status_code == 403
    assert api.delete(f"/api/notification-targets/{target.pk}/").status_code == 403
    assert api.get("/api/notification-deliveries/").status_code == 403
    assert Target.objects.count() == 1 and not Delivery.objects.exists()


def test_staff_manage_targets_through_the_api(staff, api_for, http_receiver, django_capture_on_commit_callbacks):
    api = api_for(staff)
    response = api.post("/api/notification-targets/", {
        "name": "api hook", "kind": "webhook", "url": http_receiver.url + "/secret-path", "secret": SECRET,
        "events": ["deploy-halted"], "environments": ["production"]}, format="json")
    assert response.status_code == 201, response.json()
    data = response.json()
    assert "secret" not in data and "url" not in data and SECRET[-4:] in data["secret_masked"]
    assert data["url_masked"] == http_receiver.url + "/…"
    pk = data["id"]
    assert response["Location"] == f"http://testserver/api/notification-targets/{pk}/"
    assert api.patch(f"/api/notification-targets/{pk}/", {"enabled": False}, format="json").json()["enabled"] is False
    assert Target.objects.get(pk=pk).secret == SECRET
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/notification-targets/{pk}/test/")
    assert response.status_code == 202
    assert response["Location"] == f"http://testserver/api/notification-deliveries/{response.json()['id']}/"
    log = api.get(f"/api/notification-deliveries/?target={pk}").json()
    assert [d["event"] for d in log["results"]] == ["test"]
    assert log["results"][0]["state"] == "sent"
    assert api.get("/api/notification-deliveries/?target=99999999999999999999999").json()["results"] == []
    bad = api.post("/api/notification-targets/", {"name": "x", "kind": "webhook", "url": "ftp://x/"}, format="json")
    assert bad.status_code == 400 and "http" in bad.json()["detail"]
    dup = api.post("/api/notification-targets/", {"name": "api hook", "kind": "email", "addresses": ["a@b.org"]},
                   format="json")
    assert dup.status_code == 400
    assert api.delete(f"/api/notification-targets/{pk}/").status_code == 204
    assert not Target.objects.filter(pk=pk).exists()
