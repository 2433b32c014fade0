"""*Adopt live* turns only the live edits into a branch: the difference between the declared file at
the audit's commit and the live file, merged three ways onto main as it is now. A release made after
the audit is kept; when it changed the same lines the adopt is refused with those lines (409, API and
page), leaving nothing behind. A mode is adopted only while main still declares the audited mode.
And the Git wrapper's file merge itself: clean, conflicting, binary."""

from __future__ import annotations

import json
import subprocess

import pytest
from django.urls import reverse

from audits.adopt import conflict_excerpt
from changes.models import ChangeEvent, ChangeRequest
from cmdb.gitrepo import ConfigRepo, GitError
from cmdb.secrets import MASK
from tests.changes.apiutil import token_client
from tests.changes.browser import Session
from tests.changes.ui import post as form_post

pytestmark = pytest.mark.django_db

NGINX = "prod/web1/nginx/files/etc/nginx/nginx.conf"
SAME = "prod/web1/nginx/files/etc/nginx/same.conf"
DECLARED = """worker_processes 2;
events { worker_connections 1024; }

http {
    ssl_protocols TLSv1 TLSv1.1 TLSv1.2;
    ssl_ciphers HIGH:!aNULL;
    keepalive_timeout 65;
}
"""
LIVE = DECLARED.replace("worker_processes 2;", "worker_processes 8;")  # the edit made on the machine
HARDENED = DECLARED.replace("TLSv1 TLSv1.1 TLSv1.2", "TLSv1.2 TLSv1.3")  # a release after the audit


@pytest.fixture
def nginx_finding(audit_env, staff, run_audit):
    """main declares a multi-line nginx.conf, web1 runs it with one line edited, and an audit saw that."""
    repo = audit_env["repo"]
    repo.write(NGINX, DECLARED)
    repo.commit("nginx.conf in full")
    (audit_env["machines"] / "machines/web1/etc/nginx/nginx.conf").write_text(LIVE)
    run = run_audit(acting_user=staff, scope="prod/web1")
    return run.findings.get(target="/etc/nginx/nginx.conf", kind="content")


def adopt(user, finding):
    return token_client(user).post(f"/api/findings/{finding.pk}/adopt/", data=json.dumps({}),
                                   content_type="application/json")


def origin_git(audit_env, *args: str) -> str:
    return subprocess.run(["git", "-C", str(audit_env["repo"].origin), *args],
                          capture_output=True, text=True, check=True).stdout


def release(audit_env, files: dict[str, str], message: str = "Release") -> str:
    repo = audit_env["repo"]
    for path, content in files.items():
        repo.write(path, content)
    return repo.commit(message)


def audit_branches(audit_env) -> str:
    return origin_git(audit_env, "branch", "--list", "audit/*").strip()


def assert_nothing_left(audit_env, finding, events_before):
    assert audit_branches(audit_env) == ""
    assert not ChangeRequest.objects.exists()
    assert ChangeEvent.objects.count() == events_before  # the record is unchanged
    finding.refresh_from_db()
    assert (finding.state, finding.change_id, finding.handled_by_id) == ("open", None, None)


# --- content -------------------------------------------------------------------------------------------
def test_main_unchanged_since_the_audit_the_branch_holds_the_live_file(audit_env, nginx_finding, requester):
    main = origin_git(audit_env, "rev-parse", "main").strip()
    response = adopt(requester, nginx_finding)
    assert response.status_code == 200, response.content
    change = ChangeRequest.objects.get(pk=response.json()["change"])
    assert origin_git(audit_env, "show", f"{change.branch}:{NGINX}") == LIVE
    assert origin_git(audit_env, "rev-parse", f"{change.branch}^").strip() == main  # from current main
    assert origin_git(audit_env, "diff", "--name-only", "main", change.branch).split() == [NGINX]
    run = nginx_finding.run
    for said in (f"Audit #{run.pk}", run.main_sha[:10], "machine prod/web1", f"finding #{nginx_finding.pk}",
                 "Only the live edits were applied", "has not changed the file since"):
        assert said in change.description
    nginx_finding.refresh_from_db()
    assert (nginx_finding.state, nginx_finding.change) == ("adopted", change)
    assert ChangeEvent.objects.filter(action="finding-adopted", change=change).exists()


