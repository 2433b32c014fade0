"""The change-control workflow on real repositories: create, impact, votes, release, record."""

from __future__ import annotations

import subprocess
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from changes import diffs, queries, services, unauthorized, verification
from changes.models import (
    AppendOnlyError,
    Approval,
    ChangeEvent,
    ChangeRequest,
    FreezePeriod,
    UnauthorizedCommit,
)
from cmdb import services as cmdb_services
from tests.gitutil import on_branch

pytestmark = pytest.mark.django_db
State = ChangeRequest.State


def actions(change):
    return list(ChangeEvent.objects.filter(change=change).values_list("action", flat=True))


def origin_head(repo, branch="main"):
    return subprocess.run(["git", "-C", str(repo.origin), "rev-parse", branch], capture_output=True, text=True,
                          check=True).stdout.strip()


def approve_fully(change, *approvers):
    for user in approvers:
        change = services.change_approve(change=change, acting_user=user)
    return change


# --- creation and impact ---------------------------------------------------------------------------


def test_requester_creates_a_draft_with_impact_from_the_merge_base(tls_branch, make_change, requester):
    change = make_change(tls_branch)

    assert change.state == State.DRAFT and change.requester == requester
    files = {f["path"] for f in change.impact["files"]}
    assert files == {"production/web1/nginx/files/etc/nginx/nginx.conf", "production/_common/tls/README.md"}
    reasons = {c["path"]: c["reason"] for c in change.impact["cis"]}
    assert reasons["production/web1/nginx"] == "direct"
    assert reasons["production/_common"] == "direct"
    # everything one level below production/_common depends on it
    assert reasons["production/db1"] == "common" and reasons["production/web1"] == "common"
    assert change.required_approvals == 2  # production needs two by default
    assert actions(change) == ["created"]


def test_a_test_only_change_needs_one_approval(test_branch, make_change):
    assert make_change(test_branch).required_approvals == 1


def test_approval_policy_from_the_database_is_the_strictest_of_the_environments(test_branch, make_change):
    from changes.models import ApprovalPolicy

    ApprovalPolicy.objects.create(environment="test", required_approvals=3)
    assert make_change(test_branch).required_approvals == 3


def test_unknown_branch_is_a_clear_error(synced, make_change):
    with pytest.raises(services.BadBranch, match="Unknown branch 'nope'"):
        make_change("nope")


def test_branch_without_changes_is_refused(synced, make_change):
    synced.git("push", "-q", "origin", "main:refs/heads/empty")
    with pytest.raises(services.BadBranch, match="no changes"):
        make_change("empty")


def test_branch_with_unrelated_history_is_refused(synced, make_change):
    synced.git("checkout", "-q", "--orphan", "alien")
    synced.git("rm", "-rqf", ".")
    synced.write("x/README.md", "# alien\n")
    synced.git("add", "-A")
    synced.git("commit", "-qm", "unrelated")
    synced.git("push", "-q", "origin", "alien")
    synced.git("checkout", "-q", "-f", "main")
    with pytest.raises(services.BadBranch, match="shares no history"):
        make_change("alien")


def test_viewer_cannot_open_a_change_request(tls_branch, make_change, viewer):
    with pytest.raises(services.ChangeForbidden):
        make_change(tls_branch, user=viewer)


# --- submission and votes ---------------------------------------------------------------------------


def test_submit_mails_the_approvers_after_commit(tls_branch, make_change, requester, approver, django_capture_on_commit_callbacks):
    approver.email = "alice@example.org"
    approver.save()
    change = make_change(tls_branch)

    with django_capture_on_commit_callbacks(execute=True):
        change = services.change_submit(change=change, acting_user=requester)

    assert change.state == State.SUBMITTED
    assert [m.to for m in mail.outbox] == [["alice@example.org"]]
    assert f"CR-{change.pk} awaits your approval" in mail.outbox[0].subject


def test_requester_cannot_approve_own_change(tls_branch, make_change, requester):
    change = services.change_submit(change=make_change(tls_branch), acting_user=requester)
    with pytest.raises(services.ChangeForbidden, match="other than the requester"):
        services.change_approve(change=change, acting_user=requester)


