"""What pages ask Git on every view is asked once per process while the refs stay the same: the
revision picker, where a branch points, a commit's secret rule, the clone itself. Every ref change
(a sync, a tag, a deleted branch, a moved local branch) is seen at once, and a failure is never kept."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from cmdb import gitrepo, indexer, services, versions
from cmdb.gitrepo import UnknownRevision

pytestmark = pytest.mark.django_db


@pytest.fixture
def git_calls(monkeypatch):
    """The git processes the wrapper starts (``_run``), by subcommand."""
    calls: list[str] = []
    real = subprocess.run

    def counting(cmd, *args, **kwargs):
        if cmd and cmd[0] == "git":
            calls.append(next(a for a in cmd[1:] if not a.startswith("-") and "/" not in a and "=" not in a))
        return real(cmd, *args, **kwargs)

    monkeypatch.setattr(gitrepo.subprocess, "run", counting)
    return calls


def choices() -> dict[str, str]:
    return {c.value: c.label for c in versions.rev_choices()}


def test_a_second_view_of_the_revision_picker_starts_no_git_process(synced, git_calls):
    first = choices()
    assert git_calls, "the first view asks Git"
    git_calls.clear()
    assert choices() == first
    assert git_calls == []


def test_a_branch_pushed_and_synced_shows_at_once(synced, git_calls):
    assert "feature/new" not in choices()
    synced.git("push", "-q", "origin", "HEAD:refs/heads/feature/new")
    services.repo_sync(trigger="test")
    assert choices()["feature/new"] == "branch"


def test_a_branch_deleted_on_origin_goes_at_the_next_sync(synced):
    synced.git("push", "-q", "origin", "HEAD:refs/heads/short-lived")
    services.repo_sync(trigger="test")
    assert "short-lived" in choices()
    synced.git("push", "-q", "origin", ":refs/heads/short-lived")
    services.repo_sync(trigger="test")
    assert "short-lived" not in choices()


def test_a_tag_made_by_the_portal_shows_at_once(synced):
    repo = services.get_repo()
    assert "v1" not in choices()
    repo.create_tag("v1", services.main_sha(repo), message="first", author=("Portal", "portal@example.com"))
    assert choices()["v1"] == "tag"


def test_where_main_points_follows_a_push_and_sync(synced):
    repo = services.get_repo()
    before = services.main_sha(repo)
    synced.write("production/web1/README.md", "# web1\n\nMoved on.\n")
    after = synced.commit("Move main")
    services.repo_sync(trigger="test")
    assert before != after
    assert services.main_sha(repo) == after
    assert repo.resolve("main") == after


def test_a_local_branch_reset_is_seen_by_the_next_resolve(synced):
    repo = services.get_repo()
    first = repo.resolve("HEAD")
    synced.write("production/web1/README.md", "# web1\n\nNext.\n")
    second = synced.commit("Next")
    services.repo_sync(trigger="test")
    assert repo.resolve("HEAD") == second
    repo.reset_branch("main", first)
    assert repo.resolve("HEAD") == first


def test_an_unknown_revision_is_not_remembered(synced):
    repo = services.get_repo()
    with pytest.raises(UnknownRevision):
        repo.resolve("later")
    synced.git("push", "-q", "origin", "HEAD:refs/heads/later")
    services.repo_sync(trigger="test")
    assert repo.resolve("later") == synced.head()


def test_answers_are_asked_again_after_the_time_limit(synced, git_calls, monkeypatch):
    choices()
    monkeypatch.setattr(gitrepo, "REFS_MEMO_SECONDS", 0.0)
    git_calls.clear()
    choices()
    assert "for-each-ref" in git_calls


def test_the_refs_state_changes_with_every_kind_of_ref_update(synced):
    repo = services.get_repo()
    seen = [repo.refs_state()]
    assert repo.refs_state() == seen[0], "stable while nothing moves"
    sha = services.main_sha(repo)
    for step in (["update-ref", "refs/heads/side", sha],
                 ["tag", "t1", sha],
                 ["pack-refs", "--all"],
                 ["update-ref", "-d", "refs/heads/side"],
                 ["symbolic-ref", "HEAD", "refs/heads/other"]):
        subprocess.run(["git", "-C", str(repo.path), *step], check=True, capture_output=True)
        seen.append(repo.refs_state())
        assert seen[-1] != seen[-2], step


def test_a_commits_secret_rule_is_read_once(synced, git_calls):
    repo = services.get_repo()
    sha = services.main_sha(repo)
    indexer.secret_patterns(repo, sha)
    git_calls.clear()
    indexer.secret_patterns(repo, sha)
    assert git_calls == []


def test_a_new_secret_rule_on_main_applies_at_once(synced):
    repo = services.get_repo()
    old = services.main_sha(repo)
    assert not indexer.secret_patterns(repo, old).match("production/web1/nginx/files/site.conf")
    synced.write(".cmdb-secrets", "production/web1/nginx/files/site.conf\n")
    synced.commit("Mark a secret")
    services.repo_sync(trigger="test")
    # Asked about the old commit: main's new rule counts too (the secret rule never depends on the revision).
    assert indexer.secret_patterns(repo, old).match("production/web1/nginx/files/site.conf")


def test_the_clone_is_opened_once_and_again_when_it_was_removed(synced, settings):
    repo = services.get_repo()
    assert services.get_repo() is repo
    shutil.rmtree(settings.CMDB_CLONE_DIR)
    again = services.get_repo()
    assert again is not repo
    assert (again.path / "HEAD").exists()


def test_a_new_origin_address_reaches_the_clone(synced, settings, tmp_path):
    good = settings.CMDB_REPO_URL
    services.get_repo()
    settings.CMDB_REPO_URL = str(tmp_path / "elsewhere.git")
    url = subprocess.run(["git", "-C", str(services.get_repo().path), "remote", "get-url", "origin"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert url == str(tmp_path / "elsewhere.git")
    settings.CMDB_REPO_URL = good
    url = subprocess.run(["git", "-C", str(services.get_repo().path), "remote", "get-url", "origin"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert url == good
