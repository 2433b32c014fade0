"""Who may call what in the change-control API: every endpoint × every role, as one matrix.

The table of README "Change control" (``changes/permissions.py``) seen from the API, with tokens.
The change request belongs to the requester; each row names the state it is put in first. Anonymous
callers get DRF's 401 JSON before anything is read; refusals are JSON with a message; the record
(``/api/events/``) has no write method at all (405).
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from changes import services
from changes.models import ChangeEvent, ChangeRequest, UnauthorizedCommit
from tests.changes.apiutil import TEST_BRANCH, origin_rev, token_client
from tests.fixtures.windows import around_now

pytestmark = pytest.mark.django_db

ROLES = ["anonymous", "viewer", "requester", "approver", "staff"]


def expect(viewer, requester, approver, staff) -> dict[str, int]:
    return {"anonymous": 401, "viewer": viewer, "requester": requester, "approver": approver, "staff": staff}


READ = expect(200, 200, 200, 200)
NO_METHOD = expect(405, 405, 405, 405)
OWNER = expect(403, 200, 403, 200)  # the requester's own CR, or staff
VOTE = expect(403, 403, 200, 200)  # approvers other than the requester
STAFF = expect(403, 403, 403, 200)
OWNER_OR_APPROVER = expect(403, 200, 200, 200)
WRITERS = expect(403, 201, 201, 201)  # requesters, approvers, staff

_start = timezone.now() + timedelta(days=30)
WINDOW = {"planned_start": _start.isoformat(), "planned_end": (_start + timedelta(hours=1)).isoformat()}

# (method, url, body, state of the requester's CR first, expected status per role). Rows whose
# request pushes to origin (implement, baselines) get a private copy of the repository; the others
# only fetch and read, and share the session's.
PUSHES = {"implement/", "/api/baselines/"}
CR = "/api/changes/{cr}/"
MATRIX = [
    ("GET", "/api/changes/", None, "draft", READ),
    ("POST", "/api/changes/", {"branch": TEST_BRANCH, "title": "New"}, "repo", WRITERS),
    ("GET", CR, None, "draft", READ),
    ("PATCH", CR, {"title": "Renamed"}, "draft", OWNER),
    ("PUT", CR, {"title": "Renamed"}, "draft", NO_METHOD),
    ("DELETE", CR, None, "draft", NO_METHOD),
    ("POST", CR + "submit/", None, "draft", OWNER),
    ("POST", CR + "approve/", {"comment": "ok"}, "submitted", VOTE),
    ("POST", CR + "reject/", {"comment": "no"}, "submitted", VOTE),
    ("POST", CR + "schedule/", WINDOW, "approved", OWNER_OR_APPROVER),
    ("POST", CR + "implement/", None, "approved", expect(403, 403, 200, 200)),
    ("POST", CR + "verify/", {"override": True, "comment": "checked by hand"}, "implemented", OWNER_OR_APPROVER),
    ("POST", CR + "close/", None, "verified", OWNER_OR_APPROVER),
    ("POST", CR + "withdraw/", None, "draft", OWNER),
    ("GET", CR + "comments/", None, "draft", READ),
    ("POST", CR + "comments/", {"body": "A question"}, "draft", WRITERS),
    ("GET", CR + "diff/", None, "draft", READ),
    ("GET", "/api/baselines/", None, "none", READ),
    ("POST", "/api/baselines/", {"name": "baseline-1"}, "repo", expect(403, 403, 403, 201)),
    ("GET", "/api/unauthorized-commits/?status=open", None, "draft", READ),
    ("GET", "/api/unauthorized-commits/{commit}/", None, "draft", READ),
    ("POST", "/api/unauthorized-commits/{commit}/acknowledge/", {"reason": "Documented"}, "draft", STAFF),
    ("POST", "/api/unauthorized-commits/{commit}/link/", {"change": "{cr}"}, "draft", STAFF),
    ("GET", "/api/events/", None, "draft", READ),
    ("GET", "/api/events/{event}/", None, "draft", READ),
    ("POST", "/api/events/", {"action": "forged"}, "none", NO_METHOD),
    ("PUT", "/api/events/{event}/", {"action": "forged"}, "draft", NO_METHOD),
    ("PATCH", "/api/events/{event}/", {"action": "forged"}, "draft", NO_METHOD),
    ("DELETE", "/api/events/{event}/", None, "draft", NO_METHOD),
]


def _setup(request, state: str, *, private_repo: bool = False) -> dict:
    """Put the requester's CR in ``state`` (fast: the service where Git matters, the ORM after release)."""
    if state == "none":
        return {"cr": 0, "commit": 0, "event": 0}
    request.getfixturevalue("branch_repo" if private_repo else "shared_branch_repo")
    if state == "repo":
        return {"cr": 0, "commit": 0, "event": 0}
    requester = request.getfixturevalue("requester")
    change = services.change_create(acting_user=requester, branch=TEST_BRANCH, title="Two workers", **around_now())
    if state != "draft":
        change = services.change_submit(change=change, acting_user=requester)
    if state not in ("draft", "submitted"):  # the test environment needs one approval
        change = services.change_approve(change=change, acting_user=request.getfixturevalue("approver2"))
    if state in ("implemented", "verified"):  # as after a release (the release itself is tested elsewhere)
        ChangeRequest.objects.filter(pk=change.pk).update(state=state, merged_sha=change.head_sha)
    commit = UnauthorizedCommit.objects.create(sha="f" * 40, summary="Hotfix", author="Ops",
                                               committed_at=timezone.now())
    event = ChangeEvent.objects.filter(change=change).first()
    return {"cr": change.pk, "commit": commit.pk, "event": event.pk}


