"""Baseline names: nothing that shadows a branch or another revision, and no tag without its row."""

from __future__ import annotations

import subprocess

import pytest

from changes import services
from changes.models import Baseline, ChangeEvent
from cmdb import services as cmdb_services
from tests.gitutil import on_branch

pytestmark = pytest.mark.django_db


def origin_tags(repo) -> list[str]:
    out = subprocess.run(["git", "-C", str(repo.origin), "tag", "--list"], capture_output=True, text=True, check=True)
    return out.stdout.split()


@pytest.mark.parametrize("name", ["main", "HEAD", "FETCH_HEAD", "feature/x", "origin/main", "refs/heads/x",
                                  "deadbeef", "a..b", "-x", "x.lock", "bad name", "x~1", "x^", "@{-1}"])
def test_names_that_shadow_a_ref_or_are_invalid_are_refused(synced, staff, name):
    on_branch(synced, "feature/x", {"README.md": "# x\n"})
    cmdb_services.repo_sync(trigger="test")
    with pytest.raises(services.ChangeError):
        services.baseline_create(acting_user=staff, name=name)
    assert not Baseline.objects.exists()
    assert origin_tags(synced) == []
    assert cmdb_services.get_repo().resolve("main") == synced.head()


def test_a_baseline_named_main_is_refused_through_the_api_with_a_message(synced, staff):
    from tests.cmdb.apiutil import token_client

    r = token_client(staff).post("/api/baselines/", {"name": "main"}, content_type="application/json")
    assert r.status_code == 400, r.content
    assert "branch" in r.json()["detail"]


def test_the_tag_is_removed_again_when_its_row_cannot_be_written(synced, staff, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(Baseline.objects, "create", fail)
    with pytest.raises(RuntimeError):
        services.baseline_create(acting_user=staff, name="baseline-2026-11")
    assert origin_tags(synced) == []
    assert "baseline-2026-11" not in cmdb_services.get_repo().tags()
    assert not ChangeEvent.objects.filter(action="baseline").exists()