def test_production_change_is_approved_by_the_second_distinct_approver(tls_branch, make_change, requester, approver, approver2):
    change = services.change_submit(change=make_change(tls_branch), acting_user=requester)
    change = services.change_approve(change=change, acting_user=approver, comment="looks right")
    assert change.state == State.SUBMITTED
    with pytest.raises(services.ChangeConflict, match="already voted"):
        services.change_approve(change=change, acting_user=approver)
    change = services.change_approve(change=change, acting_user=approver2)
    assert change.state == State.APPROVED
    votes = Approval.objects.filter(change=change)
    assert votes.count() == 2 and {v.head_sha for v in votes} == {change.head_sha}
    assert actions(change)[-1] == "approved"


def test_rejection_needs_a_reason_and_mails_the_requester(test_branch, make_change, requester, approver,
                                                          django_capture_on_commit_callbacks):
    requester.email = "rick@example.org"
    requester.save()
    change = services.change_submit(change=make_change(test_branch), acting_user=requester)
    with pytest.raises(services.ChangeError, match="needs a reason"):
        services.change_reject(change=change, acting_user=approver, comment="  ")
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        change = services.change_reject(change=change, acting_user=approver, comment="Wrong worker count")
    assert change.state == State.REJECTED
    assert mail.outbox[0].to == ["rick@example.org"] and "Wrong worker count" in mail.outbox[0].body
    vote = Approval.objects.get(change=change)
    assert (vote.decision, vote.user, vote.comment) == ("reject", approver, "Wrong worker count")


def test_vote_for_a_head_the_voter_did_not_see_is_refused(test_branch, make_change, requester, approver):
    change = services.change_submit(change=make_change(test_branch), acting_user=requester)
    with pytest.raises(services.ChangeConflict, match="moved"):
        services.change_approve(change=change, acting_user=approver, head_sha="0" * 40)


def test_branch_moving_after_approval_dismisses_votes_and_returns_to_submitted(synced, test_branch, make_change, requester, approver):
    change = services.change_submit(change=make_change(test_branch), acting_user=requester)
    change = services.change_approve(change=change, acting_user=approver)
    assert change.state == State.APPROVED
    new_head = on_branch(synced, test_branch, {"test/web-test1/nginx/files/etc/nginx/nginx.conf": "worker_processes 3;\n"},
                         base=test_branch)

    cmdb_services.repo_sync(trigger="test")  # the sync refreshes open CRs

    change.refresh_from_db()
    assert change.state == State.SUBMITTED and change.head_sha == new_head
    assert services.live_approvals(change) == 0
    assert Approval.objects.get(change=change).dismissed_at is not None
    assert "branch-moved" in actions(change)


def test_branch_deleted_from_origin_is_flagged_and_blocks_submission(synced, test_branch, make_change, requester):
    change = make_change(test_branch)
    synced.git("push", "-q", "origin", f":{test_branch}")
    cmdb_services.repo_sync(trigger="test")
    change.refresh_from_db()
    assert change.branch_missing
    with pytest.raises(services.ChangeConflict, match="gone from origin"):
        services.change_submit(change=change, acting_user=requester)


def test_illegal_transitions_are_refused(test_branch, make_change, requester, staff):
    change = make_change(test_branch)
    with pytest.raises(services.IllegalTransition, match="draft"):
        verification.change_verify(change=change, acting_user=requester)
    with pytest.raises(services.IllegalTransition):
        services.change_implement(change=change, acting_user=staff)


# --- release -------------------------------------------------------------------------------------------


def test_implement_fast_forwards_main_on_origin_and_records_the_merge(synced, test_branch, make_change, requester, approver, staff,
                                                                    django_capture_on_commit_callbacks):
    change = approve_fully(services.change_submit(change=make_change(test_branch), acting_user=requester), approver)
    head = change.head_sha

    with django_capture_on_commit_callbacks(execute=True):
        change = services.change_implement(change=change, acting_user=staff)

    assert change.state == State.IMPLEMENTED and change.merged_sha == head
    assert origin_head(synced) == head
    # the release queued a sync, which indexed the new main
    assert cmdb_services.indexed_sha() == head
    merged = ChangeEvent.objects.get(change=change, action="merged")
    assert merged.commit_sha == head and merged.actor == staff
    # the release itself is not an unauthorized change
    assert not UnauthorizedCommit.objects.exists()