def test_a_release_since_the_audit_is_kept_and_only_the_live_edit_is_applied(audit_env, nginx_finding, requester):
    released = release(audit_env, {NGINX: HARDENED}, "Harden TLS")
    response = adopt(requester, nginx_finding)
    assert response.status_code == 200, response.content
    change = ChangeRequest.objects.get(pk=response.json()["change"])
    adopted = origin_git(audit_env, "show", f"{change.branch}:{NGINX}")
    assert adopted == HARDENED.replace("worker_processes 2;", "worker_processes 8;")
    assert "TLSv1.2 TLSv1.3" in adopted and "TLSv1 TLSv1.1" not in adopted  # the release is not undone
    assert origin_git(audit_env, "rev-parse", f"{change.branch}^").strip() == released
    diff = origin_git(audit_env, "diff", "main", change.branch)
    assert "-worker_processes 2;" in diff and "+worker_processes 8;" in diff and "ssl_protocols" not in diff
    assert "its changes are kept" in change.description and released[:10] in change.description


def test_a_release_of_the_same_lines_refuses_the_adopt_with_the_conflicting_lines(audit_env, nginx_finding,
                                                                                  requester):
    release(audit_env, {NGINX: DECLARED.replace("worker_processes 2;", "worker_processes 4;")}, "More workers")
    events = ChangeEvent.objects.count()
    response = adopt(requester, nginx_finding)
    assert response.status_code == 409, response.content
    detail = response.json()["detail"]
    assert "changed the same lines" in detail and "would undo" in detail
    assert "<<<<<<< main" in detail and ">>>>>>> live on prod/web1" in detail
    assert "worker_processes 4;" in detail and "worker_processes 8;" in detail and "worker_processes 2;" in detail
    assert "ssl_ciphers" not in detail  # only the conflicting lines, not the whole file
    assert_nothing_left(audit_env, nginx_finding, events)


def test_the_refusal_page_shows_the_conflicting_lines_in_the_browser(audit_env, nginx_finding, requester, client_for):
    release(audit_env, {NGINX: DECLARED.replace("worker_processes 2;", "worker_processes 4;")}, "More workers")
    events = ChangeEvent.objects.count()
    client = client_for(requester)
    page = client.get(nginx_finding.get_absolute_url())
    assert b'value="adopt"' in page.content
    client.defaults["HTTP_REFERER"] = f"http://testserver{nginx_finding.get_absolute_url()}"
    response = form_post(client, reverse("audits:finding_act", args=[nginx_finding.pk]), {"action": "adopt", "note": ""})
    assert response.status_code == 409
    html = response.content.decode()
    assert "Not possible now" in html and "refusal-message" in html
    assert "&lt;&lt;&lt;&lt;&lt;&lt;&lt; main" in html and "worker_processes 4;" in html and "worker_processes 8;" in html
    assert f'href="http://testserver{nginx_finding.get_absolute_url()}"' in html  # the way back to the finding
    assert_nothing_left(audit_env, nginx_finding, events)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_refusal_page_in_a_real_browser_keeps_the_conflict_lines_apart(browser, live_server, audit_env,
                                                                          nginx_finding, requester):
    from playwright.sync_api import expect  # after the browser fixture: it skips/fails without Playwright

    release(audit_env, {NGINX: DECLARED.replace("worker_processes 2;", "worker_processes 4;")}, "More workers")
    rick = Session(browser, live_server.url, "requester", prefix="adopt")
    rick.login(requester.username)
    page = rick.page
    page.goto(f"{live_server.url}{nginx_finding.get_absolute_url()}")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.locator("#finding-actions").get_by_role("button", name="Adopt live into a CR").click()
    assert answer.value.status == 409
    expect(page.locator("h1")).to_have_text("Not possible now")
    message = page.locator(".refusal-message")
    expect(message).to_contain_text("changed the same lines")
    lines = message.inner_text().splitlines()  # as rendered: one line of the file per line on screen
    assert "<<<<<<< main " + main_head(audit_env)[:10] in lines
    assert "worker_processes 4;" in lines and "worker_processes 8;" in lines and ">>>>>>> live on prod/web1" in lines
    rick.shot("refused")
    page.get_by_role("link", name="Back").click()
    page.wait_for_url(f"{live_server.url}{nginx_finding.get_absolute_url()}")
    assert audit_branches(audit_env) == "" and not ChangeRequest.objects.exists()


