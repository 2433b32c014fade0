"""Sync of the portal's clone with origin: full, incremental, force-push, failures, coalescing."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from cmdb import search, services
from cmdb.models import Artifact, ConfigItem, LintWarning, SyncRun, SyncState

pytestmark = pytest.mark.django_db


def test_first_sync_indexes_every_ci_with_kind_parent_and_last_commit(config_repo):
    run = services.repo_sync(trigger="test")

    assert run.status == SyncRun.Status.SUCCEEDED
    assert run.mode == SyncRun.Mode.FULL
    assert run.to_sha == config_repo.head()
    kinds = dict(ConfigItem.objects.values_list("path", "kind"))
    assert kinds == {
        "": "root",
        "production": "environment",
        "production/_common": "common",
        "production/web1": "machine",
        "production/web1/nginx": "application",
        "production/db1": "machine",
        "production/db1/postgresql": "application",
        "test": "environment",
        "test/web-test1": "machine",
        "test/web-test1/nginx": "application",
    }
    nginx = ConfigItem.objects.get(path="production/web1/nginx")
    assert nginx.parent.path == "production/web1"
    assert nginx.last_commit.sha == config_repo.head()
    assert nginx.readme_markdown.startswith("# nginx")
    assert SyncState.get().indexed_commit.sha == config_repo.head()


def test_artifacts_record_size_blob_sha_mode_and_owner(synced):
    conf = Artifact.objects.get(path="production/web1/nginx/files/etc/nginx/nginx.conf")
    assert conf.ci.path == "production/web1/nginx"
    assert conf.size == len("worker_processes 4;\nevents { worker_connections 1024; }\n")
    assert len(conf.blob_sha) == 40
    assert conf.mode == "100644"
    assert not conf.is_binary and not conf.is_secret
    # _common artifacts belong to the _common CI, however deep
    assert Artifact.objects.get(path="production/_common/tls/fullchain.pem").ci.path == "production/_common"
    # READMEs are the CI's documentation, not artifacts
    assert not Artifact.objects.filter(name="README.md").exists()


def test_secret_patterns_from_repository_mark_artifacts_secret(synced):
    assert Artifact.objects.get(path="production/web1/nginx/secrets/htpasswd").is_secret


def test_one_file_commit_reindexes_incrementally_and_updates_last_commit(synced):
    before_db1 = ConfigItem.objects.get(path="production/db1").last_commit.sha
    untouched_pk = ConfigItem.objects.get(path="test/web-test1/nginx").pk
    synced.write("production/web1/nginx/files/etc/nginx/nginx.conf", "worker_processes 8;\n")
    new = synced.commit("Tune nginx workers")

    run = services.repo_sync(trigger="test")

    assert run.mode == SyncRun.Mode.INCREMENTAL
    assert run.paths_changed == 1
    conf = Artifact.objects.get(path="production/web1/nginx/files/etc/nginx/nginx.conf")
    assert conf.size == len("worker_processes 8;\n")
    for path in ("", "production", "production/web1", "production/web1/nginx"):
        assert ConfigItem.objects.get(path=path).last_commit.sha == new
    assert ConfigItem.objects.get(path="production/db1").last_commit.sha == before_db1
    # rows of CIs the commit did not touch are kept as they were
    assert ConfigItem.objects.get(path="test/web-test1/nginx").pk == untouched_pk


def test_incremental_sync_creates_and_deletes_cis(synced):
    synced.write("production/cache1/README.md", "# cache1\n")
    synced.write("production/cache1/redis/README.md", "# redis\n")
    synced.write("production/cache1/redis/files/etc/redis/redis.conf", "maxmemory 1gb\n")
    synced.remove("test")
    synced.commit("Add cache1, drop the test environment")

    run = services.repo_sync(trigger="test")

    assert run.mode == SyncRun.Mode.INCREMENTAL
    assert ConfigItem.objects.get(path="production/cache1/redis").parent.path == "production/cache1"
    assert not ConfigItem.objects.filter(path__startswith="test").exists()
    assert [h.ci_id for h in search.search("redis")] == [ConfigItem.objects.get(path="production/cache1/redis").pk]


def test_incremental_result_equals_a_full_index_of_the_same_commit(synced):
    synced.write("production/web1/nginx/files/etc/nginx/extra.conf", "gzip on;\n")
    synced.write("test/README.md", "# Test\n\nNow documented better.\n")
    synced.remove("production/db1/postgresql")
    synced.write("production/stray.txt", "oops")
    synced.commit("Mixed change")
    services.repo_sync(trigger="test")
    incremental = _snapshot_index()

    SyncState.objects.filter(pk=1).update(indexed_commit=None)
    services.repo_sync(trigger="test")

    assert SyncRun.objects.first().mode == SyncRun.Mode.FULL
    assert _snapshot_index() == incremental


def _snapshot_index():
    cis = sorted(
        ConfigItem.objects.values_list("path", "kind", "parent__path", "readme_sha", "last_commit__sha",
                                       "artifact_count", "warning_count")
    )
    arts = sorted(Artifact.objects.values_list("path", "ci__path", "blob_sha", "size", "is_secret", "is_binary"))
    warns = sorted(LintWarning.objects.values_list("path", "code", "ci__path"))
    return cis, arts, warns


def test_force_push_falls_back_to_a_full_index(synced):
    first = synced.head()
    synced.write("production/web1/README.md", "# web1 rewritten\n")
    synced.commit("To be rewritten")
    services.repo_sync(trigger="test")
    synced.git("reset", "-q", "--hard", first)
    synced.write("production/web1/README.md", "# web1 after force-push\n")
    rewritten = synced.commit("Rewritten history", push=False)
    synced.push(force=True)

    run = services.repo_sync(trigger="test")

    assert run.mode == SyncRun.Mode.FULL
    assert run.to_sha == rewritten
    assert ConfigItem.objects.get(path="production/web1").readme_markdown == "# web1 after force-push\n"


def test_sync_without_new_commits_is_a_noop(synced):
    run = services.repo_sync(trigger="test")
    assert run.mode == SyncRun.Mode.NOOP
    assert ConfigItem.objects.count() == 10


def test_unreachable_origin_keeps_the_last_good_index_and_records_the_error(synced, settings, tmp_path):
    count = ConfigItem.objects.count()
    settings.CMDB_REPO_URL = str(tmp_path / "does-not-exist.git")

    with pytest.raises(services.SyncError, match="Cannot fetch from origin"):
        services.repo_sync(trigger="test")

    assert ConfigItem.objects.count() == count
    state = SyncState.get()
    assert state.indexed_commit.sha == synced.head()
    assert "Cannot fetch" in state.last_error
    failed = SyncRun.objects.first()
    assert failed.status == SyncRun.Status.FAILED and failed.error
    assert state.running_since is None


def test_missing_branch_on_origin_is_a_clear_error(config_repo, settings):
    settings.CMDB_BRANCH = "production-only"
    with pytest.raises(services.SyncError, match="no branch 'production-only'"):
        services.repo_sync(trigger="test")


def test_no_origin_configured_is_a_clear_error(db, settings):
    settings.CMDB_REPO_URL = ""
    with pytest.raises(services.SyncError, match="CMDB_REPO_URL"):
        services.repo_sync(trigger="test")


def test_failure_in_the_middle_of_indexing_rolls_back_to_the_previous_index(synced, monkeypatch):
    before = _snapshot_index()
    synced.write("production/web1/nginx/files/etc/nginx/nginx.conf", "broken\n")
    synced.commit("Will fail to index")

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    from cmdb import indexer

    monkeypatch.setattr(indexer, "_recompute_duplicates", explode)
    with pytest.raises(services.SyncError, match="disk full"):
        services.repo_sync(trigger="test")

    assert _snapshot_index() == before
    assert "disk full" in SyncState.get().last_error


def test_success_after_a_failure_clears_the_error(synced, settings):
    good = settings.CMDB_REPO_URL
    settings.CMDB_REPO_URL = "/nonexistent/origin.git"
    with pytest.raises(services.SyncError):
        services.repo_sync(trigger="test")
    settings.CMDB_REPO_URL = good
    services.repo_sync(trigger="test")
    assert SyncState.get().last_error == ""


def test_sync_requested_while_one_runs_is_coalesced_into_one_more_pass(synced, monkeypatch):
    """A request arriving mid-sync is not lost: the running sync does another pass and sees its commit."""
    real_index = services.index_commit
    calls = []

    def index_and_meanwhile_push(repo, sha, *, previous):
        calls.append(sha)
        if len(calls) == 1:
            synced.write("production/web1/README.md", "# web1\n\nPushed while syncing.\n")
            synced.commit("Pushed during a sync")
            assert services.repo_sync(trigger="webhook") is None  # coalesced, not run
            assert SyncState.get().pending
        return real_index(repo, sha, previous=previous)

    synced.write("production/db1/README.md", "# db1 v2\n")
    synced.commit("First")
    monkeypatch.setattr(services, "index_commit", index_and_meanwhile_push)

    run = services.repo_sync(trigger="button")

    assert len(calls) == 2
    assert run.to_sha == synced.head()
    assert "Pushed while syncing" in ConfigItem.objects.get(path="production/web1").readme_markdown
    state = SyncState.get()
    assert state.running_since is None and not state.pending


def test_a_sync_left_running_by_a_dead_worker_does_not_block_forever(synced):
    from datetime import timedelta

    from django.utils import timezone

    SyncState.objects.filter(pk=1).update(running_since=timezone.now() - timedelta(hours=2))
    assert services.repo_sync(trigger="test") is not None


def test_cmdb_sync_command_reports_the_indexed_commit(config_repo, capsys):
    call_command("cmdb_sync")
    assert config_repo.head()[:10] in capsys.readouterr().out


def test_cmdb_sync_command_fails_loudly(db, settings):
    settings.CMDB_REPO_URL = "/nonexistent.git"
    with pytest.raises(CommandError, match="previous index is kept"):
        call_command("cmdb_sync")


def test_periodic_task_syncs_through_celery(config_repo):
    from cmdb.tasks import sync_repository

    result = sync_repository.delay(trigger="periodic").get()
    assert result["status"] == "succeeded"
    assert SyncRun.objects.get().trigger == "periodic"


def test_periodic_sync_is_scheduled_in_beat(settings):
    schedule = settings.CELERY_BEAT_SCHEDULE["cmdb-periodic-sync"]
    assert schedule["task"] == "cmdb.tasks.sync_repository"
    from portal.celery import app

    app.loader.import_default_modules()
    assert "cmdb.tasks.sync_repository" in app.tasks
