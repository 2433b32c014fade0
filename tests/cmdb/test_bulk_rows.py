"""The index's bulk writes (COPY on PostgreSQL, executemany on SQLite) store exactly what Git holds.

COPY has its own text format (tabs, newlines and backslashes are escaped), so awkward content is
checked byte for byte on both databases, and on PostgreSQL the COPY path is compared row for row
with plain INSERTs of the same commit.
"""

from __future__ import annotations

import pytest
from django.db import connection

from cmdb import bulk, search, services
from cmdb.models import Artifact, ConfigItem, LintWarning, SyncState

pytestmark = pytest.mark.django_db

README = "# odd\tone\n\nback\\slash \\N \\\\ \r\ncarriage, ünïcødé, \x7f and a\ttab\n"
ODD_FILE = "production/web1/nginx/files/etc/we ird\\name\twith tab.conf"


@pytest.fixture
def odd_repo(config_repo):
    config_repo.write("production/web1/nginx/README.md", README)
    config_repo.write(ODD_FILE, "x = 1\n")
    config_repo.symlink("production/web1/nginx/files/etc/link\\to", "we ird\\name\twith tab.conf")
    config_repo.commit("Awkward names and content")
    return config_repo


def _rows():
    cis = sorted(ConfigItem.objects.values_list(
        "path", "name", "kind", "depth", "parent__path", "has_readme", "readme_sha", "readme_markdown",
        "readme_html", "last_commit__sha", "artifact_count", "warning_count"))
    arts = sorted(Artifact.objects.values_list(
        "path", "ci__path", "name", "size", "blob_sha", "mode", "is_binary", "is_secret", "is_image", "is_symlink",
        "symlink_target"))
    warns = sorted(LintWarning.objects.values_list("path", "ci__path", "code", "severity", "message", "blob_sha"))
    found = {q: sorted(ConfigItem.objects.get(pk=h.ci_id).path for h in search.search(q))
             for q in ("odd", "backslash", "nginx", "production", "ünïcødé")}
    return cis, arts, warns, found


def test_awkward_content_is_stored_byte_for_byte(odd_repo):
    services.repo_sync(trigger="test")

    nginx = ConfigItem.objects.get(path="production/web1/nginx")
    assert nginx.readme_markdown == README
    odd = Artifact.objects.get(path=ODD_FILE)
    assert odd.name == "we ird\\name\twith tab.conf"
    assert odd.size == len("x = 1\n")
    link = Artifact.objects.get(path="production/web1/nginx/files/etc/link\\to")
    assert link.is_symlink and link.symlink_target == "we ird\\name\twith tab.conf"
    assert LintWarning.objects.filter(path="production/web1/nginx/files/etc/link\\to", code="symlink").exists()
    assert [ConfigItem.objects.get(pk=h.ci_id).path for h in search.search("ünïcødé")] == ["production/web1/nginx"]


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="COPY is the PostgreSQL path")
def test_copy_and_plain_inserts_index_the_same_rows(odd_repo, monkeypatch):
    services.repo_sync(trigger="test")
    copied = _rows()

    monkeypatch.setattr(bulk, "USE_COPY", False)
    SyncState.objects.filter(pk=1).update(indexed_commit=None)
    services.repo_sync(trigger="test")

    assert connection.vendor == "postgresql"
    assert _rows() == copied
