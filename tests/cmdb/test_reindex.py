"""A full index over an existing index writes only what differs, and still leaves the index as if
rebuilt from nothing (it compares with the rows in the database, not with what it wrote last time)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.models import Max
from django.test.utils import CaptureQueriesContext

from cmdb import search, services
from cmdb.models import Artifact, ConfigItem, LintWarning, SyncRun, SyncState

pytestmark = pytest.mark.django_db


def _full_sync():
    SyncState.objects.filter(pk=1).update(indexed_commit=None)
    run = services.repo_sync(trigger="test")
    assert run.mode == SyncRun.Mode.FULL
    return run


def _rows():
    cis = sorted(ConfigItem.objects.values_list("id", "path", "parent__path", "readme_markdown", "artifact_count",
                                                "warning_count", "last_commit__sha"))
    arts = sorted(Artifact.objects.values_list("id", "path", "ci__path", "size", "blob_sha", "is_secret"))
    warns = sorted(LintWarning.objects.values_list("path", "code", "ci__path", "message"))
    return cis, arts, warns


def _paths(query):
    return sorted(ConfigItem.objects.get(pk=h.ci_id).path for h in search.search(query))


def test_reindex_of_the_same_commit_keeps_every_row_and_rewrites_none(synced):
    before = _rows()
    found = _paths("nginx")

    with CaptureQueriesContext(connection) as captured:
        _full_sync()

    assert _rows() == before  # ids included: nothing was deleted and inserted again
    assert _paths("nginx") == found
    writes = [q["sql"] for q in captured.captured_queries
              if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "COPY"))
              and ("cmdb_artifact" in q["sql"] or "cmdb_configitem" in q["sql"] or "cmdb_search" in q["sql"])]
    assert writes == []


def test_reindex_repairs_rows_that_differ_from_git(synced):
    expected = _rows()
    conf = Artifact.objects.get(path="production/web1/nginx/files/etc/nginx/nginx.conf")
    Artifact.objects.filter(pk=conf.pk).update(size=1, is_secret=True)
    ConfigItem.objects.filter(path="production/db1").update(readme_markdown="tampered", artifact_count=99)
    db1 = ConfigItem.objects.get(path="production/db1").pk
    search.delete_documents([db1])
    search.add_documents([(db1, "db1", "production/db1", "tampered words")])
    search.add_documents([(10**9, "ghost", "ghost/machine", "nginx ghost")])  # a row whose CI is gone

    _full_sync()

    cis, arts, warns = _rows()
    assert (cis, warns) == expected[::2]
    assert sorted(a[1:] for a in arts) == sorted(a[1:] for a in expected[1])
    assert _paths("tampered") == [] and _paths("ghost") == []
    assert _paths("postgresql") == ["production/db1", "production/db1/postgresql"]


def test_reindex_after_a_force_push_replaces_what_changed(synced):
    first = synced.head()
    synced.write("production/web1/nginx/files/etc/nginx/nginx.conf", "worker_processes 2;\n")
    synced.write("production/web2/README.md", "# web2\n")
    synced.write("production/web2/nginx/README.md", "# nginx on web2\n")
    synced.commit("Grow")
    services.repo_sync(trigger="test")
    kept = ConfigItem.objects.get(path="test/web-test1/nginx").pk
    synced.git("reset", "-q", "--hard", first)
    synced.remove("production/db1")
    synced.commit("Rewritten: db1 retired", push=False)
    synced.push(force=True)

    run = services.repo_sync(trigger="test")

    assert run.mode == SyncRun.Mode.FULL
    assert not ConfigItem.objects.filter(path__startswith="production/web2").exists()
    assert not ConfigItem.objects.filter(path__startswith="production/db1").exists()
    assert not Artifact.objects.filter(path__startswith="production/db1/").exists()
    conf = Artifact.objects.get(path="production/web1/nginx/files/etc/nginx/nginx.conf")
    assert conf.size == len("worker_processes 4;\nevents { worker_connections 1024; }\n")
    assert ConfigItem.objects.get(path="test/web-test1/nginx").pk == kept
    assert _paths("web2") == [] and _paths("postgresql") == []
    assert ConfigItem.objects.get(path="production").artifact_count == 1  # topology.svg


def test_a_leftover_search_row_with_the_next_id_does_not_stop_a_sync(synced):
    next_id = ConfigItem.objects.aggregate(m=Max("id"))["m"] + 1
    search.add_documents([(next_id, "ghost", "ghost/machine", "ghost words")])
    synced.write("production/web3/README.md", "# web3\n")
    synced.commit("web3")

    run = services.repo_sync(trigger="test")

    assert run.mode == SyncRun.Mode.INCREMENTAL
    assert ConfigItem.objects.get(path="production/web3").pk == next_id
    assert _paths("web3") == ["production/web3"]
    assert _paths("ghost") == []