def main_head(audit_env) -> str:
    return origin_git(audit_env, "rev-parse", "main").strip()


def test_the_conflict_excerpt_holds_only_the_conflicts_and_masks_private_keys():
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----"
    merged = f"a\n<<<<<<< main\n{key}\n=======\nb\n>>>>>>> live\nc\n<<<<<<< main\nd\n=======\ne\n>>>>>>> live\nz\n"
    excerpt = conflict_excerpt(merged.encode())
    assert "b3BlbnNzaC1rZXktdjE" not in excerpt and MASK in excerpt
    assert excerpt.splitlines()[-5:] == ["<<<<<<< main", "d", "=======", "e", ">>>>>>> live"]
    assert "a" not in excerpt.splitlines() and "c" not in excerpt.splitlines()
    long = conflict_excerpt(("<<<<<<< main\n" + "x\n" * 100 + ">>>>>>> live\n").encode(), limit=10)
    assert len(long.splitlines()) == 11 and long.endswith("(92 more lines)")


def test_a_source_removed_or_renamed_on_main_since_the_audit_is_refused(audit_env, nginx_finding, requester):
    repo = audit_env["repo"]
    repo.write("prod/_common/nginx/nginx.conf", DECLARED)
    repo.remove(NGINX)
    repo.write("prod/web1/nginx/manifest.toml",
               '[[file]]\npath = "/etc/nginx/nginx.conf"\nsource = "../../_common/nginx/nginx.conf"\n')
    repo.commit("nginx.conf shared by every production machine")
    events = ChangeEvent.objects.count()
    response = adopt(requester, nginx_finding)
    assert response.status_code == 409
    assert "declared by prod/_common/nginx/nginx.conf" in response.json()["detail"]
    assert "moved or renamed since audit" in response.json()["detail"]

    repo.remove("prod/_common/nginx/nginx.conf")
    repo.remove("prod/web1/nginx/manifest.toml")
    repo.commit("nginx.conf no longer managed")
    response = adopt(requester, nginx_finding)
    assert response.status_code == 409
    assert f"main no longer declares /etc/nginx/nginx.conf on prod/web1 ({NGINX} was removed" in response.json()["detail"]
    assert_nothing_left(audit_env, nginx_finding, events)


def test_a_file_made_secret_on_main_since_the_audit_is_never_adopted(audit_env, nginx_finding, requester):
    release(audit_env, {".cmdb-secrets": "**/secrets/**\n**/nginx.conf\n"})
    events = ChangeEvent.objects.count()
    response = adopt(requester, nginx_finding)
    assert response.status_code == 400 and "never copied" in response.json()["detail"]
    assert "worker_processes" not in response.json()["detail"]
    assert_nothing_left(audit_env, nginx_finding, events)


# --- mode and owner ------------------------------------------------------------------------------------
@pytest.fixture
def mode_finding(audit_env, staff, run_audit):
    (audit_env["machines"] / "machines/web1/etc/nginx/same.conf").chmod(0o755)
    run = run_audit(acting_user=staff, scope="prod/web1")
    return run.findings.get(target="/etc/nginx/same.conf", kind="mode")  # declared 0644 by Git, live 0755


def test_mode_adopt_writes_the_live_mode_onto_mains_content(audit_env, mode_finding, requester):
    release(audit_env, {SAME: "same, edited by a release\n"})
    response = adopt(requester, mode_finding)
    assert response.status_code == 200, response.content
    change = ChangeRequest.objects.get(pk=response.json()["change"])
    assert origin_git(audit_env, "ls-tree", change.branch, SAME).startswith("100755 ")
    assert origin_git(audit_env, "show", f"{change.branch}:{SAME}") == "same, edited by a release\n"
    assert origin_git(audit_env, "diff", "--name-only", "main", change.branch).split() == [SAME]
    assert "Only the live mode was applied: 0644 -> 0755" in change.description


