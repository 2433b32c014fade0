"""Abuse: failed logins are limited per account and per address, the API throttles anonymous callers,
wrong tokens and each user (429 with Retry-After), and the push webhook refuses unsigned bodies before
reading them and acts on a signed delivery once."""

from __future__ import annotations

import io
import json

import pytest
from axes.models import AccessAttempt
from django.core.management import call_command
from django.test import Client

from cmdb.models import SyncRun, WebhookDelivery
from tests.cmdb.apiutil import github_signature, token_client

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery-staple"  # tests/conftest.py
HOOK = "/api/hooks/push/"
SECRET = "test-webhook-secret"


def login(client: Client, username: str, password: str, ip: str = "10.9.8.7"):
    client.get("/accounts/login/", REMOTE_ADDR=ip)
    return client.post("/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_wrong_passwords_lock_the_account_and_the_right_one_then_fails_with_a_clear_page(viewer, settings):
    settings.AXES_FAILURE_LIMIT = 5
    c = Client()
    for _ in range(4):
        assert login(c, viewer.username, "wrong").status_code == 200  # the form again, with its error
    assert login(c, viewer.username, "wrong").status_code == 429  # the fifth locks
    locked = login(c, viewer.username, PASSWORD)
    assert locked.status_code == 429
    assert int(locked["Retry-After"]) == settings.CMDB_LOGIN_COOLOFF_MINUTES * 60
    assert b"Sign-in locked" in locked.content and b"15 minutes" in locked.content
    assert "_auth_user_id" not in c.session


def test_the_account_is_locked_from_every_address(viewer, settings):
    settings.AXES_FAILURE_LIMIT = 3
    for i in range(3):
        login(Client(), viewer.username, "wrong", ip=f"10.0.0.{i + 1}")  # a different address each time
    assert login(Client(), viewer.username, PASSWORD, ip="10.0.0.99").status_code == 429


def test_an_address_is_locked_whatever_account_it_tries(viewer, approver, settings):
    settings.AXES_FAILURE_LIMIT = 3
    for name in ("a", "b", "c"):
        login(Client(), name, "wrong", ip="10.1.1.1")
    assert login(Client(), viewer.username, PASSWORD, ip="10.1.1.1").status_code == 429
    assert login(Client(), approver.username, PASSWORD, ip="10.1.1.2").status_code == 302  # elsewhere: fine


def test_a_forged_forwarded_for_header_does_not_escape_the_lockout(viewer, settings):
    settings.AXES_FAILURE_LIMIT = 3
    for i in range(3):
        c = Client(HTTP_X_FORWARDED_FOR=f"203.0.113.{i}")
        login(c, f"user{i}", "wrong", ip="10.2.2.2")
    assert login(Client(HTTP_X_FORWARDED_FOR="198.51.100.1"), viewer.username, PASSWORD,
                 ip="10.2.2.2").status_code == 429


def test_staff_unlock_with_the_management_command(viewer, settings):
    settings.AXES_FAILURE_LIMIT = 2
    for _ in range(2):
        login(Client(), viewer.username, "wrong")
    assert AccessAttempt.objects.exists()
    call_command("axes_reset", stdout=io.StringIO())
    assert login(Client(), viewer.username, PASSWORD).status_code == 302


def test_a_successful_login_resets_the_count(viewer, settings):
    settings.AXES_FAILURE_LIMIT = 3
    c = Client()
    for _ in range(2):
        login(c, viewer.username, "wrong")
    assert login(c, viewer.username, PASSWORD).status_code == 302
    c = Client()
    for _ in range(2):
        login(c, viewer.username, "wrong")
    assert login(c, viewer.username, PASSWORD).status_code == 302


@pytest.fixture
def low_rates(monkeypatch):
    from rest_framework.throttling import SimpleRateThrottle

    # Throttles read this class attribute when they are made: patched here, restored after the test.
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES",
                        {**SimpleRateThrottle.THROTTLE_RATES, "anon": "3/min", "user": "5/min", "failed_token": "3/min"})


def test_anonymous_api_callers_are_throttled_per_address(synced, low_rates):
    c = Client()
    codes = [c.get("/api/environments/").status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    r = c.get("/api/environments/")
    assert r.status_code == 429 and int(r["Retry-After"]) > 0
    assert r.json()["detail"]


def test_wrong_tokens_are_throttled_per_address_even_before_the_right_one(synced, viewer, low_rates):
    bad = Client(headers={"Authorization": "Token " + "0" * 40})
    assert [bad.get("/api/environments/").status_code for _ in range(3)] == [401, 401, 401]
    r = bad.get("/api/environments/")
    assert r.status_code == 429 and int(r["Retry-After"]) > 0
    assert token_client(viewer).get("/api/environments/").status_code == 429  # same address: wait


def test_each_user_is_throttled(synced, viewer, approver, low_rates):
    api = token_client(viewer)
    assert [api.get("/api/environments/").status_code for _ in range(6)] == [200] * 5 + [429]
    assert token_client(approver).get("/api/environments/").status_code == 200


def test_a_bad_rate_in_the_environment_stops_start_up(monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    from portal.env import env_rate

    monkeypatch.setenv("CMDB_API_RATE_USER", "lots")
    with pytest.raises(ImproperlyConfigured, match="CMDB_API_RATE_USER"):
        env_rate("CMDB_API_RATE_USER", "60/min")


class _Exploding(io.BytesIO):
    """A request body that fails the test if the view reads it."""

    def read(self, *args):
        raise AssertionError("the body was read")


def test_an_unsigned_body_is_refused_before_it_is_read(synced):
    from django.test import RequestFactory

    from cmdb.api.webhook import PushWebhookView

    request = RequestFactory().post(HOOK, b"x" * 1024, content_type="application/json")
    request._stream = _Exploding()
    request.META["CONTENT_LENGTH"] = str(20 * 1024 * 1024)
    response = PushWebhookView.as_view()(request)
    assert response.status_code == 403
    r = Client().post(HOOK, b"{}", content_type="application/json", headers={"X-Gitlab-Token": "wrong"})
    assert r.status_code == 403


def test_a_replayed_signed_delivery_is_answered_without_another_sync(synced, django_capture_on_commit_callbacks):
    body = json.dumps({"ref": "refs/heads/main", "after": "1" * 40}).encode()
    headers = {"X-Hub-Signature-256": github_signature(body, SECRET), "X-GitHub-Event": "push",
               "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}
    runs = SyncRun.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        first = Client().post(HOOK, body, content_type="application/json", headers=headers)
    assert first.status_code == 202
    assert SyncRun.objects.count() == runs + 1
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        again = Client().post(HOOK, body, content_type="application/json", headers=headers)
        new_id = Client().post(HOOK, body, content_type="application/json",
                               headers={**headers, "X-GitHub-Delivery": "another-id"})
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert new_id.status_code == 200 and new_id.json()["status"] == "duplicate"  # same signed body
    assert callbacks == [] and SyncRun.objects.count() == runs + 1
    assert WebhookDelivery.objects.count() == 2


def test_a_gitlab_event_uuid_is_remembered(synced, django_capture_on_commit_callbacks):
    headers = {"X-Gitlab-Token": SECRET, "X-Gitlab-Event": "Push Hook", "X-Gitlab-Event-UUID": "uuid-1"}
    first = Client().post(HOOK, b'{"ref": "refs/heads/main"}', content_type="application/json", headers=headers)
    replay = Client().post(HOOK, b'{"ref": "refs/heads/main", "x": 1}', content_type="application/json",
                           headers=headers)
    assert first.status_code == 202
    assert replay.status_code == 200 and replay.json()["status"] == "duplicate"