def _fill(value, ids: dict):
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, dict):
        return {k: (int(_fill(v, ids)) if v == "{cr}" else _fill(v, ids)) for k, v in value.items()}
    return value


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "url", "body", "state", "expected"), MATRIX,
                         ids=[f"{m} {u} ({s})" for m, u, _, s, _ in MATRIX])
def test_endpoint_access_by_role(request, role, method, url, body, state, expected,
                                 django_capture_on_commit_callbacks):
    # Anonymous callers are turned away before anything is read: no setup, any id.
    private = method == "POST" and url.endswith(tuple(PUSHES))
    ids = _setup(request, state, private_repo=private) if role != "anonymous" else {"cr": 1, "commit": 1, "event": 1}
    client = token_client(None if role == "anonymous" else request.getfixturevalue(role))
    data = _fill(body, ids)

    with django_capture_on_commit_callbacks(execute=False):  # mail and the post-release sync are not run
        r = client.generic(method, _fill(url, ids), data=b"" if data is None else json.dumps(data),
                           content_type="application/json")

    assert r.status_code == expected[role], r.content[:300]
    assert r["Content-Type"] == "application/json"
    if r.status_code >= 400:
        assert r.json()["detail"]
    if r.status_code == 401:
        assert r["WWW-Authenticate"] == "Token"  # DRF's answer, not the login page
    if r.status_code == 403:
        assert r.json()["detail"].startswith(("Only", "You may not", "Viewers"))


def test_a_refused_action_changes_nothing(request, branch_repo, viewer, requester):
    """A 403 leaves the CR, its votes and the record as they were (one case of the matrix, checked deeply)."""
    ids = _setup(request, "approved", private_repo=True)
    before = list(ChangeEvent.objects.values_list("pk", flat=True))
    r = token_client(requester).post(f"/api/changes/{ids['cr']}/implement/")
    assert r.status_code == 403
    assert r.json() == {"detail": "Only approvers and staff may release a change to main."}
    assert ChangeRequest.objects.get(pk=ids["cr"]).state == ChangeRequest.State.APPROVED
    assert list(ChangeEvent.objects.values_list("pk", flat=True)) == before
    assert origin_rev(branch_repo) != ChangeRequest.objects.get(pk=ids["cr"]).head_sha


def test_session_clients_need_the_csrf_token_to_write(request, requester, client_for):
    """The browser session works on the API too, with Django's CSRF protection on writes."""
    ids = _setup(request, "draft")
    r = client_for(requester).post(f"/api/changes/{ids['cr']}/submit/")
    assert r.status_code == 403 and "CSRF" in r.json()["detail"]
    assert client_for(requester).get(f"/api/changes/{ids['cr']}/").status_code == 200
