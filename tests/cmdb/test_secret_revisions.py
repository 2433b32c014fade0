"""Whether a path is secret never depends on the revision a caller picks: an old commit made before a
glob was added, or a branch that deletes the glob, shows nothing in clear; secret material is not in
the search index."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from cmdb import services
from cmdb.models import SecretPath
from tests.cmdb.apiutil import fast_password_hashing, token_client  # noqa: F401 (autouse)
from tests.gitutil import on_branch

pytestmark = pytest.mark.django_db

TOKEN = "production/web1/nginx/files/etc/app.token"
HTPASSWD = "production/web1/nginx/secrets/htpasswd"
CLEAR = "TOKEN-IN-CLEAR-4711"


@pytest.fixture
def old_commit(synced):
    """A token committed before `.cmdb-secrets` listed `*.token`; the glob is added afterwards."""
    synced.write(TOKEN, f"{CLEAR}\n")
    old = synced.commit("add a token")
    synced.write(".cmdb-secrets", "# secrets\n**/secrets/**\n*.vault\n*.token\n")
    synced.commit("the token is a secret")
    services.repo_sync(trigger="test")
    return old


def pages(path: str, rev: str) -> list[str]:
    ci = "production/web1/nginx"
    return [f"/files/{quote(path)}?rev={quote(rev)}", f"/ci/{ci}/?rev={quote(rev)}",
            f"/ci/{ci}/-/history/?rev={quote(rev)}", f"/ci/{ci}/-/compare/?from=main&to={quote(rev)}",
            f"/ci/{ci}/-/compare/?from={quote(rev)}&to=main"]


def test_an_old_commit_made_before_the_glob_shows_nothing_in_clear(old_commit, viewer, client_for):
    c = client_for(viewer)
    for url in pages(TOKEN, old_commit) + [f"/commits/{old_commit}/"]:
        r = c.get(url)
        assert r.status_code == 200, url
        assert CLEAR.encode() not in r.content, url
    assert c.get(f"/raw/{TOKEN}?rev={old_commit}").status_code == 403
    api = token_client(viewer)
    body = api.get(f"/api/applications/production/web1/nginx/?rev={old_commit}").json()
    token = next(a for a in body["artifacts"] if a["path"] == TOKEN)
    assert token["masked"] is True


def test_a_role_with_view_secret_still_reads_it(old_commit, secret_viewer, client_for):
    r = client_for(secret_viewer).get(f"/raw/{TOKEN}?rev={old_commit}")
    assert r.status_code == 200 and CLEAR.encode() in r.content


def test_a_branch_that_deletes_the_glob_shows_nothing_in_clear(synced, viewer, secret_viewer, client_for):
    on_branch(synced, "unmask", {".cmdb-secrets": "# nothing\n", HTPASSWD: "admin:NEW-HASH-0815\n",
                                 "production/web1/nginx/secrets/added.txt": "ADDED-ON-BRANCH-77\n"})
    services.repo_sync(trigger="test")
    c = client_for(viewer)
    for path, marker in ((HTPASSWD, b"NEW-HASH-0815"), ("production/web1/nginx/secrets/added.txt", b"ADDED-ON-BRANCH")):
        for url in pages(path, "unmask"):
            r = c.get(url)
            assert r.status_code == 200, url
            assert marker not in r.content, url
        assert c.get(f"/raw/{path}?rev=unmask").status_code == 403, path
        assert client_for(secret_viewer).get(f"/raw/{path}?rev=unmask").status_code == 200
    branch_sha = synced.git("rev-parse", "unmask").strip()
    assert b"NEW-HASH-0815" not in c.get(f"/commits/{branch_sha}/").content


def test_every_secret_path_indexed_is_remembered(synced):
    assert set(SecretPath.objects.values_list("path", flat=True)) >= {HTPASSWD}
    synced.write(".cmdb-secrets", "# nothing any more\n")
    synced.commit("drop the globs")
    services.repo_sync(trigger="test")
    # Still secret at the new main, although no glob says so: it was a secret once.
    from cmdb.models import Artifact

    assert Artifact.objects.get(path=HTPASSWD).is_secret


def test_a_private_key_pasted_into_a_readme_is_not_in_the_search_index(synced, viewer):
    key = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUUNIQUEMARKER"
    synced.write("production/web1/README.md",
                 f"# web1\n\n-----BEGIN OPENSSH PRIVATE KEY-----\n{key}\n-----END OPENSSH PRIVATE KEY-----\n")
    synced.commit("oops")
    services.repo_sync(trigger="test")
    api = token_client(viewer)
    r = api.get("/api/search/", {"q": key})
    assert r.status_code == 200
    assert r.json()["count"] == 0
    assert api.get("/api/search/", {"q": "web1"}).json()["count"] >= 1
