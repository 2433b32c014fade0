"""Input that once answered 500 (or the wrong status): names Git accepts, numbers too large for the
database, revisions that are not commits, branch names as revisions, unknown API routes."""

from __future__ import annotations

import pytest
import yaml

from cmdb import services
from tests.cmdb.apiutil import fast_password_hashing, token_client  # noqa: F401 (autouse)
from tests.gitutil import on_branch

pytestmark = pytest.mark.django_db

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
ODD_NAMES = ["new\nline.conf", "tab\there.conf", "100%.conf", "what?.conf", "hash#tag.conf", "ünï cödé.conf",
             "-dash.conf", "sp ace.conf", "back\\slash.conf"]


@pytest.fixture
def odd(synced):
    for name in ODD_NAMES:
        synced.write(f"production/web1/nginx/files/etc/{name}", "x\n")
    synced.write("production/web1/odd\napp/README.md", "# odd\n")
    synced.commit("odd names")
    services.repo_sync(trigger="test")
    return synced


def test_names_git_accepts_never_answer_500(odd, viewer, client_for):
    api = token_client(viewer)
    for url in ("/api/applications/", "/api/applications/?environment=production",
                "/api/applications/production/web1/nginx/", "/api/machines/production/web1/",
                "/api/artifacts/?ci=production/web1/nginx"):
        r = api.get(url)
        assert r.status_code in (200, 400, 404), (url, r.status_code)
    c = client_for(viewer)
    for url in ("/ci/production/web1/nginx/", "/ci/production/web1/", "/ci/production/web1/-/history/"):
        assert c.get(url).status_code == 200, url


def test_files_with_odd_names_open_from_their_links(odd, viewer, client_for):
    c = client_for(viewer)
    page = c.get("/ci/production/web1/nginx/")
    assert page.status_code == 200
    from urllib.parse import quote

    for name in ODD_NAMES:
        url = "/files/" + quote(f"production/web1/nginx/files/etc/{name}")
        r = c.get(url)
        assert r.status_code == 200, (name, r.status_code)
        assert c.get("/raw/" + quote(f"production/web1/nginx/files/etc/{name}")).status_code == 200, name


@pytest.mark.parametrize("url", [
    "/api/findings/?run=99999999999999999999999",
    "/api/events/?change=99999999999999999999999",
    "/api/findings/?run=-99999999999999999999999",
])
def test_integer_filters_too_large_for_the_database_are_400(synced, viewer, url):
    r = token_client(viewer).get(url)
    assert r.status_code == 400, (url, r.status_code, r.content[:200])
    assert "detail" in r.json()


@pytest.mark.parametrize("url", ["/changes/99999999999999999999999/", "/jobs/99999999999999999999999/",
                                 "/audits/99999999999999999999999/", "/audits/findings/99999999999999999999999/"])
def test_page_ids_too_large_are_404(synced, viewer, client_for, url):
    assert client_for(viewer).get(url).status_code == 404


@pytest.mark.parametrize("url", ["/api/changes/99999999999999999999999/", "/api/jobs/99999999999999999999999/",
                                 "/api/audits/99999999999999999999999/"])
def test_api_ids_too_large_are_404(synced, viewer, url):
    assert token_client(viewer).get(url).status_code == 404


def test_dry_run_by_a_viewer_with_bad_payload_is_403_not_500(synced, viewer):
    api = token_client(viewer)
    r = api.post("/api/dry-runs/", {"machines": ["production/web1", ""], "revision": "main"},
                 content_type="application/json")
    assert r.status_code == 403, r.content


def test_dry_run_bad_payload_by_staff_is_400_with_a_message(synced, staff):
    api = token_client(staff)
    r = api.post("/api/dry-runs/", {"machines": ["production/web1", ""], "revision": "main"},
                 content_type="application/json")
    assert r.status_code == 400, r.content
    assert r.json()["detail"]
    r = api.post("/api/dry-runs/", {"machines": [["nested"]], "revision": "main"}, content_type="application/json")
    assert r.status_code == 400, r.content
    r = api.post("/api/dry-runs/", [1, 2], content_type="application/json")
    assert r.status_code == 400, r.content