def test_implement_makes_a_merge_commit_naming_the_cr_when_main_moved(synced, test_branch, make_change, requester, approver, staff):
    change = approve_fully(services.change_submit(change=make_change(test_branch), acting_user=requester), approver)
    synced.write("production/db1/README.md", "# db1\n\nMoved on main.\n")
    synced.commit("Unrelated change on main")

    change = services.change_implement(change=change, acting_user=staff)

    merged = origin_head(synced)
    assert merged == change.merged_sha
    parents = subprocess.run(["git", "-C", str(synced.origin), "log", "-1", "--format=%P%n%s", merged],
                             capture_output=True, text=True, check=True).stdout.split("\n")
    assert len(parents[0].split()) == 2
    assert f"CR-{change.pk}" in parents[1]


def test_merge_conflict_is_a_clear_error_and_nothing_changes(synced, test_branch, make_change, requester, approver, staff):
    change = approve_fully(services.change_submit(change=make_change(test_branch), acting_user=requester), approver)
    synced.write("test/web-test1/nginx/files/etc/nginx/nginx.conf", "worker_processes 16;\n")
    before = synced.commit("Conflicting change on main")

    with pytest.raises(services.ChangeConflict, match="conflicts with main"):
        services.change_implement(change=change, acting_user=staff)

    change.refresh_from_db()
    assert change.state == State.APPROVED and not change.merged_sha
    assert origin_head(synced) == before
    assert "merged" not in actions(change)


def test_push_refused_by_origin_leaves_nothing_half_done(synced, test_branch, make_change, requester, approver, staff):
    change = approve_fully(services.change_submit(change=make_change(test_branch), acting_user=requester), approver)
    hook = synced.origin / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'main is protected' >&2\nexit 1\n")
    hook.chmod(0o755)
    before = origin_head(synced)

    with pytest.raises(services.ChangeConflict, match="refused"):
        services.change_implement(change=change, acting_user=staff)

    change.refresh_from_db()
    assert change.state == State.APPROVED and origin_head(synced) == before


def test_implement_twice_merges_once(synced, test_branch, make_change, requester, approver, staff):
    change = approve_fully(services.change_submit(change=make_change(test_branch), acting_user=requester), approver)
    services.change_implement(change=change, acting_user=staff)
    with pytest.raises(services.IllegalTransition, match="implemented"):
        services.change_implement(change=change, acting_user=staff)
    assert ChangeEvent.objects.filter(change=change, action="merged").count() == 1


def test_implement_refuses_when_the_branch_moved_since_approval(synced, test_branch, make_change, requester, approver, staff):
    change = approve_fully(services.change_submit(change=make_change(test_branch), acting_user=requester), approver)
    on_branch(synced, test_branch, {"test/web-test1/README.md": "# sneaky\n"}, base=test_branch)
    with pytest.raises(services.ChangeConflict, match="moved"):
        services.change_implement(change=change, acting_user=staff)
    assert origin_head(synced) != change.head_sha


def test_emergency_change_can_be_released_before_approval_and_stays_flagged(synced, test_branch, make_change, requester, approver, staff):
    change = make_change(test_branch, type="emergency")
    change = services.change_implement(change=change, acting_user=staff)
    assert change.state == State.IMPLEMENTED and change.needs_after_the_fact_approval
    change = services.change_approve(change=change, acting_user=approver)
    assert change.approved_after_the_fact and not change.needs_after_the_fact_approval
    assert "approved-after-the-fact" in actions(change)


def test_verify_and_close_after_release(synced, test_branch, make_change, requester, approver, staff):
    change = approve_fully(services.change_submit(change=make_change(test_branch), acting_user=requester), approver)
    change = services.change_implement(change=change, acting_user=staff)
    with pytest.raises(services.ChangeConflict, match="verification is not started"):
        verification.change_verify(change=change, acting_user=requester, comment="nginx reloaded fine")
    with pytest.raises(services.ChangeError, match="reason"):
        verification.change_verify(change=change, acting_user=requester, override=True)
    change = verification.change_verify(change=change, acting_user=requester, comment="nginx reloaded fine",
                                        override=True)
    change = services.change_close(change=change, acting_user=requester)
    assert change.state == State.CLOSED
    assert actions(change)[-3:] == ["verification-overridden", "verified", "closed"]


# --- scheduling and conflicts -----------------------------------------------------------------------


