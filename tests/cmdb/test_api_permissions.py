"""Who may call what: every API endpoint × every role, as one matrix.

API endpoints are called with ``Authorization: Token`` (the way scripts use the API); anonymous
callers get DRF's 401 JSON, never the login page. The HTML docs are for people logged in to the
portal: they use the session, and anonymous visitors are sent to the login page.
"""

from __future__ import annotations

import pytest

from tests.cmdb.apiutil import (
    fast_password_hashing,  # noqa: F401 (autouse)
    token_client,
)

pytestmark = pytest.mark.django_db

ROLES = ["anonymous", "viewer", "requester", "approver", "staff"]

# (method, url, auth, expected status per role)
READ = {"anonymous": 401, "viewer": 200, "requester": 200, "approver": 200, "staff": 200}
STAFF_WRITE = {"anonymous": 401, "viewer": 403, "requester": 403, "approver": 403, "staff": 202}
DOCS = {"anonymous": 302, "viewer": 200, "requester": 200, "approver": 200, "staff": 200}

MATRIX = [
    ("GET", "/api/", "token", READ),
    ("GET", "/api/environments/", "token", READ),
    ("GET", "/api/environments/production/", "token", READ),
    ("GET", "/api/machines/?environment=production", "token", READ),
    ("GET", "/api/machines/production/web1/", "token", READ),
    ("GET", "/api/applications/?environment=production&machine=web1", "token", READ),
    ("GET", "/api/applications/production/web1/nginx/", "token", READ),
    ("GET", "/api/applications/production/web1/nginx/?rev=main", "token", READ),
    ("GET", "/api/commons/", "token", READ),
    ("GET", "/api/commons/production/_common/", "token", READ),
    ("GET", "/api/lint/", "token", READ),
    ("GET", "/api/search/?q=nginx", "token", READ),
    ("GET", "/api/sync/", "token", READ),
    ("POST", "/api/sync/", "token", STAFF_WRITE),
    ("GET", "/api/schema/?format=json", "token", READ),
    ("GET", "/api/docs/", "session", DOCS),
    ("GET", "/api/redoc/", "session", DOCS),
]


def _client(request, role: str, auth: str):
    user = None if role == "anonymous" else request.getfixturevalue(role)
    if auth == "token":
        return token_client(user)
    client = request.getfixturevalue("client")
    if user is not None:
        client.force_login(user)
    return client


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "url", "auth", "expected"), MATRIX, ids=[f"{m} {u}" for m, u, _, _ in MATRIX])
def test_endpoint_access_by_role(db, request, role, method, url, auth, expected,
                                 django_capture_on_commit_callbacks):
    if role != "anonymous":  # anonymous callers are turned away before anything is read
        request.getfixturevalue("synced")
    client = _client(request, role, auth)
    with django_capture_on_commit_callbacks(execute=False):  # a queued sync is not run here
        r = client.generic(method, url)

    assert r.status_code == expected[role], r.content[:300]
    if r.status_code == 302:
        assert r["Location"].startswith("/accounts/login/")
    elif r.status_code >= 400:
        assert r["Content-Type"].endswith("json")  # the schema's 401 is OpenAPI-flavoured JSON
        assert r.json()["detail"]
    if r.status_code == 401:
        assert r["WWW-Authenticate"] == "Token"  # DRF's answer, not the login page


@pytest.mark.parametrize("role", ROLES)
def test_webhook_ignores_the_caller_role(db, request, role):
    """The hook's only credential is the shared secret: no role gets in without it."""
    r = _client(request, role, "token").post("/api/hooks/push/", b"{}", content_type="application/json")
    assert r.status_code == 403
    assert r.json() == {"detail": "Missing or wrong webhook signature."}
