"""Who may do what in the change-control browser UI: every page and every POST action per role, the
buttons each role is offered, CSRF, and the requester who tries to approve their own change.

Expected statuses are written out as matrices (not derived from ``changes.permissions``): a change to
the rules has to change these tables too.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from changes import services
from changes.models import Approval, Baseline, ChangeEvent, ChangeRequest, Comment, UnauthorizedCommit
from cmdb import services as cmdb_services
from tests.changes.ui import action_url, buttons, events, in_state, post
from tests.gitutil import on_branch

pytestmark = pytest.mark.django_db
State = ChangeRequest.State
ROLES = ["anonymous", "viewer", "requester", "approver", "staff"]
OK, FORBIDDEN, LOGIN = 302, 403, "login"


@pytest.fixture
def as_role(request, client_for):
    """``as_role(name)``: a CSRF-enforcing client for a role ("anonymous": not logged in)."""

    def make(role: str) -> Client:
        if role == "anonymous":
            return Client(enforce_csrf_checks=True)
        return client_for(request.getfixturevalue(role))

    return make


def assert_login_redirect(response) -> None:
    assert response.status_code == 302 and response["Location"].startswith(reverse("login")), response


def check_status(response, expected, context: str) -> None:
    if expected == LOGIN:
        assert_login_redirect(response)
    else:
        assert response.status_code == expected, f"{context}: {response.status_code}\n{response.content[:2000]!r}"


# ====================================================================================================
# Pages (GET) × role
# ====================================================================================================

ALL_200 = {"viewer": 200, "requester": 200, "approver": 200, "staff": 200}
PAGES = {
    "change_list": ALL_200,
    "change_detail": ALL_200,
    "change_create": {"viewer": 403, "requester": 200, "approver": 200, "staff": 200},
    # the draft belongs to the requester: only they and staff edit it
    "change_edit": {"viewer": 403, "requester": 200, "approver": 403, "staff": 200},
    "baseline_list": ALL_200,
    "baseline_compare": ALL_200,
    "baseline_create": {"viewer": 403, "requester": 403, "approver": 403, "staff": 200},
    "unauthorized_list": ALL_200,
    "freeze_list": ALL_200,
    "home": ALL_200,
}


def _page_urls(change: ChangeRequest) -> dict[str, str]:
    return {
        "change_list": reverse("changes:change_list"),
        "change_detail": change.get_absolute_url(),
        "change_create": reverse("changes:change_create"),
        "change_edit": reverse("changes:change_edit", kwargs={"pk": change.pk}),
        "baseline_list": reverse("changes:baseline_list"),
        "baseline_compare": reverse("changes:baseline_compare") + "?from=b1&to=main",
        "baseline_create": reverse("changes:baseline_create"),
        "unauthorized_list": reverse("changes:unauthorized_list"),
        "freeze_list": reverse("changes:freeze_list"),
        "home": reverse("home"),
    }


@pytest.mark.parametrize("role", ROLES)
def test_pages_by_role(role, test_branch, make_change, staff, as_role):
    change = make_change(test_branch)
    services.baseline_create(acting_user=staff, name="b1")
    client = as_role(role)
    for name, url in _page_urls(change).items():
        expected = LOGIN if role == "anonymous" else PAGES[name][role]
        check_status(client.get(url), expected, f"{role} GET {name}")


# ====================================================================================================
# State-changing actions (POST) × role, each from a state where the action is legal
# ====================================================================================================


def _window() -> dict:
    start = timezone.now() + timedelta(days=7)
    return {"planned_start": start.strftime("%Y-%m-%dT%H:%M"),
            "planned_end": (start + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")}


OWNER_OR_STAFF = {"viewer": FORBIDDEN, "requester": OK, "approver": FORBIDDEN, "staff": OK}
VOTERS = {"viewer": FORBIDDEN, "requester": FORBIDDEN, "approver": OK, "staff": OK}
ANY_BUT_VIEWER = {"viewer": FORBIDDEN, "requester": OK, "approver": OK, "staff": OK}
# action -> (state it starts from, form data, expected status per role, record entry written on success)
ACTIONS = {
    "submit": (State.DRAFT, dict, OWNER_OR_STAFF, "submitted"),
    "approve": (State.SUBMITTED, lambda: {"comment": "fine"}, VOTERS, "vote-approve"),
    "reject": (State.SUBMITTED, lambda: {"comment": "not like this"}, VOTERS, "vote-reject"),
    "schedule": (State.APPROVED, _window, ANY_BUT_VIEWER, "scheduled"),
    "implement": (State.APPROVED, dict, VOTERS, "merged"),
    "verify": (State.IMPLEMENTED, lambda: {"comment": "checked", "override": "on"}, ANY_BUT_VIEWER, "verified"),
    "close": (State.VERIFIED, dict, ANY_BUT_VIEWER, "closed"),
    "withdraw": (State.DRAFT, dict, OWNER_OR_STAFF, "withdrawn"),
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", list(ACTIONS))
def test_actions_by_role(action, role, test_branch, make_change, approver2, staff, as_role):
    start, data, expected_by_role, entry = ACTIONS[action]
    change = in_state(make_change(test_branch), start, approver=approver2, staff=staff)
    before = events(change)

    response = post(as_role(role), action_url(change, action), data())

    expected = LOGIN if role == "anonymous" else expected_by_role[role]
    check_status(response, expected, f"{role} POST {action}")
    after = events(change)
    if expected == OK:
        assert response["Location"] == change.get_absolute_url()
        assert entry in after[len(before):], after
    else:
        assert after == before, f"{role} {action} wrote {after[len(before):]}"
        change.refresh_from_db()
        assert change.state == start
    if expected == FORBIDDEN:
        assert "alert-danger" in response.content.decode()  # the page explains why


# Other POSTs: comment, edit, create, baseline, unauthorized commit.
OTHER_POSTS = {
    "comment": ANY_BUT_VIEWER,
    "edit": OWNER_OR_STAFF,
    "create": ANY_BUT_VIEWER,
    "baseline_create": {"viewer": FORBIDDEN, "requester": FORBIDDEN, "approver": FORBIDDEN, "staff": OK},
    "unauthorized_resolve": {"viewer": FORBIDDEN, "requester": FORBIDDEN, "approver": FORBIDDEN, "staff": OK},
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint", list(OTHER_POSTS))
def test_other_posts_by_role(endpoint, role, synced, test_branch, make_change, as_role):
    change = make_change(test_branch)
    if endpoint == "comment":
        url, data = reverse("changes:change_comment", kwargs={"pk": change.pk}), {"body": "a remark"}
        done = lambda: Comment.objects.filter(change=change, body="a remark").exists()  # noqa: E731
    elif endpoint == "edit":
        url = reverse("changes:change_edit", kwargs={"pk": change.pk})
        data = {"title": "Renamed", "type": "normal", "risk": "low"}
        done = lambda: ChangeRequest.objects.get(pk=change.pk).title == "Renamed"  # noqa: E731
    elif endpoint == "create":
        on_branch(synced, "change/other", {"test/web-test1/README.md": "# web-test1\n\nother\n"})
        url, data = reverse("changes:change_create"), {"branch": "change/other", "title": "Other", "type": "normal",
                                                        "risk": "medium"}
        done = lambda: ChangeRequest.objects.filter(branch="change/other").exists()  # noqa: E731
    elif endpoint == "baseline_create":
        url, data = reverse("changes:baseline_create"), {"name": "baseline-x"}
        done = lambda: Baseline.objects.filter(name="baseline-x").exists()  # noqa: E731
    else:
        synced.write("test/README.md", "# Test\n\ndirect edit\n")
        sha = synced.commit("Direct edit")
        cmdb_services.repo_sync(trigger="test")
        flagged = UnauthorizedCommit.objects.get(sha=sha)
        url = reverse("changes:unauthorized_resolve", kwargs={"pk": flagged.pk})
        data = {"resolution": "acknowledge", "reason": "outage fix"}
        done = lambda: UnauthorizedCommit.objects.get(pk=flagged.pk).status == "acknowledged"  # noqa: E731
    record = ChangeEvent.objects.count()

    response = post(as_role(role), url, data)

    expected = LOGIN if role == "anonymous" else OTHER_POSTS[endpoint][role]
    check_status(response, expected, f"{role} POST {endpoint}")
    assert done() is (expected == OK)
    assert (ChangeEvent.objects.count() > record) is (expected == OK)


def test_requester_cannot_approve_their_own_change_even_as_an_approver(test_branch, make_change, approver, client_for):
    change = services.change_submit(change=make_change(test_branch, user=approver), acting_user=approver)

    response = post(client_for(approver), action_url(change, "approve"), {"head_sha": change.head_sha})

    assert response.status_code == 403
    assert "other than the requester" in response.content.decode()
    assert not Approval.objects.filter(change=change).exists()
    assert "approve" not in buttons(client_for(approver).get(change.get_absolute_url()))


def test_requester_role_cannot_approve_and_no_vote_is_stored(test_branch, make_change, requester, client_for):
    change = services.change_submit(change=make_change(test_branch), acting_user=requester)
    response = post(client_for(requester), action_url(change, "approve"), {"head_sha": change.head_sha})
    assert response.status_code == 403
    assert not Approval.objects.exists()
    change.refresh_from_db()
    assert change.state == State.SUBMITTED


# ====================================================================================================
# CSRF
# ====================================================================================================


def test_posts_without_a_csrf_token_are_refused(test_branch, make_change, requester, approver, staff, client_for):
    change = services.change_submit(change=make_change(test_branch), acting_user=requester)
    for user, url, data in (
        (approver, action_url(change, "approve"), {"head_sha": change.head_sha}),
        (requester, reverse("changes:change_comment", kwargs={"pk": change.pk}), {"body": "x"}),
        (requester, reverse("changes:change_create"), {"branch": test_branch, "title": "t"}),
        (staff, reverse("changes:baseline_create"), {"name": "b1"}),
    ):
        response = client_for(user).post(url, data)
        assert response.status_code == 403, url
    assert not Approval.objects.exists() and not Baseline.objects.exists()
    assert events(change) == ["created", "submitted"]
    assert ChangeRequest.objects.count() == 1


# ====================================================================================================
# Buttons: each role sees exactly the actions it may take
# ====================================================================================================

NONE: set[str] = set()
BUTTONS = {
    State.DRAFT: {
        "viewer": NONE,
        "requester": {"edit", "submit", "withdraw", "comment"},
        "approver": {"comment"},
        "staff": {"edit", "submit", "withdraw", "comment"},
    },
    State.SUBMITTED: {
        "viewer": NONE,
        "requester": {"edit", "withdraw", "comment"},
        "approver": {"approve", "reject", "comment"},
        "staff": {"edit", "approve", "reject", "withdraw", "comment"},
    },
    State.APPROVED: {
        "viewer": NONE,
        "requester": {"schedule", "withdraw", "comment"},
        "approver": {"schedule", "implement", "comment"},
        "staff": {"schedule", "implement", "withdraw", "comment"},
    },
    State.IMPLEMENTED: {
        "viewer": NONE,
        "requester": {"verify", "revert", "comment"},
        "approver": {"verify", "revert", "comment"},
        "staff": {"verify", "revert", "comment"},
    },
    State.VERIFIED: {
        "viewer": NONE,
        "requester": {"close", "revert", "comment"},
        "approver": {"close", "revert", "comment"},
        "staff": {"close", "revert", "comment"},
    },
    State.REJECTED: {
        "viewer": NONE,
        "requester": {"edit", "submit", "withdraw", "close", "comment"},
        "approver": {"close", "comment"},
        "staff": {"edit", "submit", "withdraw", "close", "comment"},
    },
    State.CLOSED: {"viewer": NONE, "requester": {"revert", "comment"}, "approver": {"revert", "comment"},
                   "staff": {"revert", "comment"}},
}


@pytest.mark.parametrize("state", list(BUTTONS))
def test_each_role_sees_only_the_buttons_it_may_use(state, test_branch, make_change, approver2, staff, as_role):
    change = in_state(make_change(test_branch), state, approver=approver2, staff=staff)
    for role, expected in BUTTONS[state].items():
        response = as_role(role).get(change.get_absolute_url())
        assert response.status_code == 200
        assert buttons(response) == expected, f"{role} on a {state} change"
        html = response.content.decode()
        for action in ("submit", "approve", "reject", "schedule", "implement", "verify", "close", "withdraw",
                       "revert"):
            assert (action_url(change, action) in html) is (action in expected), f"{role}: {action} on {state}"


def test_an_approver_who_voted_is_not_offered_the_vote_again(tls_branch, make_change, requester, approver, client_for):
    change = services.change_submit(change=make_change(tls_branch), acting_user=requester)
    change = services.change_approve(change=change, acting_user=approver)  # production: 1 of 2
    html = client_for(approver).get(change.get_absolute_url())
    assert buttons(html) == {"comment"}
    assert "You voted “approve”" in html.content.decode()


def test_emergency_change_offers_release_before_approval_to_approvers_only(test_branch, make_change, as_role):
    change = make_change(test_branch, type="emergency")
    assert "implement" in buttons(as_role("approver").get(change.get_absolute_url()))
    assert "implement" in buttons(as_role("staff").get(change.get_absolute_url()))
    assert "implement" not in buttons(as_role("requester").get(change.get_absolute_url()))


@pytest.mark.parametrize("role", ["viewer", "requester", "approver", "staff"])
def test_create_baseline_resolve_and_admin_links_follow_the_role(role, synced, as_role):
    synced.write("test/README.md", "# Test\n\ndirect edit\n")
    synced.commit("Direct edit")
    cmdb_services.repo_sync(trigger="test")
    client = as_role(role)
    new_cr = f'href="{reverse("changes:change_create")}"'
    assert (new_cr in client.get(reverse("changes:change_list")).content.decode()) is (role != "viewer")
    baselines = client.get(reverse("changes:baseline_list")).content.decode()
    assert (f'href="{reverse("changes:baseline_create")}"' in baselines) is (role == "staff")
    unauthorized = client.get(reverse("changes:unauthorized_list")).content.decode()
    assert "Direct edit" in unauthorized
    assert ('data-action="resolve"' in unauthorized) is (role == "staff")
    freezes = client.get(reverse("changes:freeze_list")).content.decode()
    assert (reverse("admin:changes_freezeperiod_changelist") in freezes) is (role == "staff")
