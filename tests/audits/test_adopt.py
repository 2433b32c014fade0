"""Adopt live as a patch: only the live edit reaches the branch; a later release is never reverted."""

from __future__ import annotations

import subprocess

import pytest

from changes.models import ChangeRequest
from cmdb.gitrepo import ConfigRepo, GitError
from tests.changes.apiutil import token_client

LONG = "prod/web1/nginx/files/etc/nginx/long.conf"
LINES = [f"setting_{c} = {c};\n" for c in "abcdefghij"]


def text(lines) -> str:
    return "".join(lines)


def replaced(index: int, line: str) -> list[str]:
    lines = list(LINES)
    lines[index] = line
    return lines


@pytest.fixture
def long_finding(audit_env, staff, run_audit):
    """long.conf on main; on web1 its second line was edited by hand; audited."""
    audit_env["repo"].write(LONG, text(LINES))
    audit_env["repo"].commit("Add long.conf")
    live = audit_env["machines"] / "machines/web1/etc/nginx/long.conf"
    live.write_text(text(replaced(1, "setting_b = live;  # hand edit\n")))
    live.chmod(0o644)
    run = run_audit(acting_user=staff, scope="prod/web1")
    return run.findings.get(target="/etc/nginx/long.conf", kind="content")


def on_origin(audit_env, rev: str, path: str) -> str:
    return subprocess.run(["git", "-C", str(audit_env["repo"].origin), "show", f"{rev}:{path}"], capture_output=True,
                          text=True, check=True).stdout


def branches(audit_env) -> str:
    return subprocess.run(["git", "-C", str(audit_env["repo"].origin), "branch", "--list", "audit/*"],
                          capture_output=True, text=True, check=True).stdout


def test_main_unchanged_since_the_audit_adopts_the_live_file(audit_env, long_finding, requester):
    response = token_client(requester).post(f"/api/findings/{long_finding.pk}/adopt/", {}, content_type="application/json")
    assert response.status_code == 200, response.content
    change = ChangeRequest.objects.get(pk=response.json()["change"])
    assert on_origin(audit_env, change.branch, LONG) == text(replaced(1, "setting_b = live;  # hand edit\n"))
    assert "Only the live edit is applied" in change.description


def test_a_later_release_of_other_lines_is_kept_and_only_the_live_edit_is_applied(audit_env, long_finding, requester):
    audit_env["repo"].write(LONG, text(replaced(8, "setting_i = released;\n")))
    audit_env["repo"].commit("A later release")
    response = token_client(requester).post(f"/api/findings/{long_finding.pk}/adopt/", {}, content_type="application/json")
    assert response.status_code == 200, response.content
    change = ChangeRequest.objects.get(pk=response.json()["change"])
    expected = replaced(1, "setting_b = live;  # hand edit\n")
    expected[8] = "setting_i = released;\n"
    assert on_origin(audit_env, change.branch, LONG) == text(expected)


def test_a_later_release_of_the_same_lines_refuses_the_adopt_and_shows_them(audit_env, long_finding, requester,
                                                                          client_for):
    audit_env["repo"].write(LONG, text(replaced(1, "setting_b = released;\n")))
    audit_env["repo"].commit("A later release of the same line")
    response = token_client(requester).post(f"/api/findings/{long_finding.pk}/adopt/", {}, content_type="application/json")
    assert response.status_code == 409
    detail = response.json()["detail"]
    assert "changed the same lines" in detail and "<<<<<<<" in detail
    assert "setting_b = released;" in detail and "setting_b = live;" in detail
    assert not ChangeRequest.objects.exists() and branches(audit_env) == ""
    long_finding.refresh_from_db()
    assert long_finding.state == "open"


def test_a_source_removed_on_main_since_refuses(audit_env, long_finding, requester):
    audit_env["repo"].git("rm", "-q", LONG)
    audit_env["repo"].commit("Drop long.conf")
    response = token_client(requester).post(f"/api/findings/{long_finding.pk}/adopt/", {}, content_type="application/json")
    assert response.status_code == 409 and "removed or renamed" in response.json()["detail"]
    assert not ChangeRequest.objects.exists()


def test_the_git_wrapper_merges_three_ways_and_says_when_it_cannot(tmp_path):
    subprocess.run(["git", "init", "-q", "--bare", str(tmp_path / "r.git")], check=True)
    repo = ConfigRepo(tmp_path / "r.git")
    base, ours, theirs = text(LINES), text(replaced(8, "i = ours;\n")), text(replaced(1, "b = theirs;\n"))
    clean = repo.merge_file(base.encode(), ours.encode(), theirs.encode())
    assert clean.conflicts == 0 and clean.content.decode().splitlines()[1::7] == ["b = theirs;", "i = ours;"]
    clash = repo.merge_file(base.encode(), text(replaced(1, "b = ours;\n")).encode(), theirs.encode(),
                            labels=("main", "audit", "live"))
    assert clash.conflicts == 1 and b"<<<<<<< main" in clash.content and b">>>>>>> live" in clash.content
    with pytest.raises(GitError, match="Binary"):
        repo.merge_file(b"\0a", b"\0b", b"\0c")
