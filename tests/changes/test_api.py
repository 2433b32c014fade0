"""The change-control API on real Git repositories: the workflow with tokens, errors as JSON with the
service's status and message, filters, fixed query counts, secrets in diffs, baselines, unauthorized
commits and the read-only record."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from changes import services
from changes.models import Approval, ChangeEvent, ChangeRequest, FreezePeriod, UnauthorizedCommit
from tests.changes.apiutil import TEST_BRANCH, TEST_NGINX, TLS_BRANCH, origin_rev, token_client
from tests.fixtures.windows import around_now, around_now_iso
from tests.gitutil import on_branch

pytestmark = pytest.mark.django_db
State = ChangeRequest.State


def post(client, url, data=None):
    return client.post(url, data if data is not None else "", content_type="application/json")


def patch(client, url, data):
    return client.patch(url, data, content_type="application/json")


def timeline(body) -> list[str]:
    return [e["action"] for e in body["timeline"]]


@pytest.fixture
def open_cr(branch_repo, requester):
    """``open_cr(branch=TEST_BRANCH, user=requester, **fields)``: a draft CR made by the service."""

    def make(branch=TEST_BRANCH, user=None, **fields):
        fields.setdefault("title", f"Change on {branch}")
        if "planned_start" not in fields and "planned_end" not in fields:
            fields.update(around_now())  # released only inside a window holding now
        return services.change_create(acting_user=user or requester, branch=branch, **fields)

    return make


# --- the workflow -------------------------------------------------------------------------------------


def test_full_workflow_requester_approvers_and_staff_release_to_origin_main(
    branch_repo, requester, approver, approver2, staff, django_capture_on_commit_callbacks
):
    approver.email = "alice@example.org"
    approver.save()
    rick, alice, bob, sam = (token_client(u) for u in (requester, approver, approver2, staff))
    head = origin_rev(branch_repo, TLS_BRANCH)

    r = post(rick, "/api/changes/", {
        "branch": TLS_BRANCH, "title": "Harden TLS", "description": "Only **TLS 1.3**.", "type": "normal",
        "risk": "high", "rollback_plan": "Revert the merge.", "watchers": [approver2.username], **around_now_iso(),
    })
    assert r.status_code == 201, r.content
    cr = r.json()
    url = f"/api/changes/{cr['id']}/"
    assert r["Location"] == f"http://testserver{url}"
    assert (cr["state"], cr["type"], cr["risk"], cr["requester"]) == ("draft", "normal", "high", requester.username)
    assert (cr["head_sha"], cr["required_approvals"], cr["live_approvals"]) == (head, 2, 0)
    assert cr["watchers"] == [approver2.username]
    assert "<strong>TLS 1.3</strong>" in cr["description_html"]
    assert cr["actions"] == ["edit", "submit", "withdraw", "comment"]

    with django_capture_on_commit_callbacks(execute=True):
        r = post(rick, url + "submit/")
    assert r.status_code == 200 and r.json()["state"] == "submitted"
    assert [m.to for m in mail.outbox] == [["alice@example.org", "bob@example.org"]]

    r = post(alice, url + "approve/", {"comment": "Looks right", "head_sha": head})
    assert r.status_code == 200
    assert (r.json()["state"], r.json()["live_approvals"]) == ("submitted", 1)
    r = post(bob, url + "approve/")
    assert (r.json()["state"], r.json()["live_approvals"]) == ("approved", 2)
    assert [(a["user"], a["decision"], a["comment"], a["head_sha"], a["live"]) for a in r.json()["approvals"]] == [
        (approver.username, "approve", "Looks right", head, True), (approver2.username, "approve", "", head, True),
    ]
    assert r.json()["actions"] == ["schedule", "implement", "comment"]  # bob may release too; staff does below

    with django_capture_on_commit_callbacks(execute=True):  # the release queues a sync
        r = post(sam, url + "implement/")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["state"] == "implemented" and body["merged_sha"] == head
    assert origin_rev(branch_repo) == head  # fast-forward: origin main is the reviewed branch head
    assert not UnauthorizedCommit.objects.exists()

    # Not deployed by the portal (no CMDB_DEPLOY_ENVIRONMENTS): the release is verified by an audit at
    # once; the standard layout's machines are configured by hand, so a person checks each of them.
    verification = rick.get(url).json()["verification"]  # written after the release committed
    assert verification["state"] == "pending" and verification["manual"]
    assert post(rick, url + "verify/", {"comment": "Reloaded fine"}).status_code == 409
    checks = rick.get("/api/manual-checks/").json()["results"]
    assert {c["machine_path"] for c in checks} == set(verification["manual"])
    for check in checks:
        with django_capture_on_commit_callbacks(execute=True):
            assert post(rick, f"/api/manual-checks/{check['id']}/", {"state": "matches"}).status_code == 200
    assert rick.get(url).json()["verification"]["state"] == "passed"
    assert post(rick, url + "verify/", {"comment": "Reloaded fine"}).json()["state"] == "verified"
    body = post(rick, url + "close/").json()
    assert body["state"] == "closed" and body["actions"] == ["revert", "comment"]
    assert timeline(body) == ["created", "submitted", "vote-approve", "vote-approve", "approved", "merged",
                              "audit-started", "verification-passed", "verified", "closed"]  # checks: no CR
    merged = next(e for e in body["timeline"] if e["action"] == "merged")
    assert merged["actor"] == staff.username and merged["commit_sha"] == head and merged["data"]["commits"] == [head]


def test_readme_curl_example_opens_submits_and_reads_a_change(branch_repo, requester):
    """README, "REST API": a CI pipeline with a token posts JSON, submits without a body, reads the CR."""
    from accounts.services import token_create

    key = token_create(acting_user=requester, owner=requester, name="pipeline").key
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    auth = {"HTTP_AUTHORIZATION": f"Token {key}"}

    r = client.post("/api/changes/", {"branch": TEST_BRANCH, "title": "Two workers", "type": "normal",
                                      "risk": "low"}, content_type="application/json", **auth)
    assert r.status_code == 201, r.content
    cr_id = r.json()["id"]
    r = client.post(f"/api/changes/{cr_id}/submit/", **auth)  # curl -X POST, no body, no content type
    assert r.status_code == 200, r.content
    r = client.get(f"/api/changes/{cr_id}/", **auth)
    assert r.status_code == 200 and r["Content-Type"] == "application/json"
    body = r.json()
    assert (body["id"], body["state"], body["risk"], body["branch"]) == (cr_id, "submitted", "low", TEST_BRANCH)
    assert body["url"] == f"http://testserver/changes/{cr_id}/"


# --- errors: the service's status and message ------------------------------------------------------------


def test_unknown_branch_is_400_with_the_service_message(branch_repo, requester):
    r = post(token_client(requester), "/api/changes/", {"branch": "nope", "title": "x"})
    assert r.status_code == 400
    assert r.json() == {"detail": "Unknown branch 'nope': push it to origin first."}


def test_main_as_the_branch_is_400(branch_repo, requester):
    r = post(token_client(requester), "/api/changes/", {"branch": "main", "title": "x"})
    assert r.status_code == 400 and "other than main" in r.json()["detail"]


def test_viewer_cannot_open_a_change_request(branch_repo, viewer):
    r = post(token_client(viewer), "/api/changes/", {"branch": TEST_BRANCH, "title": "x"})
    assert r.status_code == 403
    assert r.json() == {"detail": "Only requesters, approvers and staff may open change requests."}
    assert not ChangeRequest.objects.exists()


def test_illegal_transition_is_409(open_cr, requester):
    cr = open_cr()
    r = post(token_client(requester), f"/api/changes/{cr.pk}/verify/")
    assert r.status_code == 409
    assert r.json() == {"detail": "Cannot verify a change request that is draft."}


def test_requester_approving_own_change_is_403(open_cr, requester):
    cr = services.change_submit(change=open_cr(), acting_user=requester)
    r = post(token_client(requester), f"/api/changes/{cr.pk}/approve/")
    assert r.status_code == 403
    assert r.json() == {"detail": "Only approvers other than the requester may approve a change request."}
    assert not Approval.objects.exists()


@pytest.mark.parametrize("body", [None, {}, {"comment": ""}, {"comment": "   "}])
def test_reject_without_a_reason_is_400(open_cr, requester, approver, body):
    cr = services.change_submit(change=open_cr(), acting_user=requester)
    r = post(token_client(approver), f"/api/changes/{cr.pk}/reject/", body)
    assert r.status_code == 400
    assert r.json()["detail"] == "comment: A rejection needs a reason."
    assert r.json()["errors"] == {"comment": ["A rejection needs a reason."]}
    cr.refresh_from_db()
    assert cr.state == State.SUBMITTED and not Approval.objects.exists()


def test_reject_with_a_reason(open_cr, requester, approver):
    cr = services.change_submit(change=open_cr(), acting_user=requester)
    body = post(token_client(approver), f"/api/changes/{cr.pk}/reject/", {"comment": "Wrong count"}).json()
    assert body["state"] == "rejected"
    assert [(a["decision"], a["comment"]) for a in body["approvals"]] == [("reject", "Wrong count")]
    # the approver may close a rejected CR, not edit, resubmit or withdraw someone else's
    assert body["actions"] == ["close", "comment"]


def test_vote_for_a_head_that_moved_is_409_and_a_malformed_head_400(open_cr, requester, approver):
    cr = services.change_submit(change=open_cr(), acting_user=requester)
    alice = token_client(approver)
    r = post(alice, f"/api/changes/{cr.pk}/approve/", {"head_sha": "0" * 40})
    assert r.status_code == 409 and "moved" in r.json()["detail"]
    r = post(alice, f"/api/changes/{cr.pk}/approve/", {"head_sha": "abc"})
    assert r.status_code == 400 and r.json()["detail"] == "head_sha: Not a full commit id."
    assert post(alice, f"/api/changes/{cr.pk}/approve/", {"head_sha": cr.head_sha}).json()["state"] == "approved"
    r = post(alice, f"/api/changes/{cr.pk}/approve/")
    assert r.status_code == 409  # approved: no more votes


def test_merge_conflict_on_release_is_409_and_nothing_changes(branch_repo, open_cr, requester, approver, staff):
    cr = services.change_approve(change=services.change_submit(change=open_cr(), acting_user=requester),
                                 acting_user=approver)
    branch_repo.write(TEST_NGINX, "worker_processes 16;\n")
    before = branch_repo.commit("Conflicting change on main")

    r = post(token_client(staff), f"/api/changes/{cr.pk}/implement/")

    assert r.status_code == 409 and "conflicts with main" in r.json()["detail"]
    assert origin_rev(branch_repo) == before
    cr.refresh_from_db()
    assert cr.state == State.APPROVED and not cr.merged_sha


def test_permission_is_checked_before_the_state_and_the_body(open_cr, viewer, approver):
    cr = open_cr()  # a draft: rejecting it is illegal, and the body is missing
    assert post(token_client(viewer), f"/api/changes/{cr.pk}/reject/").status_code == 403
    assert post(token_client(approver), f"/api/changes/{cr.pk}/reject/").status_code == 409


@pytest.mark.parametrize("url", ["/api/changes/999/", "/api/changes/999/submit/", "/api/changes/abc/",
                                 "/api/unauthorized-commits/999/", "/api/events/999/"])
def test_unknown_objects_are_json_404(branch_repo, requester, url):
    client = token_client(requester)
    r = client.post(url) if url.endswith("submit/") else client.get(url)
    assert r.status_code == 404 and r.json()["detail"]


# --- create and edit: validation --------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "detail"), [
    ({"branch": TEST_BRANCH}, "title: This field is required."),
    ({"branch": TEST_BRANCH, "title": "   "}, "title: This field may not be blank."),
    ({"title": "x"}, "branch: This field is required."),
    ({"branch": TEST_BRANCH, "title": "x", "type": "urgent"}, 'type: "urgent" is not a valid choice.'),
    ({"branch": TEST_BRANCH, "title": "x", "planned_start": "2030-01-02T10:00:00Z",
      "planned_end": "2030-01-02T09:00:00Z"}, "planned_end: The planned window must end after it starts."),
    ({"branch": TEST_BRANCH, "title": "x", "planned_start": "2030-01-02T10:00:00Z"},
     "planned_end: Give the end of the window."),
    ({"branch": TEST_BRANCH, "title": "x", "watchers": ["nobody"]}, "watchers: There is no active user named nobody."),
])
def test_create_validates_the_body_with_json_400(branch_repo, requester, body, detail):
    r = post(token_client(requester), "/api/changes/", body)
    assert r.status_code == 400
    assert r.json()["detail"] == detail
    assert not ChangeRequest.objects.exists()


def test_malformed_json_is_400(branch_repo, requester):
    r = token_client(requester).post("/api/changes/", "{not json", content_type="application/json")
    assert r.status_code == 400 and "JSON parse error" in r.json()["detail"]


def test_create_with_window_and_emergency_type(branch_repo, requester):
    r = post(token_client(requester), "/api/changes/", {
        "branch": TEST_BRANCH, "title": "Hotfix", "type": "emergency",
        "planned_start": "2030-01-02T10:00:00Z", "planned_end": "2030-01-02T11:00:00Z",
    })
    body = r.json()
    assert body["type"] == "emergency" and body["risk"] == "medium"  # the model's default
    assert (body["planned_start"], body["planned_end"]) == ("2030-01-02T10:00:00Z", "2030-01-02T11:00:00Z")


def test_patch_edits_through_the_service_and_records_it(open_cr, requester, approver2):
    cr = open_cr()
    r = patch(token_client(requester), f"/api/changes/{cr.pk}/", {
        "title": "Three workers", "risk": "low", "watchers": [approver2.username],
    })
    assert r.status_code == 200, r.content
    body = r.json()
    assert (body["title"], body["risk"], body["watchers"]) == ("Three workers", "low", [approver2.username])
    edited = body["timeline"][-1]
    assert edited["action"] == "edited" and edited["data"] == {"fields": ["risk", "title"]}


def test_patch_validates_the_window_against_the_stored_one(open_cr, requester):
    start = timezone.now() + timedelta(days=2)
    cr = open_cr(planned_start=start, planned_end=start + timedelta(hours=1))
    client = token_client(requester)
    r = patch(client, f"/api/changes/{cr.pk}/", {"planned_end": (start - timedelta(hours=1)).isoformat()})
    assert r.status_code == 400 and r.json()["detail"] == "planned_end: The planned window must end after it starts."
    assert patch(client, f"/api/changes/{cr.pk}/", {}).json()["detail"] == "Nothing to change: give at least one field."
    r = patch(client, f"/api/changes/{cr.pk}/", {"planned_start": None, "planned_end": None})
    assert r.status_code == 200 and r.json()["planned_start"] is None


def test_patch_refused_for_others_and_after_approval(open_cr, requester, approver):
    cr = open_cr()
    r = patch(token_client(approver), f"/api/changes/{cr.pk}/", {"title": "mine now"})
    assert r.status_code == 403 and r.json() == {"detail": "You may not edit this change request."}
    services.change_approve(change=services.change_submit(change=cr, acting_user=requester), acting_user=approver)
    r = patch(token_client(requester), f"/api/changes/{cr.pk}/", {"title": "late"})
    assert r.status_code == 409 and r.json() == {"detail": "Cannot edit a change request that is approved."}


@pytest.mark.parametrize("method", ["put", "delete"])
def test_change_requests_cannot_be_replaced_or_deleted(open_cr, staff, method):
    cr = open_cr()
    r = getattr(token_client(staff), method)(f"/api/changes/{cr.pk}/", {}, content_type="application/json")
    assert r.status_code == 405 and r.json()["detail"]
    assert ChangeRequest.objects.filter(pk=cr.pk).exists()


# --- detail ------------------------------------------------------------------------------------------------


def test_detail_has_impact_conflicts_flags_and_the_callers_actions(branch_repo, open_cr, requester, approver, viewer):
    start = timezone.now() + timedelta(days=5)
    on_branch(branch_repo, "change/other", {TEST_NGINX: "worker_processes 5;\n"})
    FreezePeriod.objects.create(start=start - timedelta(days=1), end=start + timedelta(days=1), reason="Release week",
                                environment="test")
    first = open_cr(planned_start=start, planned_end=start + timedelta(hours=2))
    second = open_cr("change/other", planned_start=start + timedelta(hours=1), planned_end=start + timedelta(hours=3))
    open_cr(TLS_BRANCH)  # production: no conflict with the test changes

    body = token_client(requester).get(f"/api/changes/{first.pk}/").json()

    assert body["impact"]["files"] == [{"path": TEST_NGINX, "status": "M", "ci": "test/web-test1/nginx",
                                        "documentation": False}]
    assert body["impact"]["cis"] == [{
        "path": "test/web-test1/nginx", "kind": "application", "environment": "test",
        "machine_path": "test/web-test1", "reason": "direct", "via": "", "deploy": True,
        "url": "http://testserver/ci/test/web-test1/nginx/",
    }]
    assert (body["impact"]["documentation_only"], body["impact"]["machines"]) == (False, ["test/web-test1"])
    assert body["environments"] == ["test"]
    assert body["conflicts"]["same_ci"] == [second.pk]
    assert body["conflicts"]["overlapping_windows"] == [second.pk]
    assert [f["reason"] for f in body["conflicts"]["freezes"]] == ["Release week"]
    assert body["flags"] == {"needs_after_the_fact_approval": False, "implemented_without_approval": False,
                             "approved_after_the_fact": False, "released_outside_window": ""}
    assert (body["base_sha"], body["branch_missing"], body["merged_sha"]) == (origin_rev(branch_repo), False, "")
    assert body["timeline"][0]["action"] == "created" and body["timeline"][0]["actor"] == requester.username
    assert body["actions"] == ["edit", "submit", "withdraw", "comment"]
    assert token_client(approver).get(f"/api/changes/{first.pk}/").json()["actions"] == ["comment"]
    assert token_client(viewer).get(f"/api/changes/{first.pk}/").json()["actions"] == []


def test_emergency_release_before_approval_is_flagged_until_approved(open_cr, requester, approver, staff):
    cr = open_cr(type="emergency")
    body = post(token_client(staff), f"/api/changes/{cr.pk}/implement/").json()
    assert body["state"] == "implemented" and body["flags"]["needs_after_the_fact_approval"] is True
    assert "emergency-unapproved" in timeline(body)
    body = post(token_client(approver), f"/api/changes/{cr.pk}/approve/").json()
    assert body["flags"] == {"needs_after_the_fact_approval": False, "implemented_without_approval": True,
                             "approved_after_the_fact": True, "released_outside_window": ""}


def test_schedule_sets_the_window_and_refuses_a_freeze(open_cr, requester, approver):
    cr = services.change_approve(change=services.change_submit(change=open_cr(), acting_user=requester),
                                 acting_user=approver)
    start = timezone.now() + timedelta(days=3)
    client = token_client(requester)
    url = f"/api/changes/{cr.pk}/schedule/"
    window = {"planned_start": start.isoformat(), "planned_end": (start + timedelta(hours=1)).isoformat()}

    r = post(client, url, {"planned_start": window["planned_end"], "planned_end": window["planned_start"]})
    assert r.status_code == 400 and r.json()["detail"] == "planned_end: The planned window must end after it starts."
    assert post(client, url, {}).json()["errors"].keys() == {"planned_start", "planned_end"}
    FreezePeriod.objects.create(start=start - timedelta(hours=1), end=start + timedelta(hours=5), reason="Year-end")
    r = post(client, url, window)
    assert r.status_code == 409 and "Year-end" in r.json()["detail"]
    FreezePeriod.objects.all().delete()
    body = post(client, url, window).json()
    assert body["state"] == "scheduled" and body["planned_start"] is not None


def test_withdraw_with_a_note_and_close(open_cr, requester):
    cr = open_cr()
    client = token_client(requester)
    body = post(client, f"/api/changes/{cr.pk}/withdraw/", {"comment": "Not needed"}).json()
    assert body["state"] == "withdrawn" and body["timeline"][-1]["message"] == "Not needed"
    assert post(client, f"/api/changes/{cr.pk}/close/").json()["state"] == "closed"


# --- comments -----------------------------------------------------------------------------------------------


def test_comments_are_listed_and_added(open_cr, requester, approver, viewer):
    cr = open_cr()
    url = f"/api/changes/{cr.pk}/comments/"
    r = post(token_client(approver), url, {"body": "Why two?"})
    assert r.status_code == 201
    assert (r.json()["author"], r.json()["body"]) == (approver.username, "Why two?")
    post(token_client(requester), url, {"body": "Load tests."})

    listed = token_client(viewer).get(url).json()
    assert [(c["author"], c["body"]) for c in listed] == [(approver.username, "Why two?"),
                                                           (requester.username, "Load tests.")]
    assert "commented" in timeline(token_client(viewer).get(f"/api/changes/{cr.pk}/").json())
    r = post(token_client(viewer), url, {"body": "me too"})
    assert r.status_code == 403 and r.json() == {"detail": "Viewers cannot comment; ask for the requesters group."}
    r = post(token_client(requester), url, {"body": "  "})
    assert r.status_code == 400 and r.json()["detail"] == "body: A comment cannot be empty."


# --- list: filters and query count ---------------------------------------------------------------------


@pytest.fixture
def several(branch_repo, open_cr, requester, approver, staff):
    test_cr = open_cr(title="test draft")
    tls = services.change_submit(change=open_cr(TLS_BRANCH, title="tls submitted"), acting_user=requester)
    tls = services.change_approve(change=tls, acting_user=approver)  # 1 of 2
    emergency = open_cr(user=staff, type="emergency", title="staff emergency")
    return {"test": test_cr, "tls": tls, "emergency": emergency}


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


FILTERS = [
    ("", ["emergency", "tls", "test"]),
    ("?state=submitted", ["tls"]),
    ("?state=draft", ["emergency", "test"]),
    ("?state=open", ["emergency", "tls", "test"]),
    ("?state=closed", []),
    ("?type=emergency", ["emergency"]),
    ("?risk=medium", ["emergency", "tls", "test"]),
    ("?environment=production", ["tls"]),
    ("?environment=test", ["emergency", "test"]),
    ("?environment=nowhere", []),
    ("?requester=sam_staff", ["emergency"]),
    ("?requester=rick_requester&environment=test", ["test"]),
    (f"?branch={TLS_BRANCH}", ["tls"]),
    ("?branch=change", []),  # exact, not a substring
]


def test_list_filters(several, viewer):
    client = token_client(viewer)  # one set of change requests for every query: setting up costs more
    for query, expected in FILTERS:
        assert ids(client.get("/api/changes/" + query)) == [several[k].pk for k in expected], query


def test_awaiting_filter_is_the_callers_queue(several, approver, approver2):
    assert ids(token_client(approver).get("/api/changes/?awaiting=true")) == []  # already voted
    assert ids(token_client(approver2).get("/api/changes/?awaiting=true")) == [several["tls"].pk]


def test_list_rows_summarize_each_change(several, viewer):
    rows = {r["id"]: r for r in token_client(viewer).get("/api/changes/").json()["results"]}
    tls = rows[several["tls"].pk]
    assert (tls["state"], tls["required_approvals"], tls["live_approvals"]) == ("submitted", 2, 1)
    assert tls["environments"] == ["production"] and tls["reference"] == f"CR-{several['tls'].pk}"
    assert tls["url"] == f"http://testserver/changes/{several['tls'].pk}/"
    assert "timeline" not in tls and "impact" not in tls


def test_invalid_filter_values_are_json_400(branch_repo, viewer):
    r = token_client(viewer).get("/api/changes/?state=sleeping")
    assert r.status_code == 400 and r.json()["errors"]["state"]


LIST_QUERIES = 4  # token + user, count, rows (requester joined, live votes counted), environments


def test_list_query_count_does_not_grow_with_the_number_of_changes(open_cr, requester, approver, viewer,
                                                                   django_assert_num_queries):
    first = services.change_submit(change=open_cr(), acting_user=requester)
    client = token_client(viewer)
    with django_assert_num_queries(LIST_QUERIES):
        assert len(ids(client.get("/api/changes/"))) == 1

    services.change_approve(change=first, acting_user=approver)
    for i in range(4):
        cr = open_cr(TLS_BRANCH if i % 2 else TEST_BRANCH, title=f"more {i}")
        services.change_comment(change=cr, acting_user=requester, body="note")
    with django_assert_num_queries(LIST_QUERIES):
        rows = client.get("/api/changes/?page_size=100").json()["results"]
    assert len(rows) == 5
    assert {r["live_approvals"] for r in rows} == {0, 1}
    with django_assert_num_queries(LIST_QUERIES):
        assert len(ids(client.get("/api/changes/?environment=production&state=open"))) == 2


def test_list_is_paginated(open_cr, viewer):
    for i in range(3):
        open_cr(title=f"cr {i}")
    body = token_client(viewer).get("/api/changes/?page_size=2").json()
    assert body["count"] == 3 and len(body["results"]) == 2 and body["next"].endswith("page=2&page_size=2")


# --- diff ------------------------------------------------------------------------------------------------


@pytest.fixture
def secret_cr(branch_repo, open_cr):
    on_branch(branch_repo, "change/secret", {
        "production/web1/nginx/secrets/htpasswd": "admin:$apr1$new$hash\n",
        "production/web1/nginx/files/etc/ssl/key.pem": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        "production/web1/nginx/files/etc/nginx/nginx.conf": "worker_processes 8;\n",
    })
    return open_cr("change/secret")


def _patches(body) -> dict[str, dict]:
    return {f["path"]: f for ci in body["cis"] for f in ci["files"]}


def test_diff_masks_secrets_without_the_permission(secret_cr, viewer, requester, approver):
    for user in (viewer, requester, approver):
        body = token_client(user).get(f"/api/changes/{secret_cr.pk}/diff/").json()
        assert body["secrets_masked"] is True and body["head_sha"] == secret_cr.head_sha
        assert [ci["path"] for ci in body["cis"]] == ["production/web1/nginx"]
        files = _patches(body)
        assert "apr1$new" not in str(body) and "AAAA" not in str(body)
        assert files["production/web1/nginx/secrets/htpasswd"]["masked"] is True
        assert files["production/web1/nginx/files/etc/ssl/key.pem"]["masked"] is True
        plain = files["production/web1/nginx/files/etc/nginx/nginx.conf"]
        assert plain["masked"] is False and "+worker_processes 8;" in plain["patch"]


def test_diff_shows_secrets_to_secret_viewers_and_staff(secret_cr, secret_viewer, staff):
    for user in (secret_viewer, staff):
        body = token_client(user).get(f"/api/changes/{secret_cr.pk}/diff/").json()
        assert body["secrets_masked"] is False
        files = _patches(body)
        assert "apr1$new" in files["production/web1/nginx/secrets/htpasswd"]["patch"]
        assert not any(f["masked"] for f in files.values())


# --- baselines ---------------------------------------------------------------------------------------------


def test_staff_tags_baselines_through_the_api(branch_repo, staff, requester):
    sam = token_client(staff)
    r = post(sam, "/api/baselines/", {"name": "baseline-2026-11", "note": "Monthly"})
    assert r.status_code == 201, r.content
    body = r.json()
    assert (body["name"], body["sha"], body["created_by"]) == ("baseline-2026-11", origin_rev(branch_repo),
                                                               staff.username)
    assert origin_rev(branch_repo, "baseline-2026-11^{commit}") == body["sha"]

    r = post(sam, "/api/baselines/", {"name": "baseline-2026-11"})
    assert r.status_code == 409 and "exists already" in r.json()["detail"]
    r = post(sam, "/api/baselines/", {"name": "bad name"})
    assert r.status_code == 400 and r.json()["detail"].startswith("name: Use letters")
    r = post(sam, "/api/baselines/", {"name": "b2", "rev": "no-such-rev"})
    assert r.status_code == 400 and "no-such-rev" in r.json()["detail"]
    r = post(sam, "/api/baselines/", {"name": "b3", "rev": f"origin/{TEST_BRANCH}"})
    assert r.status_code == 201 and r.json()["sha"] == origin_rev(branch_repo, TEST_BRANCH)
    r = post(token_client(requester), "/api/baselines/", {"name": "mine"})
    assert r.status_code == 403 and r.json() == {"detail": "Only staff may tag baselines."}

    listed = token_client(requester).get("/api/baselines/").json()
    assert [b["name"] for b in listed["results"]] == ["b3", "baseline-2026-11"]
    assert ChangeEvent.objects.filter(action="baseline", change=None).count() == 2


# --- unauthorized commits ----------------------------------------------------------------------------------


@pytest.fixture
def flagged(db):
    now = timezone.now()
    return [
        UnauthorizedCommit.objects.create(sha=f"{i}" * 40, summary=f"Hotfix {i}", author="Ops",
                                          committed_at=now - timedelta(hours=i))
        for i in (1, 2)
    ]


def test_unauthorized_commits_are_listed_and_acknowledged_by_staff(flagged, staff, requester):
    sam = token_client(staff)
    r = sam.get("/api/unauthorized-commits/?status=open")
    assert [c["sha"] for c in r.json()["results"]] == ["1" * 40, "2" * 40]
    assert r.json()["results"][0]["url"] == f"http://testserver/commits/{'1' * 40}/"
    url = f"/api/unauthorized-commits/{flagged[0].pk}/acknowledge/"

    r = post(token_client(requester), url, {"reason": "fine"})
    assert r.status_code == 403 and r.json() == {"detail": "Only staff may resolve unauthorized changes."}
    r = post(sam, url, {"reason": ""})
    assert r.status_code == 400
    assert r.json()["detail"] == "reason: Acknowledging an unauthorized change needs a reason."
    r = post(sam, url, {"reason": "Outage fix, documented"})
    assert r.status_code == 200
    body = r.json()
    assert (body["status"], body["resolved_by"], body["reason"]) == ("acknowledged", staff.username,
                                                                     "Outage fix, documented")
    assert body["resolved_at"] is not None
    r = post(sam, url, {"reason": "again"})
    assert r.status_code == 409 and r.json() == {"detail": "This commit is already acknowledged."}

    assert [c["sha"] for c in sam.get("/api/unauthorized-commits/?status=open").json()["results"]] == ["2" * 40]
    assert sam.get("/api/unauthorized-commits/?status=acknowledged").json()["count"] == 1
    assert sam.get("/api/unauthorized-commits/").json()["count"] == 2
    assert sam.get("/api/unauthorized-commits/?status=bogus").status_code == 400
    event = ChangeEvent.objects.get(action="unauthorized-acknowledged")
    assert (event.commit_sha, event.actor) == ("1" * 40, staff)


def test_unauthorized_commit_is_linked_to_a_change_request(flagged, open_cr, staff):
    cr = open_cr()
    sam = token_client(staff)
    url = f"/api/unauthorized-commits/{flagged[1].pk}/link/"
    r = post(sam, url, {"change": 9999})
    assert r.status_code == 400 and r.json()["detail"] == "change: There is no change request 9999."
    r = post(sam, url, {})
    assert r.status_code == 400 and r.json()["detail"] == "change: Name the change request this commit belongs to."
    r = post(sam, url, {"change": cr.pk, "reason": "Part of the test change"})
    assert r.status_code == 200 and (r.json()["status"], r.json()["change"]) == ("linked", cr.pk)
    assert "unauthorized-linked" in timeline(sam.get(f"/api/changes/{cr.pk}/").json())


# --- the record ----------------------------------------------------------------------------------------------


def test_events_are_listed_and_filtered(open_cr, requester, approver):
    first = services.change_submit(change=open_cr(), acting_user=requester)
    second = open_cr(TLS_BRANCH)
    services.change_approve(change=first, acting_user=approver)
    client = token_client(approver)

    body = client.get(f"/api/events/?change={first.pk}").json()
    assert [e["action"] for e in body["results"]] == ["created", "submitted", "vote-approve", "approved"]
    assert {e["change"] for e in body["results"]} == {first.pk}
    created = client.get("/api/events/?action=created").json()["results"]
    assert [e["change"] for e in created] == [first.pk, second.pk]
    assert [e["action"] for e in client.get(f"/api/events/?actor={approver.username}").json()["results"]] == [
        "vote-approve", "approved"]
    one = client.get(f"/api/events/{created[0]['id']}/").json()
    assert one == created[0]


@pytest.mark.parametrize(("method", "detail"), [
    ("post", False), ("put", False), ("patch", False), ("delete", False),
    ("post", True), ("put", True), ("patch", True), ("delete", True),
])
def test_the_record_is_read_only_in_the_api(open_cr, staff, method, detail):
    cr = open_cr()
    event = ChangeEvent.objects.get(change=cr)
    url = f"/api/events/{event.pk}/" if detail else "/api/events/"
    r = getattr(token_client(staff), method)(url, {"action": "rewritten", "message": "x"},
                                             content_type="application/json")
    assert r.status_code == 405, r.content
    assert r.json()["detail"].startswith("Method")
    assert list(ChangeEvent.objects.values_list("pk", "action", "message")) == [(event.pk, "created", event.message)]


# --- schema --------------------------------------------------------------------------------------------------


def test_schema_describes_every_change_control_endpoint(db, viewer):
    schema = token_client(viewer).get("/api/schema/?format=json").json()
    paths = schema["paths"]
    for action in ("submit", "approve", "reject", "schedule", "implement", "verify", "close", "withdraw"):
        operation = paths[f"/api/changes/{{id}}/{action}/"]["post"]
        assert {"200", "403", "409"} <= set(operation["responses"])
    assert paths["/api/changes/{id}/reject/"]["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Reject"}
    assert set(paths["/api/changes/{id}/comments/"]) >= {"get", "post"}
    assert set(paths["/api/changes/{id}/"]) >= {"get", "patch"} and "put" not in paths["/api/changes/{id}/"]
    assert set(paths["/api/events/"]) == {"get"} and set(paths["/api/events/{id}/"]) == {"get"}
    assert {p["name"] for p in paths["/api/changes/"]["get"]["parameters"]} >= {
        "state", "type", "environment", "requester", "branch", "page"}
    assert "/api/changes/{id}/diff/" in paths and "/api/unauthorized-commits/{id}/link/" in paths
    assert schema["components"]["schemas"]["Reject"]["required"] == ["comment"]
    assert {"changes", "baselines", "unauthorized-commits", "events"} <= set(token_client(viewer).get("/api/").json())


DETAIL_QUERIES = 12  # token, CR, votes, record, comments, watchers, conflicts (5), caller's groups


def test_detail_query_count_does_not_grow_with_votes_comments_and_events(open_cr, requester, approver, approver2,
                                                                           viewer, django_assert_num_queries):
    start = timezone.now() + timedelta(days=5)
    cr = open_cr(TLS_BRANCH, planned_start=start, planned_end=start + timedelta(hours=1), watchers=[approver])
    client = token_client(viewer)
    url = f"/api/changes/{cr.pk}/"
    with django_assert_num_queries(DETAIL_QUERIES):
        assert client.get(url).status_code == 200

    cr = services.change_submit(change=cr, acting_user=requester)
    for user in (approver, approver2):
        services.change_approve(change=cr, acting_user=user, comment="ok")
        services.change_comment(change=cr, acting_user=user, body="note")
    open_cr(TLS_BRANCH, planned_start=start, planned_end=start + timedelta(hours=1))  # a conflicting CR
    with django_assert_num_queries(DETAIL_QUERIES):
        body = client.get(url).json()
    assert len(body["approvals"]) == 2 and len(body["comments"]) == 2 and len(body["timeline"]) == 7
    assert body["conflicts"]["same_ci"] and body["conflicts"]["overlapping_windows"]