def test_scheduling_inside_a_freeze_is_refused_except_for_emergencies(synced, test_branch, make_change, requester, approver):
    start = timezone.now() + timedelta(days=3)
    FreezePeriod.objects.create(start=start - timedelta(days=1), end=start + timedelta(days=1), reason="Year-end")
    change = approve_fully(services.change_submit(change=make_change(test_branch), acting_user=requester), approver)
    with pytest.raises(services.ChangeConflict, match="Year-end"):
        services.change_schedule(change=change, acting_user=requester, planned_start=start, planned_end=start + timedelta(hours=1))
    ChangeRequest.objects.filter(pk=change.pk).update(type="emergency")
    change.refresh_from_db()
    change = services.change_schedule(change=change, acting_user=requester, planned_start=start, planned_end=start + timedelta(hours=1))
    assert change.state == State.SCHEDULED


def test_open_changes_on_the_same_ci_and_overlapping_windows_warn_each_other(synced, test_branch, make_change):
    on_branch(synced, "change/other", {"test/web-test1/nginx/files/etc/nginx/nginx.conf": "worker_processes 5;\n"})
    start = timezone.now() + timedelta(days=1)
    first = make_change(test_branch, planned_start=start, planned_end=start + timedelta(hours=2))
    second = make_change("change/other", planned_start=start + timedelta(hours=1), planned_end=start + timedelta(hours=3))

    conflicts = queries.conflicts_for(first)

    assert conflicts["same_ci"] == [second]
    assert conflicts["overlapping_windows"] == [second]
    assert queries.conflicts_for(second)["same_ci"] == [first]


# --- unauthorized changes, baselines, record ----------------------------------------------------------


def test_direct_push_to_main_is_flagged_until_acknowledged(synced, staff, requester):
    synced.write("production/web1/README.md", "# web1\n\nhot fix\n")
    sha = synced.commit("Hotfix pushed directly")
    cmdb_services.repo_sync(trigger="test")

    flagged = UnauthorizedCommit.objects.get(sha=sha)
    assert flagged.status == UnauthorizedCommit.Status.OPEN
    with pytest.raises(services.ChangeForbidden):
        unauthorized.unauthorized_acknowledge(commit=flagged, acting_user=requester, reason="ok")
    with pytest.raises(services.ChangeError, match="needs a reason"):
        unauthorized.unauthorized_acknowledge(commit=flagged, acting_user=staff, reason="")
    flagged = unauthorized.unauthorized_acknowledge(commit=flagged, acting_user=staff, reason="Outage fix, documented")
    assert flagged.status == UnauthorizedCommit.Status.ACKNOWLEDGED and flagged.resolved_by == staff
    assert ChangeEvent.objects.filter(action="unauthorized-acknowledged", commit_sha=sha).exists()


def test_unauthorized_commit_can_be_linked_to_a_change_request(synced, test_branch, make_change, staff):
    change = make_change(test_branch)
    synced.write("test/README.md", "# Test\n\nedited on main\n")
    sha = synced.commit("Direct edit")
    cmdb_services.repo_sync(trigger="test")
    flagged = unauthorized.unauthorized_link(commit=UnauthorizedCommit.objects.get(sha=sha), change=change, acting_user=staff)
    assert flagged.change == change
    assert "unauthorized-linked" in actions(change)


def test_staff_tags_a_baseline_on_origin(synced, staff, requester):
    with pytest.raises(services.ChangeForbidden):
        services.baseline_create(acting_user=requester, name="b1")
    baseline = services.baseline_create(acting_user=staff, name="baseline-2026-11", note="Monthly")
    assert baseline.sha == synced.head()
    assert origin_head(synced, "baseline-2026-11^{commit}") == synced.head()
    with pytest.raises(services.ChangeConflict, match="exists"):
        services.baseline_create(acting_user=staff, name="baseline-2026-11")


def test_the_record_is_append_only(test_branch, make_change):
    event = ChangeEvent.objects.get(change=make_change(test_branch))
    event.message = "rewritten"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()


def test_secrets_are_masked_in_the_change_diff(synced, make_change, requester, secret_viewer):
    on_branch(synced, "change/secret", {
        "production/web1/nginx/secrets/htpasswd": "admin:$apr1$new$hash\n",
        "production/web1/nginx/files/etc/ssl/key.pem": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    })
    change = make_change("change/secret")
    masked = "\n".join(f.patch for ci in diffs.change_diff(change, can_view_secrets=False) for f in ci.files)
    assert "apr1$new" not in masked and "AAAA" not in masked
    clear = "\n".join(f.patch for ci in diffs.change_diff(change, can_view_secrets=True) for f in ci.files)
    assert "apr1$new" in clear
