"""The change-control browser UI on real repositories: list and filters, create and edit, the detail
page (header, warnings, Markdown, impact, per-CI diff with secrets masked, votes, record), every action
through its form with the record it writes, refused actions with their HTTP status, baselines,
unauthorized commits, freezes, the home card, the admin, and fixed query counts."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from changes import services
from changes.models import (
    Approval,
    Baseline,
    ChangeEvent,
    ChangeRequest,
    Comment,
    FreezePeriod,
)
from cmdb import services as cmdb_services
from tests.changes.ui import action_url, buttons, events, in_state, origin_head, post
from tests.gitutil import on_branch

pytestmark = pytest.mark.django_db
State = ChangeRequest.State


def html(response) -> str:
    return response.content.decode().replace("<wbr>", "")


def local(dt) -> str:
    return timezone.localtime(dt).strftime("%Y-%m-%dT%H:%M")


def window(days: int = 7, hours: int = 2) -> tuple:
    start = (timezone.now() + timedelta(days=days)).replace(second=0, microsecond=0)
    return start, start + timedelta(hours=hours)


# ====================================================================================================
# List
# ====================================================================================================


def _refs(response) -> list[str]:
    return [c.reference for c in response.context["rows"]]


def test_list_filters_by_state_type_environment_requester_branch_and_awaiting(
        synced, tls_branch, test_branch, make_change, requester, approver, approver2, client_for):
    prod = services.change_submit(change=make_change(tls_branch, title="TLS"), acting_user=requester)
    test = make_change(test_branch, title="Workers", type="emergency", user=approver)
    client = client_for(approver2)
    url = reverse("changes:change_list")

    assert _refs(client.get(url)) == [test.reference, prod.reference]  # newest first
    assert _refs(client.get(url, {"state": "submitted"})) == [prod.reference]
    assert _refs(client.get(url, {"state": "open"})) == [test.reference, prod.reference]
    assert _refs(client.get(url, {"state": "closed"})) == []
    assert _refs(client.get(url, {"type": "emergency"})) == [test.reference]
    assert _refs(client.get(url, {"environment": "production"})) == [prod.reference]
    assert _refs(client.get(url, {"environment": "test"})) == [test.reference]
    assert _refs(client.get(url, {"requester": approver.username})) == [test.reference]
    assert _refs(client.get(url, {"branch": "tls"})) == [prod.reference]
    assert _refs(client.get(url, {"awaiting": "on"})) == [prod.reference]
    assert _refs(client_for(requester).get(url, {"awaiting": "on"})) == []  # not an approver
    # the filter choices come from the data
    page = html(client.get(url))
    assert '<option value="production">production</option>' in page and f'<option value="{approver.username}">' in page
    assert ">0/2</span>" in page  # approvals for the current head of the submitted production change
    # an unknown choice is ignored rather than failing
    assert client.get(url, {"environment": "nowhere"}).status_code == 200


def test_list_sorts_by_the_column_headers(test_branch, tls_branch, make_change, viewer, client_for):
    a = make_change(tls_branch, title="Alpha")
    b = make_change(test_branch, title="Beta")
    client = client_for(viewer)
    url = reverse("changes:change_list")
    assert _refs(client.get(url, {"sort": "title"})) == [a.reference, b.reference]
    assert _refs(client.get(url, {"sort": "-title"})) == [b.reference, a.reference]
    assert _refs(client.get(url, {"sort": "ref"})) == [a.reference, b.reference]
    assert _refs(client.get(url, {"sort": "nonsense"})) == [b.reference, a.reference]
    page = html(client.get(url, {"sort": "title", "state": "open"}))
    assert 'href="?sort=-title&amp;state=open"' in page or 'href="?state=open&amp;sort=-title"' in page


def test_list_costs_the_same_queries_for_one_or_many_change_requests(synced, test_branch, make_change, requester, approver,
                                                                     viewer, client_for, django_assert_num_queries):
    make_change(test_branch)
    client = client_for(viewer)
    url = reverse("changes:change_list")
    # session, user, environments, requesters, count, page, environments of the page, groups, sync state
    with django_assert_num_queries(9):
        assert client.get(url).status_code == 200
    for i in range(6):
        on_branch(synced, f"change/n{i}", {f"test/web-test1/nginx/files/n{i}.conf": f"n = {i}\n"})
        change = make_change(f"change/n{i}", title=f"N{i}", planned_start=timezone.now(),
                             planned_end=timezone.now() + timedelta(hours=1))
        services.change_approve(change=services.change_submit(change=change, acting_user=requester), acting_user=approver)
    with django_assert_num_queries(9):
        response = client.get(url, {"state": "open", "environment": "test", "sort": "-window"})
    assert len(response.context["rows"]) == 7


# ====================================================================================================
# Create and edit
# ====================================================================================================


def test_create_form_offers_the_branches_of_origin(synced, tls_branch, test_branch, requester, client_for):
    page = html(client_for(requester).get(reverse("changes:change_create")))
    options = re.findall(r'<option value="([^"]*)"', page.split('name="branch"')[1].split("</select>")[0])
    assert options == ["", "change/test-only", "change/tls"]  # never main
    assert 'type="datetime-local"' in page


def test_create_opens_a_draft_and_redirects_to_it(synced, test_branch, requester, approver, client_for):
    start, end = window()
    client = client_for(requester)
    response = post(client, reverse("changes:change_create"), {
        "branch": test_branch, "title": "More workers", "description": "Because **load**.", "type": "standard",
        "risk": "low", "planned_start": local(start), "planned_end": local(end), "rollback_plan": "revert",
        "watchers": [approver.pk],
    })
    change = ChangeRequest.objects.get()
    assert response.status_code == 302 and response["Location"] == change.get_absolute_url()
    assert (change.title, change.type, change.risk, change.state) == ("More workers", "standard", "low", "draft")
    assert (change.planned_start, change.planned_end) == (start, end)
    assert list(change.watchers.all()) == [approver] and change.requester == requester
    assert events(change) == ["created"]
    follow = client.get(response["Location"])
    assert "was opened as a draft" in html(follow)


def test_create_with_an_unknown_branch_is_a_400_with_the_message(synced, requester, client_for):
    response = post(client_for(requester), reverse("changes:change_create"), {"branch": "nope", "title": "x",
                                                                                 "type": "normal", "risk": "low"})
    assert response.status_code == 400
    assert "Unknown branch &#x27;nope&#x27;: push it to origin first." in html(response)
    assert not ChangeRequest.objects.exists()


def test_create_refuses_a_branch_without_changes_and_bad_input_with_400(synced, requester, client_for):
    synced.git("push", "-q", "origin", "main:refs/heads/empty")
    client = client_for(requester)
    url = reverse("changes:change_create")
    start, end = window()
    cases = [
        ({"branch": "empty", "title": "x"}, "has no changes"),
        ({"branch": "empty", "title": ""}, "Title: This field is required."),
        ({"branch": "empty", "title": "x", "planned_start": local(end), "planned_end": local(start)},
         "must end after it starts"),
        ({"branch": "empty", "title": "x", "planned_start": local(start)}, "Give the end of the window."),
    ]
    for data, message in cases:
        response = post(client, url, {"type": "normal", "risk": "medium", **data})
        assert response.status_code == 400, data
        assert message in html(response), data
        assert 'class="alert alert-danger' in html(response)
    assert not ChangeRequest.objects.exists()


def test_edit_shows_the_values_and_records_the_change(test_branch, make_change, requester, client_for):
    start, end = window()
    change = make_change(test_branch, title="Old", planned_start=start, planned_end=end)
    client = client_for(requester)
    page = html(client.get(reverse("changes:change_edit", kwargs={"pk": change.pk})))
    assert 'value="Old"' in page and f'value="{local(start)}"' in page

    response = post(client, reverse("changes:change_edit", kwargs={"pk": change.pk}), {
        "title": "New", "type": "normal", "risk": "high", "planned_start": local(start), "planned_end": local(end)})

    assert response.status_code == 302
    change.refresh_from_db()
    assert (change.title, change.risk) == ("New", "high")
    edited = ChangeEvent.objects.filter(change=change, action="edited").get()
    assert edited.actor == requester and edited.message == "risk, title"


def test_edit_after_approval_is_a_409(test_branch, make_change, approver, requester, client_for):
    change = in_state(make_change(test_branch), State.APPROVED, approver=approver)
    url = reverse("changes:change_edit", kwargs={"pk": change.pk})
    assert client_for(requester).get(url).status_code == 409
    response = post(client_for(requester), url, {"title": "x", "type": "normal", "risk": "low"})
    assert response.status_code == 409 and "Cannot edit a change request that is approved." in html(response)


# ====================================================================================================
# Detail
# ====================================================================================================


def test_detail_header_links_the_head_commit_and_shows_the_window(tls_branch, make_change, viewer, client_for):
    start, end = window()
    change = make_change(tls_branch, title="Harden TLS", risk="high", planned_start=start, planned_end=end)
    page = html(client_for(viewer).get(change.get_absolute_url()))
    assert f"{change.reference}</span> Harden TLS" in page
    assert "state-badge state-draft" in page and "High risk" in page and "Normal" in page
    assert f'href="{reverse("cmdb:commit_detail", kwargs={"sha": change.head_sha})}"' in page
    assert "change/tls" in page and "rick_requester" in page
    assert timezone.localtime(start).strftime("%Y-%m-%d %H:%M") in page
    assert "0 of 2</strong> approvals for the current head" in page


def test_description_is_markdown_sanitized_without_repository_links(test_branch, make_change, viewer, client_for):
    change = make_change(test_branch, description=(
        "# Plan\n\nReload **nginx**.\n\n<script>alert('x')</script>\n\n"
        "[readme](production/README.md) [site](https://example.org/) <a href=\"javascript:alert(1)\">js</a>\n"
        "<img src=x onerror=alert(1)>"
    ))
    page = html(client_for(viewer).get(change.get_absolute_url()))
    body = page.split('class="markdown-body change-description">')[1].split("</article>")[0]
    assert "<strong>nginx</strong>" in body and '<h1 id="md-plan">Plan</h1>' in body
    assert "<script" not in body and "onerror" not in body and "javascript:" not in body
    assert '<a href="#"' in body  # relative links have no repository folder to resolve against
    assert 'href="https://example.org/"' in body


def test_impact_table_links_each_ci_and_says_why(tls_branch, make_change, viewer, client_for):
    change = make_change(tls_branch)
    page = html(client_for(viewer).get(change.get_absolute_url()))
    table = page.split('class="table table-sm align-middle mb-0 impact-table')[1].split("</table>")[0]
    for path in ("production/_common", "production/db1", "production/web1", "production/web1/nginx"):
        # the CI as the branch head has it (a CI the change adds exists only there)
        url = reverse("cmdb:ci_detail", kwargs={"path": path}) + f"?rev={change.head_sha}"
        assert f'href="{url}"' in table, path
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]

    def cell(row: str, label: str) -> str:
        return " ".join(re.sub(r"<[^>]+>", " ", row.split(f'data-label="{label}">')[1].split("</td>")[0]).split())

    reasons = {re.search(r'">([^<]+)</a>', r).group(1): (cell(r, "Reason"), cell(r, "Deploy")) for r in rows}
    # the branch changes nginx.conf (deployed) and a README of production/_common (reviewed only)
    assert reasons == {"production/_common": ("direct", "review only"),
                       "production/db1": ("common via production/_common", "review only"),
                       "production/web1": ("common via production/_common", "review only"),
                       "production/web1/nginx": ("direct", "deploy")}


def test_diff_is_grouped_by_ci_and_highlighted(tls_branch, make_change, viewer, client_for):
    change = make_change(tls_branch)
    response = client_for(viewer).get(change.get_absolute_url())
    groups = response.context["diff_groups"]
    assert [(g.path, [d.path for d in g.diffs]) for g in groups] == [
        ("production/_common", ["production/_common/tls/README.md"]),
        ("production/web1/nginx", ["production/web1/nginx/files/etc/nginx/nginx.conf"]),
    ]
    page = html(response)
    assert page.count('class="ci-diff-group') == 2 and 'class="highlight diff"' in page
    assert '<span class="gi">+ssl_protocols TLSv1.3;' in page
    file_url = cmdb_services.portal_url("file", "production/web1/nginx/files/etc/nginx/nginx.conf", change.head_sha)
    assert f'href="{file_url.replace("&", "&amp;")}"' in page


def test_secrets_in_the_diff_are_masked_unless_the_user_may_see_them(synced, make_change, viewer, secret_viewer, staff,
                                                                      client_for):
    on_branch(synced, "change/secret", {
        "production/web1/nginx/secrets/htpasswd": "admin:$apr1$new$hash\n",
        "production/web1/nginx/files/etc/ssl/key.pem": "-----BEGIN PRIVATE KEY-----\nAAAASECRET\n-----END PRIVATE KEY-----\n",
        "production/web1/nginx/files/etc/nginx/nginx.conf": "worker_processes 9;\n",
    })
    change = make_change("change/secret")
    masked = html(client_for(viewer).get(change.get_absolute_url()))
    assert "apr1$new" not in masked and "AAAASECRET" not in masked
    assert masked.count("secret: masked") >= 2 and "worker_processes 9;" in masked
    for user in (secret_viewer, staff):
        clear = html(client_for(user).get(change.get_absolute_url()))
        assert "apr1$new" in clear and "AAAASECRET" in clear, user


def test_warnings_for_conflicts_windows_and_freezes(synced, test_branch, make_change, viewer, client_for):
    on_branch(synced, "change/other", {"test/web-test1/nginx/files/etc/nginx/nginx.conf": "worker_processes 5;\n"})
    start, end = window()
    first = make_change(test_branch, planned_start=start, planned_end=end)
    second = make_change("change/other", planned_start=start + timedelta(hours=1), planned_end=end + timedelta(hours=1))
    FreezePeriod.objects.create(start=start - timedelta(days=1), end=end + timedelta(days=1), reason="Year-end freeze",
                                environment="test")
    page = html(client_for(viewer).get(first.get_absolute_url()))
    same_ci = page.split("warning-same-ci")[1].split("</div>\n</div>")[0]
    assert f'href="{second.get_absolute_url()}"' in same_ci
    assert f'href="{second.get_absolute_url()}"' in page.split("warning-overlap")[1].split("</div>\n</div>")[0]
    assert "Year-end freeze" in page.split("warning-freeze")[1]
    assert "warning-branch-missing" not in page and "warning-stale" not in page and "warning-unapproved" not in page


def test_warnings_for_a_moved_or_missing_branch_and_an_unapproved_emergency(synced, test_branch, make_change, requester,
                                                                             approver, staff, viewer, client_for):
    change = services.change_submit(change=make_change(test_branch), acting_user=requester)
    new_head = on_branch(synced, test_branch, {"test/web-test1/README.md": "# moved\n"}, base=test_branch)
    services.fetch()  # the portal saw the new head; the next sync has not refreshed the CR yet
    page = html(client_for(viewer).get(change.get_absolute_url()))
    assert "warning-stale" in page and new_head[:10] in page.split("warning-stale")[1]

    synced.git("push", "-q", "origin", f":{test_branch}")
    cmdb_services.repo_sync(trigger="test")
    page = html(client_for(viewer).get(change.get_absolute_url()))
    assert "warning-branch-missing" in page and "warning-stale" not in page

    on_branch(synced, "change/hotfix", {"test/web-test1/nginx/files/etc/nginx/nginx.conf": "worker_processes 7;\n"})
    emergency = services.change_implement(change=make_change("change/hotfix", type="emergency"), acting_user=staff)
    page = html(client_for(viewer).get(emergency.get_absolute_url()))
    assert "Emergency change released without approval." in page
    assert {"approve", "reject"} <= buttons(client_for(approver).get(emergency.get_absolute_url()))


def test_approvals_show_the_count_for_the_current_head_and_dismissed_votes(synced, tls_branch, make_change, requester,
                                                                           approver, approver2, viewer, client_for):
    change = services.change_submit(change=make_change(tls_branch), acting_user=requester)
    old_head = change.head_sha
    services.change_approve(change=change, acting_user=approver, comment="LGTM")
    page = html(client_for(viewer).get(change.get_absolute_url()))
    assert "1 of 2</strong> approvals for the current head" in page and "LGTM" in page
    on_branch(synced, tls_branch, {"production/web1/README.md": "# web1\n\nmoved\n"}, base=tls_branch)
    cmdb_services.repo_sync(trigger="test")
    change.refresh_from_db()
    services.change_approve(change=change, acting_user=approver2)

    page = html(client_for(viewer).get(change.get_absolute_url()))
    assert "1 of 2</strong> approvals for the current head" in page
    approvals = page.split("approval-table")[1].split("</table>")[0]
    assert approvals.count("approval-dismissed") == 1 and "dismissed" in approvals and old_head[:10] in approvals
    assert f"branch moved to {change.head_sha[:10]}" in approvals


def test_record_lists_every_event_with_actor_and_commit(test_branch, make_change, requester, approver, viewer, client_for):
    change = services.change_submit(change=make_change(test_branch), acting_user=requester)
    services.change_comment(change=change, acting_user=approver, body="Checked on staging.")
    page = html(client_for(viewer).get(change.get_absolute_url()))
    timeline = page.split("timeline-list")[1].split("</ol>")[0]
    assert re.findall(r'data-event="([a-z-]+)"', timeline) == ["created", "submitted", "commented"]
    assert "rick_requester</strong>" in timeline and "alice_approver</strong>" in timeline
    assert timeline.count(reverse("cmdb:commit_detail", kwargs={"sha": change.head_sha})) == 3
    assert "Checked on staging." in page.split('id="comments"')[1]


# ====================================================================================================
# Actions through the forms
# ====================================================================================================


def test_the_whole_workflow_through_the_forms_writes_the_record_and_releases_to_origin(
        synced, test_branch, make_change, requester, approver, staff, client_for, django_capture_on_commit_callbacks):
    change = make_change(test_branch)
    rick, alice, sam = client_for(requester), client_for(approver), client_for(staff)
    start, end = window(days=0)  # around now: the release happens inside it
    steps = [
        (rick, "submit", {}, ["submitted"]),
        (alice, "approve", {"comment": "ok", "head_sha": change.head_sha}, ["vote-approve", "approved"]),
        (rick, "schedule", {"planned_start": local(start), "planned_end": local(end)}, ["scheduled"]),
        # not deployed by the portal: the release is verified by an audit at once; its machines are
        # configured by hand, so it waits for their manual checks; rick verifies with a reason instead
        (sam, "implement", {}, ["merged", "audit-started"]),
        (rick, "verify", {"comment": "nginx reloaded", "override": "on"}, ["verification-overridden", "verified"]),
        (alice, "close", {}, ["closed"]),
    ]
    for client, action, data, written in steps:
        before = events(change)
        with django_capture_on_commit_callbacks(execute=True):
            response = post(client, action_url(change, action), data)
        assert response.status_code == 302, (action, html(response)[:3000])
        assert events(change) == before + written, action
        follow = client.get(response["Location"])
        assert "alert-success" in html(follow), action

    change.refresh_from_db()
    assert change.state == State.CLOSED and (change.planned_start, change.planned_end) == (start, end)
    assert origin_head(synced) == change.head_sha == change.merged_sha
    assert cmdb_services.indexed_sha() == change.head_sha  # the release synced the index
    actors = dict(ChangeEvent.objects.filter(change=change).values_list("action", "actor__username"))
    assert actors["merged"] == "sam_staff" and actors["verified"] == "rick_requester"
    assert ChangeEvent.objects.get(change=change, action="verified").message == "nginx reloaded"
    page = html(client_for(requester).get(change.get_absolute_url()))
    assert "state-badge state-closed" in page and buttons(client_for(requester).get(change.get_absolute_url())) == {"revert", "comment"}


def test_reject_needs_a_reason_and_nothing_is_stored_without_one(test_branch, make_change, requester, approver, client_for):
    change = services.change_submit(change=make_change(test_branch), acting_user=requester)
    response = post(client_for(approver), action_url(change, "reject"), {"comment": "  ", "head_sha": change.head_sha})
    assert response.status_code == 400 and "A rejection needs a reason." in html(response)
    assert not Approval.objects.exists() and events(change) == ["created", "submitted"]

    response = post(client_for(approver), action_url(change, "reject"), {"comment": "Wrong", "head_sha": change.head_sha})
    assert response.status_code == 302
    vote = Approval.objects.get()
    assert (vote.decision, vote.comment, vote.head_sha) == ("reject", "Wrong", change.head_sha)
    assert events(change)[-2:] == ["vote-reject", "rejected"]


def test_vote_for_a_head_the_approver_did_not_see_is_a_409(synced, test_branch, make_change, requester, approver, client_for):
    change = services.change_submit(change=make_change(test_branch), acting_user=requester)
    seen = change.head_sha
    on_branch(synced, test_branch, {"test/web-test1/README.md": "# sneaky\n"}, base=test_branch)
    cmdb_services.repo_sync(trigger="test")  # the CR now carries the new head

    response = post(client_for(approver), action_url(change, "approve"), {"head_sha": seen})

    assert response.status_code == 409 and "since you looked at" in html(response)
    assert not Approval.objects.exists()
    # the page shown with the error carries the new head (and its diff) for the next attempt
    change.refresh_from_db()
    assert f'name="head_sha" value="{change.head_sha}"' in html(response)
    assert "# sneaky" in html(response)
    assert post(client_for(approver), action_url(change, "approve"), {"head_sha": change.head_sha}).status_code == 302


def test_voting_twice_on_the_same_head_is_a_409(tls_branch, make_change, requester, approver, client_for):
    change = services.change_submit(change=make_change(tls_branch), acting_user=requester)
    assert post(client_for(approver), action_url(change, "approve"), {"head_sha": change.head_sha}).status_code == 302
    response = post(client_for(approver), action_url(change, "approve"), {"head_sha": change.head_sha})
    assert response.status_code == 409 and "already voted" in html(response)
    assert Approval.objects.count() == 1


def test_illegal_transition_is_a_409_with_the_reason(test_branch, make_change, requester, staff, client_for):
    change = make_change(test_branch)
    response = post(client_for(requester), action_url(change, "verify"), {})
    assert response.status_code == 409
    assert "Cannot verify a change request that is draft." in html(response)
    assert post(client_for(staff), action_url(change, "implement"), {}).status_code == 409
    assert post(client_for(requester), action_url(change, "close"), {}).status_code == 409
    assert events(change) == ["created"]


def test_schedule_inside_a_freeze_is_a_409_and_a_bad_window_a_400(test_branch, make_change, requester, approver, client_for):
    change = in_state(make_change(test_branch), State.APPROVED, approver=approver)
    start, end = window()
    FreezePeriod.objects.create(start=start - timedelta(hours=1), end=end, reason="Audit week")
    url = action_url(change, "schedule")
    response = post(client_for(requester), url, {"planned_start": local(start), "planned_end": local(end)})
    assert response.status_code == 409 and "Audit week" in html(response)
    response = post(client_for(requester), url, {"planned_start": local(end), "planned_end": local(start)})
    assert response.status_code == 400 and "must end after it starts" in html(response)
    response = post(client_for(requester), url, {})
    assert response.status_code == 400
    change.refresh_from_db()
    assert change.state == State.APPROVED and "scheduled" not in events(change)


def test_merge_conflict_on_release_is_a_409_and_main_is_untouched(synced, test_branch, make_change, approver, staff, client_for):
    change = in_state(make_change(test_branch), State.APPROVED, approver=approver)
    synced.write("test/web-test1/nginx/files/etc/nginx/nginx.conf", "worker_processes 16;\n")
    before = synced.commit("Conflicting change on main")
    response = post(client_for(staff), action_url(change, "implement"), {})
    assert response.status_code == 409 and "conflicts with main" in html(response)
    assert origin_head(synced) == before and "merged" not in events(change)


def test_comments_are_recorded_and_an_empty_one_is_a_400(test_branch, make_change, approver, client_for):
    change = make_change(test_branch)
    url = reverse("changes:change_comment", kwargs={"pk": change.pk})
    response = post(client_for(approver), url, {"body": "  "})
    assert response.status_code == 400 and "A comment cannot be empty." in html(response)
    response = post(client_for(approver), url, {"body": "Please add a rollback plan."})
    assert response.status_code == 302 and response["Location"].endswith("#comments")
    assert Comment.objects.get().author == approver
    assert events(change) == ["created", "commented"]


def test_unknown_actions_are_404_and_actions_accept_only_post(test_branch, make_change, staff, client_for):
    change = make_change(test_branch)
    client = client_for(staff)
    assert post(client, f"/changes/{change.pk}/merge-everything/", {}).status_code == 404
    assert post(client, "/changes/9999/submit/", {}).status_code == 404
    assert client.get(action_url(change, "submit")).status_code == 405
    assert client.get("/changes/9999/").status_code == 404


# ====================================================================================================
# Baselines
# ====================================================================================================


def test_staff_tag_a_baseline_and_a_duplicate_or_bad_name_is_refused(synced, staff, client_for):
    client = client_for(staff)
    response = post(client, reverse("changes:baseline_create"), {"name": "baseline-2026-11", "note": "Monthly"})
    assert response.status_code == 302 and response["Location"] == reverse("changes:baseline_list")
    baseline = Baseline.objects.get()
    assert baseline.sha == synced.head() == origin_head(synced, "baseline-2026-11^{commit}")
    assert ChangeEvent.objects.filter(action="baseline", commit_sha=baseline.sha).exists()
    page = html(client.get(reverse("changes:baseline_list")))
    assert "baseline-2026-11" in page and "Monthly" in page and "alert-success" in page

    response = post(client, reverse("changes:baseline_create"), {"name": "baseline-2026-11"})
    assert response.status_code == 409 and "exists already" in html(response)
    response = post(client, reverse("changes:baseline_create"), {"name": "bad name"})
    assert response.status_code == 400 and "valid tag name" in html(response)
    assert Baseline.objects.count() == 1


def test_compare_baselines_lists_the_cis_that_differ_with_links_to_their_compare_page(synced, staff, viewer, client_for):
    services.baseline_create(acting_user=staff, name="b1")
    synced.write("production/web1/nginx/files/etc/nginx/nginx.conf", "worker_processes 8;\n")
    synced.write("test/README.md", "# Test\n\nchanged\n")
    synced.write(".github/ci.yml", "on: push\n")
    synced.commit("Two CIs and tooling")
    cmdb_services.repo_sync(trigger="test")
    services.baseline_create(acting_user=staff, name="b2")
    client = client_for(viewer)

    response = client.get(reverse("changes:baseline_compare"), {"from": "b1", "to": "b2"})

    assert response.status_code == 200
    assert [(c.path, c.kind) for c in response.context["cis"]] == [("production/web1/nginx", "application"),
                                                                   ("test", "environment")]
    page = html(response)
    compare = reverse("cmdb:ci_compare", kwargs={"path": "production/web1/nginx"})
    link = re.search(rf'href="({re.escape(compare)}[^"]*)"', page).group(1).replace("&amp;", "&")
    assert "from=b1" in link and "to=b2" in link
    target = client.get(link)
    assert target.status_code == 200 and "worker_processes 8;" in html(target)
    # the list links to each baseline's changes since the previous one
    assert "from=b1&amp;to=b2" in html(client.get(reverse("changes:baseline_list")))


def test_compare_with_an_unknown_baseline_is_a_404_and_missing_input_a_400(synced, viewer, client_for):
    client = client_for(viewer)
    response = client.get(reverse("changes:baseline_compare"), {"from": "nope", "to": "main"})
    assert response.status_code == 404 and "Unknown revision" in html(response)
    assert client.get(reverse("changes:baseline_compare"), {"from": "main"}).status_code == 400
    assert client.get(reverse("changes:baseline_compare")).status_code == 200


# ====================================================================================================
# Unauthorized commits and freezes
# ====================================================================================================


def test_staff_acknowledge_an_unauthorized_commit_with_a_reason(direct_push, synced, staff, viewer, client_for):
    flagged = direct_push(synced)
    page = html(client_for(viewer).get(reverse("changes:unauthorized_list")))
    assert "Hotfix pushed directly" in page and reverse("cmdb:commit_detail", kwargs={"sha": flagged.sha}) in page
    url = reverse("changes:unauthorized_resolve", kwargs={"pk": flagged.pk})

    response = post(client_for(staff), url, {"resolution": "acknowledge", "reason": ""})
    assert response.status_code == 400 and "needs a reason" in html(response)
    response = post(client_for(staff), url, {"resolution": "acknowledge", "reason": "Outage fix, documented"})
    assert response.status_code == 302
    flagged.refresh_from_db()
    assert (flagged.status, flagged.resolved_by, flagged.reason) == ("acknowledged", staff, "Outage fix, documented")
    assert ChangeEvent.objects.filter(action="unauthorized-acknowledged", commit_sha=flagged.sha).exists()
    # resolved: gone from the default (open) list, shown with its resolution under "all"
    assert "Hotfix pushed directly" not in html(client_for(viewer).get(reverse("changes:unauthorized_list")))
    everything = html(client_for(viewer).get(reverse("changes:unauthorized_list"), {"status": ""}))
    assert "Outage fix, documented" in everything and "sam_staff" in everything
    # twice is a conflict
    response = post(client_for(staff), url, {"resolution": "acknowledge", "reason": "again"})
    assert response.status_code == 409 and "already acknowledged" in html(response)


def test_staff_link_an_unauthorized_commit_to_a_change_request(direct_push, synced, test_branch, make_change, staff, client_for):
    change = make_change(test_branch)
    flagged = direct_push(synced)
    url = reverse("changes:unauthorized_resolve", kwargs={"pk": flagged.pk})
    response = post(client_for(staff), url, {"resolution": "link", "change": "CR-999"})
    assert response.status_code == 400 and "There is no change request" in html(response)
    response = post(client_for(staff), url, {"resolution": "link", "change": change.reference, "reason": "part of it"})
    assert response.status_code == 302
    flagged.refresh_from_db()
    assert (flagged.status, flagged.change) == ("linked", change)
    assert "unauthorized-linked" in events(change)


def test_freeze_list_shows_current_upcoming_and_past_freezes(db, viewer, client_for):
    now = timezone.now()
    FreezePeriod.objects.create(start=now - timedelta(hours=1), end=now + timedelta(days=1), reason="Now frozen")
    FreezePeriod.objects.create(start=now + timedelta(days=5), end=now + timedelta(days=6), reason="Later",
                                environment="production")
    FreezePeriod.objects.create(start=now - timedelta(days=9), end=now - timedelta(days=8), reason="Long ago")
    response = client_for(viewer).get(reverse("changes:freeze_list"))
    assert [f.reason for f in response.context["current"]] == ["Now frozen", "Later"]
    assert [f.reason for f in response.context["past"]] == ["Long ago"]
    page = html(response)
    assert "in force" in page and "upcoming" in page and "every environment" in page


# ====================================================================================================
# Admin
# ====================================================================================================


def test_the_record_admin_is_read_only_even_for_superusers(test_branch, make_change, admin_client, admin_user):
    change = make_change(test_branch)
    event = ChangeEvent.objects.get(change=change)
    from django.contrib import admin as django_admin

    model_admin = django_admin.site._registry[ChangeEvent]
    request = type("R", (), {"user": admin_user})()
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request, event)
    assert not model_admin.has_delete_permission(request, event)
    assert admin_client.get(reverse("admin:changes_changeevent_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:changes_changeevent_add")).status_code == 403
    assert admin_client.get(reverse("admin:changes_changeevent_delete", args=[event.pk])).status_code == 403
    page = admin_client.get(reverse("admin:changes_changeevent_change", args=[event.pk]))
    assert page.status_code == 200 and b'name="_save"' not in page.content
    response = admin_client.post(reverse("admin:changes_changeevent_change", args=[event.pk]), {"message": "rewritten"})
    assert response.status_code == 403
    assert ChangeEvent.objects.get(pk=event.pk).message == event.message


def test_staff_manage_freezes_and_policies_in_the_admin_but_cannot_add_change_requests(db, staff, client):
    client.force_login(staff)
    start = timezone.now() + timedelta(days=1)
    response = client.post(reverse("admin:changes_freezeperiod_add"), {
        "start_0": start.strftime("%Y-%m-%d"), "start_1": "10:00:00",
        "end_0": (start + timedelta(days=1)).strftime("%Y-%m-%d"), "end_1": "10:00:00",
        "reason": "Release week", "environment": "",
    })
    assert response.status_code == 302, response.content[:2000]
    assert FreezePeriod.objects.get().reason == "Release week"
    assert client.get(reverse("admin:changes_approvalpolicy_add")).status_code == 200
    assert client.get(reverse("admin:changes_changerequest_add")).status_code == 403
    assert client.get(reverse("admin:changes_unauthorizedcommit_add")).status_code == 403


def test_change_request_admin_is_read_mostly(test_branch, make_change, requester, approver, staff, client):
    change = services.change_submit(change=make_change(test_branch), acting_user=requester)
    services.change_comment(change=change, acting_user=approver, body="seen")
    client.force_login(staff)
    url = reverse("admin:changes_changerequest_change", args=[change.pk])
    page = client.get(url)
    assert page.status_code == 200
    assert b'name="title"' not in page.content and b'name="watchers"' in page.content  # only watchers are editable
    assert b"seen" in page.content and b"submitted" in page.content  # comments and record inline, read-only
    response = client.post(url, {"watchers": [approver.pk], "impacted-TOTAL_FORMS": "0", "impacted-INITIAL_FORMS": "0",
                                 "approvals-TOTAL_FORMS": "0", "approvals-INITIAL_FORMS": "0",
                                 "comments-TOTAL_FORMS": "0", "comments-INITIAL_FORMS": "0",
                                 "events-TOTAL_FORMS": "0", "events-INITIAL_FORMS": "0"})
    assert response.status_code == 302, response.content[:3000]
    change.refresh_from_db()
    assert list(change.watchers.all()) == [approver] and change.state == State.SUBMITTED
    assert client.get(reverse("admin:changes_changerequest_delete", args=[change.pk])).status_code == 403


def test_people_who_are_not_staff_have_no_admin(db, approver, client):
    client.force_login(approver)
    assert client.get(reverse("admin:changes_freezeperiod_changelist")).status_code == 302  # to the admin login


# ====================================================================================================
# Queries
# ====================================================================================================


def _detail_queries(client, url: str) -> int:
    client.get(url)
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_detail_costs_a_fixed_number_of_queries(synced, tls_branch, make_change, requester, approver, approver2, viewer,
                                                client_for, django_assert_num_queries):
    start, end = window()
    change = services.change_submit(change=make_change(tls_branch, planned_start=start, planned_end=end),
                                    acting_user=requester)
    client = client_for(viewer)
    # session, user, CR, groups, approvals, 2 permission lookups, impacted CIs, watchers, live
    # approvals, record, comments, sync state, conflicts: paths, same CIs, machines, overlapping
    # windows, freezes; recent dry runs; the paths ever indexed as secret (one query, however many:
    # the globs themselves are read from Git)
    with django_assert_num_queries(20):
        client.get(change.get_absolute_url())
    # more votes, comments, record entries, other change requests and freezes cost nothing more
    services.change_approve(change=change, acting_user=approver, comment="one")
    for i in range(3):
        services.change_comment(change=change, acting_user=approver2, body=f"comment {i}")
        on_branch(synced, f"change/c{i}", {"production/web1/nginx/files/etc/nginx/nginx.conf": f"worker_processes {i};\n"})
        make_change(f"change/c{i}", planned_start=start, planned_end=end)
    FreezePeriod.objects.create(start=start, end=end, reason="f1")
    FreezePeriod.objects.create(start=start, end=end, reason="f2", environment="production")
    with django_assert_num_queries(20):
        response = client.get(change.get_absolute_url())
    assert len(response.context["conflicts"]["same_ci"]) == 3 and len(response.context["conflicts"]["freezes"]) == 2
    # without a window, the three window queries are skipped
    no_window = make_change(tls_branch, planned_start=None, planned_end=None)
    assert _detail_queries(client, no_window.get_absolute_url()) == 17


def test_viewer_without_groups_still_gets_pages(db, django_user_model, synced, client_for):
    """A signed-in account in no group at all reads like a viewer (the groups query finds nothing)."""
    lonely = django_user_model.objects.create_user("lonely", password="x")
    assert not Group.objects.filter(user=lonely).exists()
    client = client_for(lonely)
    assert client.get(reverse("changes:change_list")).status_code == 200
    assert client.get(reverse("changes:change_create")).status_code == 403