@pytest.mark.parametrize("since", ["git-mode", "manifest-mode"])
def test_mode_adopt_is_refused_when_main_changed_the_mode_since(audit_env, mode_finding, requester, since):
    repo = audit_env["repo"]
    if since == "git-mode":
        repo.write(SAME, "same\n", mode=0o755)
    else:
        manifest = (repo.path / "prod/web1/nginx/manifest.toml").read_text()
        repo.write("prod/web1/nginx/manifest.toml", manifest + '\n[[file]]\npath = "/etc/nginx/same.conf"\nmode = "0600"\n')
    repo.commit("same.conf mode")
    events = ChangeEvent.objects.count()
    response = adopt(requester, mode_finding)
    assert response.status_code == 409, response.content
    wanted = "0755" if since == "git-mode" else "0600"
    assert f"main declares mode {wanted} for /etc/nginx/same.conf now, not 0644" in response.json()["detail"]
    assert_nothing_left(audit_env, mode_finding, events)


def test_mode_adopt_is_refused_when_the_live_mode_moved_since_the_audit(audit_env, mode_finding, requester):
    (audit_env["machines"] / "machines/web1/etc/nginx/same.conf").chmod(0o644)
    events = ChangeEvent.objects.count()
    response = adopt(requester, mode_finding)
    assert response.status_code == 409 and "changed since audit" in response.json()["detail"]
    assert_nothing_left(audit_env, mode_finding, events)


def test_owner_drift_is_never_adopted(audit_env, staff, requester, run_audit):
    finding = run_audit(acting_user=staff, scope="prod/web2").findings.get(target="/etc/owned.conf", kind="owner")
    events = ChangeEvent.objects.count()
    response = adopt(requester, finding)
    assert response.status_code == 400 and "Only content and mode drift" in response.json()["detail"]
    assert_nothing_left(audit_env, finding, events)


# --- the Git wrapper's merge ---------------------------------------------------------------------------
@pytest.fixture
def git_repo(tmp_path) -> ConfigRepo:
    subprocess.run(["git", "init", "-q", "--bare", str(tmp_path / "bare.git")], check=True)
    return ConfigRepo(tmp_path / "bare.git")


def test_merge_file_applies_the_edits_of_theirs_onto_ours(git_repo):
    base, ours, theirs = DECLARED.encode(), HARDENED.encode(), LIVE.encode()
    merged = git_repo.merge_file(base, ours, theirs)
    assert merged.conflicts == 0
    assert merged.content == HARDENED.replace("worker_processes 2;", "worker_processes 8;").encode()
    assert git_repo.merge_file(base, base, theirs).content == theirs  # ours unchanged: theirs as it is
    assert git_repo.merge_file(base, ours, base).content == ours  # theirs unchanged: ours as it is
    assert git_repo.merge_file(b"a\n", b"a\nb", b"a\nb").content == b"a\nb"  # no final newline kept


def test_merge_file_reports_conflicts_with_labelled_markers(git_repo):
    merged = git_repo.merge_file(b"x\nkeep\n1\n", b"x\nkeep\n2\n", b"x\nkeep\n3\n", labels=("main", "audit", "live"))
    assert merged.conflicts == 1
    assert merged.content == b"x\nkeep\n<<<<<<< main\n2\n||||||| audit\n1\n=======\n3\n>>>>>>> live\n"
    two = git_repo.merge_file(b"1\nm\nm\nm\n1\n", b"2\nm\nm\nm\n2\n", b"3\nm\nm\nm\n3\n")
    assert two.conflicts == 2


def test_merge_file_refuses_binary_content_unless_one_side_alone_changed(git_repo):
    base, ours, theirs = b"\x00\x01base", b"\x00\x01ours", b"\x00\x01theirs"
    with pytest.raises(GitError, match="Binary"):
        git_repo.merge_file(base, ours, theirs)
    assert git_repo.merge_file(base, base, theirs).content == theirs
    assert git_repo.merge_file(base, ours, ours).content == ours