@pytest.mark.parametrize("sha", [EMPTY_TREE, "0" * 40, "abc", "HEAD~999"])
def test_commit_page_of_something_that_is_not_a_commit_is_404(synced, viewer, client_for, sha):
    assert client_for(viewer).get(f"/commits/{sha}/").status_code == 404


def test_commit_page_of_a_blob_is_404(synced, viewer, client_for):
    blob = synced.git("rev-parse", "HEAD:README.md").strip()
    assert client_for(viewer).get(f"/commits/{blob}/").status_code == 404


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete", "get"])
def test_unknown_api_routes_answer_json_404_for_every_method(synced, viewer, method):
    for client in (token_client(viewer), token_client()):
        r = getattr(client, method)("/api/no-such-thing/", {}, content_type="application/json")
        assert r.status_code == 404, (method, r.status_code)
        assert r["Content-Type"].startswith("application/json")
        assert r.json() == {"detail": "Not found."}
        r = getattr(client, method)("/api/no-such-thing", {}, content_type="application/json")
        assert r.status_code == 404 and r["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("query", ["page_size=null", "page_size=abc", "page_size=-1", "awaiting=maybe",
                                   "page=abc"])
def test_invalid_query_parameters_are_refused(synced, viewer, query):
    r = token_client(viewer).get(f"/api/changes/?{query}")
    assert r.status_code == (404 if query.startswith("page=") else 400), (query, r.status_code)


def test_every_impact_reason_the_portal_stores_is_in_the_schema(synced, viewer):
    from changes.models import ImpactedCI

    schema = yaml.safe_load(token_client(viewer).get("/api/schema/").content)
    enums = [c.get("enum") for c in schema["components"]["schemas"].values() if isinstance(c, dict)]
    enums += [p.get("enum") for c in schema["components"]["schemas"].values()
              for p in (c.get("properties") or {}).values() if isinstance(p, dict)]
    reasons = set(ImpactedCI.Reason.values)
    assert "redeploy" in reasons
    assert any(e and set(e) == reasons for e in enums), "no enum of exactly the impact reasons in the schema"


def test_a_branch_name_works_wherever_a_revision_is_accepted(synced, viewer, client_for):
    sha = on_branch(synced, "feature/x", {"production/web1/nginx/files/etc/nginx/nginx.conf": "worker_processes 8;\n"})
    services.repo_sync(trigger="test")
    c = client_for(viewer)
    path = "production/web1/nginx/files/etc/nginx/nginx.conf"
    for url in (f"/files/{path}?rev=feature/x", f"/raw/{path}?rev=feature/x",
                "/ci/production/web1/nginx/?rev=feature/x", "/ci/production/web1/nginx/-/history/?rev=feature/x",
                "/ci/production/web1/nginx/-/compare/?from=main&to=feature/x"):
        r = c.get(url)
        assert r.status_code == 200, (url, r.status_code)
    assert b"worker_processes 8" in c.get(f"/raw/{path}?rev=feature/x").content
    api = token_client(viewer)
    r = api.get("/api/applications/production/web1/nginx/?rev=feature/x")
    assert r.status_code == 200 and r.json()["revision"] == sha


@pytest.mark.parametrize("rev", ["x" * 3000, "a\x01b", "main..HEAD", "-h", "--all", "no-such-branch"])
def test_unknown_or_absurd_revisions_are_404(synced, viewer, client_for, rev):
    c = client_for(viewer)
    assert c.get("/ci/production/web1/-/compare/", {"from": rev, "to": "main"}).status_code == 404
    assert c.get("/ci/production/web1/-/compare/", {"from": "main", "to": rev}).status_code == 404
    assert c.get("/ci/production/web1/", {"rev": rev}).status_code == 404
    assert token_client(viewer).get("/api/machines/production/web1/", {"rev": rev}).status_code == 404
