"""The push webhook: GitHub HMAC or GitLab token, never a session or a token; it triggers a sync."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from django.test import Client

from cmdb import services
from cmdb.models import SyncRun
from tests.cmdb.apiutil import (
    fast_password_hashing,  # noqa: F401 (autouse)
    github_signature,
    token_client,
)

pytestmark = pytest.mark.django_db

HOOK = "/api/hooks/push/"
SECRET = "test-webhook-secret"  # what tests/conftest.py configures


def push_body(ref: str = "refs/heads/main", after: str = "0" * 40) -> bytes:
    return json.dumps({"ref": ref, "after": after, "repository": {"full_name": "ops/config"}}).encode()


def github(body: bytes, *, secret: str = SECRET, event: str = "push", client: Client | None = None, **kwargs):
    headers = {"X-Hub-Signature-256": github_signature(body, secret), "X-GitHub-Event": event}
    return (client or Client(enforce_csrf_checks=True)).post(
        HOOK, body, content_type="application/json", headers=headers, **kwargs
    )


@pytest.fixture
def pushed(synced):
    """A commit on origin that the index does not have yet."""
    synced.write("production/web1/nginx/README.md", "# nginx\n\nPushed after the last sync.\n")
    return synced.commit("pushed")


def test_valid_github_signature_syncs_to_the_new_origin_commit(pushed, django_capture_on_commit_callbacks):
    body = push_body(after=pushed)
    with django_capture_on_commit_callbacks(execute=True):
        r = github(body)

    assert r.status_code == 202
    assert r.json() == {
        "status": "queued", "event": "push", "ref": "refs/heads/main", "branch": "main", "indexed_branch": "main",
    }
    assert services.indexed_sha() == pushed
    run = SyncRun.objects.order_by("-pk").first()
    assert run.trigger == "webhook" and run.status == "succeeded" and run.to_sha == pushed


def test_push_to_another_branch_still_syncs_and_reports_the_ref(synced, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        r = github(push_body(ref="refs/heads/feature/tls"))

    assert r.status_code == 202
    assert r.json()["ref"] == "refs/heads/feature/tls" and r.json()["branch"] == "feature/tls"
    assert len(callbacks) == 1
    assert SyncRun.objects.filter(trigger="webhook").count() == 1


def test_tag_push_reports_no_branch(synced, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        r = github(push_body(ref="refs/tags/v1"))
    assert r.status_code == 202 and r.json()["branch"] is None and r.json()["ref"] == "refs/tags/v1"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Hub-Signature-256": github_signature(push_body(), "another-secret")},
        {"X-Hub-Signature-256": github_signature(push_body(), SECRET).removeprefix("sha256=")},
        {"X-Hub-Signature-256": "sha1=" + github_signature(push_body(), SECRET).removeprefix("sha256=")},
        {"X-Hub-Signature-256": github_signature(push_body() + b" ", SECRET)},
        {"X-Gitlab-Token": "wrong"},
        {"X-Gitlab-Token": SECRET + "x"},
    ],
    ids=["missing", "wrong-secret", "no-prefix", "sha1", "other-body", "gitlab-wrong", "gitlab-longer"],
)
def test_missing_or_wrong_signature_is_403(synced, headers, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        r = Client().post(HOOK, push_body(), content_type="application/json", headers=headers)

    assert r.status_code == 403
    assert r.json() == {"detail": "Missing or wrong webhook signature."}
    assert callbacks == []


def test_gitlab_token_is_accepted(pushed, django_capture_on_commit_callbacks):
    body = json.dumps({"object_kind": "push", "ref": "refs/heads/main", "after": pushed}).encode()
    with django_capture_on_commit_callbacks(execute=True):
        r = Client().post(HOOK, body, content_type="application/json",
                          headers={"X-Gitlab-Token": SECRET, "X-Gitlab-Event": "Push Hook"})

    assert r.status_code == 202
    assert r.json()["event"] == "Push Hook" and r.json()["branch"] == "main"
    assert services.indexed_sha() == pushed


def test_hook_is_disabled_without_a_secret(synced, settings):
    settings.CMDB_WEBHOOK_SECRET = ""
    r = Client().post(HOOK, push_body(), content_type="application/json",
                      headers={"X-Hub-Signature-256": github_signature(push_body(), "")})
    assert r.status_code == 503
    assert "CMDB_WEBHOOK_SECRET" in r.json()["detail"]


def test_github_ping_is_answered_without_a_sync(synced, django_capture_on_commit_callbacks):
    body = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 1}).encode()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        r = github(body, event="ping")

    assert r.status_code == 200
    assert r.json()["status"] == "pong"
    assert callbacks == []


@pytest.mark.parametrize("body", [b"{not json", b"", b"\xff\xfe", b"[1, 2]", b'"main"'])
def test_malformed_json_is_400(synced, body):
    r = github(body)
    assert r.status_code == 400
    assert r.json()["detail"].startswith("The body")


def test_form_encoded_github_payload_is_accepted(synced, django_capture_on_commit_callbacks):
    body = urlencode({"payload": push_body().decode()}).encode()
    headers = {"X-Hub-Signature-256": github_signature(body, SECRET), "X-GitHub-Event": "push"}
    with django_capture_on_commit_callbacks(execute=False):
        r = Client().post(HOOK, body, content_type="application/x-www-form-urlencoded", headers=headers)
    assert r.status_code == 202 and r.json()["ref"] == "refs/heads/main"


def test_hook_needs_no_login_and_no_csrf_token_even_with_a_session(synced, staff, client_for,
                                                                   django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        r = github(push_body(), client=client_for(staff))  # a logged-in browser, CSRF checks on
    assert r.status_code == 202


def test_session_or_token_do_not_replace_the_signature(synced, staff, client_for):
    for client in (client_for(staff), token_client(staff)):
        r = client.post(HOOK, push_body(), content_type="application/json")
        assert r.status_code == 403


def test_hook_answers_only_post(synced):
    r = Client().get(HOOK)
    assert r.status_code == 405 and r.json()["detail"]


def test_oversized_body_is_refused_before_it_is_read(synced):
    r = Client().post(HOOK, b"{}", content_type="application/json",
                      headers={"X-Hub-Signature-256": github_signature(b"{}", SECRET)},
                      CONTENT_LENGTH=str(26 * 1024 * 1024))
    assert r.status_code == 413


def test_a_queued_delivery_answers_with_the_absolute_location_of_the_sync_state(pushed):
    response = github(push_body(after=pushed))
    assert response.status_code == 202 and response["Location"] == "http://testserver/api/sync/"
