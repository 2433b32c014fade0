"""Change requests and secrets: a branch that deletes a glob shows nothing in clear in its diff; a
change touching only root-level files needs the strictest approval policy of all environments."""

from __future__ import annotations

import pytest

from tests.gitutil import on_branch

pytestmark = pytest.mark.django_db

HTPASSWD = "production/web1/nginx/secrets/htpasswd"


def test_the_diff_of_a_branch_that_deletes_the_glob_is_masked(synced, requester, viewer, client_for, make_change):
    from changes import diffs

    on_branch(synced, "unmask", {".cmdb-secrets": "# nothing\n", HTPASSWD: "admin:NEW-HASH-0815\n"})
    change = make_change("unmask")
    patches = "\n".join(f.patch for ci in diffs.change_diff(change, can_view_secrets=False) for f in ci.files)
    assert "NEW-HASH-0815" not in patches
    page = client_for(viewer).get(f"/changes/{change.pk}/")
    assert page.status_code == 200 and b"NEW-HASH-0815" not in page.content


def test_a_change_touching_only_root_level_files_needs_the_strictest_policy(synced, make_change):
    for name, files in (("root-secrets", {".cmdb-secrets": "*.vault\n"}),
                        ("root-readme", {"README.md": "# Infra\n\nnew\n"}),
                        ("root-common", {"_common/ntp.conf": "server pool\n"})):
        on_branch(synced, name, files)
        change = make_change(name)
        assert change.required_approvals == 2, name  # production's default, the strictest
    on_branch(synced, "test-only", {"test/web-test1/nginx/files/etc/nginx/nginx.conf": "worker_processes 3;\n"})
    assert make_change("test-only").required_approvals == 1


def test_a_dry_run_of_a_branch_that_deletes_the_glob_shows_no_secret(dry_env, viewer, requester, make_change,
                                                                     django_capture_on_commit_callbacks):
    from deploys import services as dryrun
    from tests.cmdb.apiutil import token_client

    repo = dry_env["repo"]
    on_branch(repo, "unmask", {".cmdb-secrets": "# nothing\n",
                               "prod/web1/app/files/etc/app/secrets/token": "CLEAR-TOKEN-1234\n",
                               "prod/web1/app/files/etc/app/secrets/created": "CREATED-TOKEN-5678\n"})
    change = make_change("unmask")
    with django_capture_on_commit_callbacks(execute=True):
        job = dryrun.dryrun_start(acting_user=requester, change=change)
    job.refresh_from_db()
    assert job.state == "succeeded"
    body = token_client(viewer).get(f"/api/jobs/{job.pk}/")
    assert body.status_code == 200
    assert b"CLEAR-TOKEN" not in body.content and b"CREATED-TOKEN" not in body.content
    targets = {i["target"]: i for p in body.json()["plans"] for i in p["items"]}
    assert targets["/etc/app/secrets/created"]["action"] == "create" and targets["/etc/app/secrets/created"]["secret"]
    from django.test import Client

    c = Client()
    c.force_login(viewer)
    page = c.get(f"/jobs/{job.pk}/")
    assert page.status_code == 200 and b"CLEAR-TOKEN" not in page.content and b"CREATED-TOKEN" not in page.content
