"""Rollback: reverting a released change request opens a new one whose branch undoes the release
(real Git repositories: the portal's clone and a bare origin)."""

from __future__ import annotations

import subprocess

import pytest

from changes import reverts, services
from changes.models import ChangeEvent, ChangeRequest
from cmdb import services as cmdb_services
from cmdb.gitrepo import GitError, MergeConflict
from tests.changes.apiutil import token_client
from tests.changes.ui import action_url, buttons, post
from tests.fixtures.windows import around_now
from tests.gitutil import on_branch

pytestmark = pytest.mark.django_db
State = ChangeRequest.State

TEST_NGINX = "test/web-test1/nginx/files/etc/nginx/nginx.conf"
DB1_README = "production/db1/README.md"
AUTHOR = ("Rita Revert", "rita@example.org")


def git(repo, *args: str) -> str:
    """A git command in the test's bare origin."""
    return subprocess.run(["git", "-C", str(repo.origin), *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def show(repo, rev: str, path: str) -> str:
    return git(repo, "show", f"{rev}:{path}")


def origin_branches(repo) -> list[str]:
    return git(repo, "for-each-ref", "--format=%(refname:strip=2)", "refs/heads/").split()


def actions(change) -> list[str]:
    return list(ChangeEvent.objects.filter(change=change).values_list("action", flat=True))


@pytest.fixture
def released(synced, test_branch, make_change, requester, approver, staff):
    """``release(moved=False)``: the test branch released to main (a merge commit when ``moved``: main
    got an unrelated commit first), then main moved on with a later change of another file."""

    def release(*, moved: bool = False, later: bool = True) -> ChangeRequest:
        change = services.change_submit(change=make_change(test_branch), acting_user=requester)
        change = services.change_approve(change=change, acting_user=approver)
        if moved:
            synced.write("production/web1/README.md", "# web1\n\nMoved on main before the release.\n")
            synced.commit("Unrelated change before the release")
        change = services.change_implement(change=change, acting_user=staff)
        synced.git("pull", "-q", "--ff-only", "origin", "main")
        if later:
            synced.write(DB1_README, "# db1\n\nA later change, to keep.\n")
            synced.commit("A later change on main")
        return change

    return release


# ====================================================================================================
# The workflow
# ====================================================================================================


def test_revert_of_a_fast_forward_release_undoes_it_on_top_of_main_and_keeps_later_changes(released, synced, requester):
    change = released()
    before = show(synced, f"{change.merged_sha}~1", TEST_NGINX)
    main = git(synced, "rev-parse", "main")

    revert = reverts.change_revert(change=change, acting_user=requester)

    assert revert.state == State.DRAFT and revert.reverts == change and revert.requester == requester
    assert revert.title == f"Revert {change.reference}: {change.title}"
    assert f"[{change.reference}]({change.get_absolute_url()})" in revert.description
    assert change.reference in revert.rollback_plan
    assert revert.branch == f"revert/{change.reference}-1" and revert.branch in origin_branches(synced)
    head = git(synced, "rev-parse", revert.branch)
    assert revert.head_sha == head and git(synced, "rev-parse", f"{head}^@") == main  # one commit on main
    assert show(synced, head, TEST_NGINX) == before == "worker_processes 1;"
    assert show(synced, head, DB1_README) == "# db1\n\nA later change, to keep."
    assert {f["path"] for f in revert.impact["files"]} == {TEST_NGINX}
    assert git(synced, "rev-parse", "main") == main  # main itself is untouched until the revert is released
    assert list(change.reverted_by.all()) == [revert]


def test_revert_of_a_merge_commit_release_restores_main_before_the_release(released, synced, requester):
    change = released(moved=True)
    parents = git(synced, "rev-parse", f"{change.merged_sha}^@").split()
    assert len(parents) == 2  # a merge commit released it
    before = parents[0]

    revert = reverts.change_revert(change=change, acting_user=requester)

    head = git(synced, "rev-parse", revert.branch)
    assert show(synced, head, TEST_NGINX) == show(synced, before, TEST_NGINX) == "worker_processes 1;"
    # what main had before the release (the earlier unrelated commit) and after it stays
    assert "Moved on main before the release." in show(synced, head, "production/web1/README.md")
    assert show(synced, head, DB1_README) == "# db1\n\nA later change, to keep."
    assert git(synced, "diff", "--name-only", "main", head) == TEST_NGINX


def test_the_revert_goes_through_approval_and_release_like_any_change(released, synced, requester, approver, staff):
    change = released()
    revert = reverts.change_revert(change=change, acting_user=requester)
    revert = services.change_approve(change=services.change_submit(change=revert, acting_user=requester),
                                     acting_user=approver)
    # like any change, it is released inside a planned window
    revert = services.change_schedule(change=revert, acting_user=approver, **around_now())
    revert = services.change_implement(change=revert, acting_user=staff)

    assert revert.state == State.IMPLEMENTED
    assert show(synced, "main", TEST_NGINX) == "worker_processes 1;"
    assert show(synced, "main", DB1_README) == "# db1\n\nA later change, to keep."
    # released, the revert leaves nothing of the original to revert a second time
    with pytest.raises(services.ChangeConflict, match="nothing to revert"):
        reverts.change_revert(change=change, acting_user=requester)


def test_the_original_records_the_revert_in_the_same_transaction(released, requester):
    change = released()

    revert = reverts.change_revert(change=change, acting_user=requester, type="emergency", reason="Outage on test")

    event = ChangeEvent.objects.get(change=change, action="revert-opened")
    assert event.actor == requester and event.commit_sha == revert.head_sha
    assert event.data["revert"] == revert.pk and event.data["branch"] == revert.branch
    assert revert.reference in event.message and "Outage on test" in event.message
    assert actions(revert) == ["created"]
    assert revert.type == ChangeRequest.Type.EMERGENCY and "Outage on test" in revert.description


def test_a_conflicting_later_change_is_refused_with_its_paths_and_leaves_nothing_behind(released, synced, requester):
    change = released(later=False)
    synced.write(TEST_NGINX, "worker_processes 16;\n")
    main = synced.commit("A later release touched the same line")
    branches = origin_branches(synced)

    with pytest.raises(services.ChangeConflict, match=TEST_NGINX) as refused:
        reverts.change_revert(change=change, acting_user=requester)

    assert refused.value.status == 409
    assert origin_branches(synced) == branches and not any(b.startswith("revert/") for b in branches)
    assert git(synced, "rev-parse", "main") == main
    assert ChangeRequest.objects.count() == 1
    assert "revert-opened" not in actions(change)


def test_a_failure_after_the_push_deletes_the_branch_again(released, synced, requester, monkeypatch):
    change = released(later=False)

    def broken(**kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(services, "record_event", broken)  # the last step: after the push and the new CR
    with pytest.raises(RuntimeError):
        reverts.change_revert(change=change, acting_user=requester)

    assert not any(b.startswith("revert/") for b in origin_branches(synced))
    assert ChangeRequest.objects.count() == 1 and "revert-opened" not in actions(change)


# ====================================================================================================
# Refusals
# ====================================================================================================


def test_a_change_not_yet_released_cannot_be_reverted(synced, test_branch, make_change, requester):
    change = make_change(test_branch)
    with pytest.raises(services.IllegalTransition, match="only a released change") as refused:
        reverts.change_revert(change=change, acting_user=requester)
    assert refused.value.status == 409 and ChangeRequest.objects.count() == 1


def test_a_second_revert_is_refused_while_one_is_pending_and_named(released, synced, requester, approver):
    change = released()
    first = reverts.change_revert(change=change, acting_user=requester)

    with pytest.raises(services.ChangeConflict, match=f"{first.reference} \\(draft\\) already reverts") as refused:
        reverts.change_revert(change=change, acting_user=approver)
    assert refused.value.status == 409
    assert [b for b in origin_branches(synced) if b.startswith("revert/")] == [first.branch]

    services.change_withdraw(change=first, acting_user=requester)
    second = reverts.change_revert(change=change, acting_user=approver)
    assert second.branch == f"revert/{change.reference}-2"  # the withdrawn revert's branch is still there


def test_a_release_no_longer_on_main_is_refused(released, synced, requester):
    change = released(later=False)
    synced.git("push", "-q", "--force", "origin", f"{change.merged_sha}~1:main")  # main rewound past the release

    with pytest.raises(services.ChangeConflict, match="no longer on main") as refused:
        reverts.change_revert(change=change, acting_user=requester)
    assert refused.value.status == 409 and not change.reverted_by.exists()


def test_an_emergency_revert_needs_a_reason_and_standard_is_not_a_revert_type(released, requester):
    change = released(later=False)
    with pytest.raises(services.ChangeError, match="needs a reason") as refused:
        reverts.change_revert(change=change, acting_user=requester, type="emergency", reason="  ")
    assert refused.value.status == 400
    with pytest.raises(services.ChangeError, match="normal or an emergency"):
        reverts.change_revert(change=change, acting_user=requester, type="standard")
    assert not change.reverted_by.exists()


@pytest.mark.parametrize(("role", "allowed"), [("viewer", False), ("requester", True), ("approver", True),
                                               ("staff", True)])
def test_who_may_revert(released, all_roles, role, allowed):
    change = released(later=False)
    user = all_roles[role]
    assert ("revert" in services.available_actions(user, change)) is allowed
    if allowed:
        assert reverts.change_revert(change=change, acting_user=user).reverts == change
    else:
        with pytest.raises(services.ChangeForbidden) as refused:
            reverts.change_revert(change=change, acting_user=user)
        assert refused.value.status == 403 and not change.reverted_by.exists()


# ====================================================================================================
# API
# ====================================================================================================


def test_api_revert_opens_the_linked_change_request(released, synced, requester):
    change = released()
    client = token_client(requester)

    r = client.post(f"/api/changes/{change.pk}/revert/", {"type": "emergency", "reason": "Broke the tests"},
                    content_type="application/json")

    assert r.status_code == 201, r.content
    body = r.json()
    assert body["reverts"] == change.pk and body["type"] == "emergency" and body["state"] == "draft"
    assert body["title"].startswith(f"Revert {change.reference}: ")
    assert r["Location"] == f"http://testserver/api/changes/{body['id']}/"
    original = client.get(f"/api/changes/{change.pk}/").json()
    assert original["reverted_by"] == [body["id"]] and original["reverts"] is None
    assert "revert" in original["actions"]
    assert [e["action"] for e in original["timeline"]][-1] == "revert-opened"


@pytest.mark.parametrize(("role", "status"), [("viewer", 403), ("requester", 201), ("approver", 201), ("staff", 201)])
def test_api_revert_per_role(released, all_roles, role, status):
    change = released(later=False)
    r = token_client(all_roles[role]).post(f"/api/changes/{change.pk}/revert/", {}, content_type="application/json")
    assert r.status_code == status, r.content
    assert change.reverted_by.count() == (1 if status == 201 else 0)


def test_api_refusals_are_409_or_400_with_the_reason(released, synced, test_branch, make_change, requester):
    client = token_client(requester)
    draft = make_change(test_branch, title="Still a draft")
    r = client.post(f"/api/changes/{draft.pk}/revert/", {}, content_type="application/json")
    assert r.status_code == 409 and "draft" in r.json()["detail"]

    change = released(later=False)
    r = client.post(f"/api/changes/{change.pk}/revert/", {"type": "standard"}, content_type="application/json")
    assert r.status_code == 400
    synced.write(TEST_NGINX, "worker_processes 16;\n")
    synced.commit("A later release touched the same line")
    r = client.post(f"/api/changes/{change.pk}/revert/", {}, content_type="application/json")
    assert r.status_code == 409 and TEST_NGINX in r.json()["detail"]
    assert not any(b.startswith("revert/") for b in origin_branches(synced))
    assert token_client(requester).post("/api/changes/999999/revert/", {}, content_type="application/json").status_code == 404


# ====================================================================================================
# Browser (the button on the change request page)
# ====================================================================================================


def test_the_button_opens_the_revert_and_both_pages_link_each_other(released, requester, client_for):
    change = released()
    client = client_for(requester)
    page = client.get(change.get_absolute_url())
    assert page.status_code == 200 and "revert" in buttons(page)

    response = post(client, action_url(change, "revert"), {"type": "normal", "reason": ""})

    revert = ChangeRequest.objects.get(reverts=change)
    assert response.status_code == 302 and response["Location"] == revert.get_absolute_url()
    page = client.get(revert.get_absolute_url()).content.decode()
    assert f'href="{change.get_absolute_url()}">{change.reference}</a>' in page and "Reverts the release of" in page
    page = client.get(change.get_absolute_url()).content.decode()
    assert f'href="{revert.get_absolute_url()}">{revert.reference}</a>' in page and "Reverted by" in page
    assert 'data-action="revert"' not in page and "is on its way to revert this release" in page
    assert "opened a change request reverting this release" in page  # the record entry


@pytest.mark.parametrize(("role", "status"), [("viewer", 403), ("requester", 302), ("approver", 302), ("staff", 302)])
def test_the_button_per_role(released, all_roles, client_for, role, status):
    change = released(later=False)
    client = client_for(all_roles[role])
    assert ("revert" in buttons(client.get(change.get_absolute_url()))) is (status == 302)

    response = post(client, action_url(change, "revert"), {"type": "normal"})

    assert response.status_code == status
    assert change.reverted_by.count() == (status == 302)
    assert ("revert-opened" in actions(change)) is (status == 302)
    if status == 403:
        assert "alert-danger" in response.content.decode()  # the page says why


def test_a_refused_revert_shows_the_conflict_on_the_page(released, synced, requester, client_for):
    change = released(later=False)
    synced.write(TEST_NGINX, "worker_processes 16;\n")
    synced.commit("A later release touched the same line")

    response = post(client_for(requester), action_url(change, "revert"), {"type": "emergency", "reason": "Outage"})

    assert response.status_code == 409
    assert TEST_NGINX in response.content.decode() and not change.reverted_by.exists()


# ====================================================================================================
# The Git wrapper: ConfigRepo.revert
# ====================================================================================================


def _clone():
    repo = cmdb_services.get_repo()
    repo.fetch("main")
    return repo


def test_wrapper_reverts_a_range_onto_a_later_main_without_moving_any_ref(synced):
    start = synced.head()
    synced.write(TEST_NGINX, "worker_processes 2;\n")
    first = synced.commit("first")
    synced.write("test/web-test1/README.md", "# web-test1\n\nsecond\n")
    second = synced.commit("second")
    synced.write(DB1_README, "# db1\n\nlater\n")
    later = synced.commit("later")
    repo = _clone()
    refs = git(synced, "for-each-ref")

    undo = repo.revert(later, [second, first], message="Revert both", author=AUTHOR)

    assert (undo.head, undo.base) == (second, start)
    assert sorted(undo.paths) == sorted([TEST_NGINX, "test/web-test1/README.md"])
    info = repo.commit(undo.sha)
    assert info.parents == (later,) and info.summary == "Revert both" and info.author_name == "Rita Revert"
    assert repo.changed_paths(start, undo.sha)[0].path == DB1_README  # only the later change differs from start
    assert len(repo.changed_paths(start, undo.sha)) == 1
    assert git(synced, "for-each-ref") == refs


def test_wrapper_finds_main_before_a_release_whose_branch_merged_main(synced):
    """A branch that merged main into itself: its fork point is older than main before the release,
    and reverting from there would also undo what main had before."""
    fork = synced.head()
    on_branch(synced, "feature", {TEST_NGINX: "worker_processes 2;\n"}, message="feature work")
    synced.write(DB1_README, "# db1\n\nOn main before the release.\n")
    before = synced.commit("main moves")
    synced.git("checkout", "-q", "feature")
    synced.git("merge", "-q", "--no-edit", "main")
    feature = synced.head()
    synced.git("checkout", "-q", "main")
    synced.git("merge", "-q", "--ff-only", "feature")
    synced.push()
    repo = _clone()
    release = repo.rev_list(f"{before}..{feature}")

    undo = repo.revert(feature, release, message="Revert", author=AUTHOR)

    assert (undo.head, undo.base) == (feature, before) and fork not in (undo.base,)
    assert undo.paths == (TEST_NGINX,)
    assert repo.changed_paths(before, undo.sha) == []


def test_wrapper_conflict_names_the_paths_and_a_range_not_on_main_is_refused(synced):
    start = synced.head()
    synced.write(TEST_NGINX, "worker_processes 2;\n")
    released_sha = synced.commit("release")
    synced.write(TEST_NGINX, "worker_processes 16;\n")
    later = synced.commit("same line later")
    repo = _clone()

    with pytest.raises(MergeConflict) as conflict:
        repo.revert(later, [released_sha], message="Revert", author=AUTHOR)
    assert conflict.value.paths == [TEST_NGINX]

    with pytest.raises(GitError, match="not one release"):
        repo.revert(start, [released_sha], message="Revert", author=AUTHOR)  # start does not contain it
    with pytest.raises(GitError, match="not one release"):
        repo.revert(later, [], message="Revert", author=AUTHOR)
