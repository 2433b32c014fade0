"""The REST API on a real synced repository: CIs by kind and path, revisions, secrets, lint, search,
sync, tokens, the OpenAPI schema and its offline docs."""

from __future__ import annotations

import io
import json
import re

import pytest
import yaml
from django.core.management import call_command
from django.middleware.csrf import _get_new_csrf_string

from cmdb import services
from cmdb.models import ConfigItem, SyncRun, SyncState
from tests.cmdb.apiutil import (
    fast_password_hashing,  # noqa: F401 (autouse)
    paths,
    token_client,
)

pytestmark = pytest.mark.django_db

NGINX = "/api/applications/production/web1/nginx/"


@pytest.fixture
def api(synced, viewer):
    return token_client(viewer)


def resync():
    return services.repo_sync(trigger="test")


# --- configuration items: lists and filters ----------------------------------------------------------


def test_environments_list_in_path_order_with_the_documented_fields(api):
    r = api.get("/api/environments/")

    assert r.status_code == 200
    body = r.json()
    assert body["count"] == 2
    assert paths(r) == ["production", "test"]
    prod = body["results"][0]
    assert set(prod) == {
        "path", "name", "kind", "parent", "revision", "readme_markdown", "readme_html",
        "artifacts", "last_commit", "warnings", "url",
    }
    assert prod["kind"] == "environment" and prod["name"] == "production" and prod["parent"] == ""
    assert prod["revision"] == services.indexed_sha()
    assert [a["name"] for a in prod["artifacts"]] == ["topology.svg"]
    assert prod["artifacts"][0]["is_image"] is True
    assert prod["url"] == "http://testserver/ci/production/"


def test_machines_filter_by_environment(api):
    assert paths(api.get("/api/machines/")) == ["production/db1", "production/web1", "test/web-test1"]
    assert paths(api.get("/api/machines/?environment=production")) == ["production/db1", "production/web1"]
    assert paths(api.get("/api/machines/?environment=nowhere")) == []


def test_applications_filter_by_environment_and_machine(api):
    assert paths(api.get("/api/applications/?environment=production&machine=web1")) == ["production/web1/nginx"]
    assert paths(api.get("/api/applications/?machine=production/db1")) == ["production/db1/postgresql"]
    assert paths(api.get("/api/applications/?machine=web-test1")) == ["test/web-test1/nginx"]
    assert paths(api.get("/api/applications/?name=nginx")) == ["production/web1/nginx", "test/web-test1/nginx"]
    assert paths(api.get("/api/applications/?environment=test&machine=web1")) == []


def test_path_filter_is_exact(api):
    assert paths(api.get("/api/applications/?path=production/web1/nginx")) == ["production/web1/nginx"]
    assert paths(api.get("/api/applications/?path=production/web1")) == []


def test_commons_list_the_common_folders_with_their_artifacts(api):
    r = api.get("/api/commons/")

    assert paths(r) == ["production/_common"]
    common = r.json()["results"][0]
    assert common["kind"] == "common" and common["parent"] == "production"
    assert [a["path"] for a in common["artifacts"]] == ["production/_common/tls/fullchain.pem"]


def test_page_size_is_adjustable_and_capped(api):
    r = api.get("/api/machines/?page_size=2")
    assert len(r.json()["results"]) == 2 and r.json()["next"].endswith("page=2&page_size=2")
    assert len(api.get("/api/machines/?page_size=100000").json()["results"]) == 3


# --- configuration items: detail -----------------------------------------------------------------------


def test_application_detail_by_path_has_readme_artifacts_commit_and_portal_url(api, synced):
    r = api.get(NGINX)

    assert r.status_code == 200
    app = r.json()
    assert app["path"] == "production/web1/nginx" and app["kind"] == "application"
    assert app["parent"] == "production/web1"
    assert app["readme_markdown"].startswith("# nginx")
    assert "<pre>" in app["readme_html"] and "<script" not in app["readme_html"]
    assert app["last_commit"]["sha"] == synced.head()
    assert app["last_commit"]["summary"] == "Initial layout"
    assert app["last_commit"]["author"] == "Test Author"
    assert app["warnings"] == []
    assert app["url"] == "http://testserver/ci/production/web1/nginx/"
    conf = next(a for a in app["artifacts"] if a["name"] == "nginx.conf")
    assert conf == {
        "path": "production/web1/nginx/files/etc/nginx/nginx.conf", "name": "nginx.conf",
        "size": len("worker_processes 4;\nevents { worker_connections 1024; }\n"), "blob_sha": conf["blob_sha"],
        "mode": "100644", "is_binary": False, "is_secret": False, "is_image": False, "is_symlink": False,
        "masked": False, "url": "http://testserver/files/production/web1/nginx/files/etc/nginx/nginx.conf",
    }


def test_environment_detail_by_name_and_machine_and_common_by_path(api):
    assert api.get("/api/environments/production/").json()["name"] == "production"
    assert api.get("/api/machines/production/web1/").json()["kind"] == "machine"
    assert api.get("/api/commons/production/_common/").json()["kind"] == "common"


def test_readme_links_point_at_portal_pages(api):
    html = api.get("/api/machines/production/web1/").json()["readme_html"]
    assert 'href="/ci/production/_common/"' in html


def test_warnings_of_a_ci_are_listed_with_it(api, synced):
    synced.write("production/web1/php/php.ini", "memory_limit = 1G\n")
    synced.commit("php without README")
    resync()

    php = api.get("/api/applications/production/web1/php/").json()
    assert php["warnings"] == [{
        "code": "missing-readme", "severity": "error", "path": "production/web1/php",
        "message": "the application production/web1/php has no README.md.",
    }]


@pytest.mark.parametrize(
    "url",
    [
        "/api/applications/production/web1/nope/",
        "/api/machines/production/web1/nginx/",  # an application, not a machine
        "/api/environments/production/web1/",
        "/api/applications/production/web1/nginx/files/etc/",  # a folder inside a CI
        "/api/applications/production/web1/nginx/../../../../etc/passwd/",
        "/api/applications/%2e%2e/%2e%2e/etc/passwd/",
        "/api/applications/..%2f..%2fetc%2fpasswd/",
        "/api/machines/production/.git/",
        "/api/machines/production//web1/",
        "/api/environments/%00/",
        "/api/nothing-here/",
        "/api/applications/production/web1/nginx/-/history/",
    ],
)
def test_unknown_or_escaping_paths_are_json_404(api, url):
    r = api.get(url)

    assert r.status_code == 404
    assert r["Content-Type"] == "application/json"
    assert "detail" in r.json()


def test_wrong_method_is_a_json_405(api):
    r = api.post("/api/environments/", {})
    assert r.status_code == 405 and "detail" in r.json()


# --- revisions -----------------------------------------------------------------------------------------------


@pytest.fixture
def two_revisions(synced):
    """The standard layout, then a commit that rewrites nginx's README and adds an application."""
    first = synced.head()
    synced.write("production/web1/nginx/README.md", "# nginx\n\nNow with TLS.\n")
    synced.write("production/web1/php/README.md", "# php\n")
    second = synced.commit("TLS for nginx; php")
    resync()
    return first, second


def test_detail_at_an_older_commit_returns_the_older_readme(api, two_revisions):
    first, second = two_revisions

    now = api.get(NGINX).json()
    then = api.get(NGINX, {"rev": first}).json()

    assert "Now with TLS" in now["readme_markdown"] and now["revision"] == second
    assert "Now with TLS" not in then["readme_markdown"]
    assert then["readme_markdown"].startswith("# nginx\n\n```nginx")
    assert then["revision"] == first
    assert then["last_commit"]["sha"] == first
    assert then["warnings"] is None  # lint describes the indexed commit only
    assert then["url"] == f"http://testserver/ci/production/web1/nginx/?rev={first}"
    secret = next(a for a in then["artifacts"] if a["name"] == "htpasswd")
    assert secret["is_secret"] and secret["masked"]


def test_rev_accepts_branches_and_short_shas(api, two_revisions):
    first, second = two_revisions
    assert api.get(NGINX, {"rev": first[:10]}).json()["revision"] == first
    assert api.get(NGINX, {"rev": "main"}).json()["revision"] == second


def test_ci_that_did_not_exist_at_that_revision_is_404(api, two_revisions):
    first, _ = two_revisions
    assert api.get("/api/applications/production/web1/php/").status_code == 200
    r = api.get("/api/applications/production/web1/php/", {"rev": first})
    assert r.status_code == 404 and "detail" in r.json()


def test_list_at_another_revision_needs_a_path(api, two_revisions):
    first, _ = two_revisions

    r = api.get("/api/applications/", {"rev": first})
    assert r.status_code == 400
    assert "path=" in r.json()["detail"]

    r = api.get("/api/applications/", {"rev": first, "path": "production/web1/nginx"})
    assert r.status_code == 200
    assert r.json()["count"] == 1
    assert r.json()["results"][0]["readme_markdown"].startswith("# nginx\n\n```nginx")

    assert paths(api.get("/api/applications/", {"rev": first, "path": "production/web1/php"})) == []
    assert paths(api.get("/api/machines/", {"rev": first, "path": "production/web1/nginx"})) == []
    assert paths(api.get("/api/applications/", {"rev": first, "path": "production/web1/nginx",
                                                 "environment": "test"})) == []


def test_list_at_the_indexed_commit_is_the_index(api, two_revisions):
    _, second = two_revisions
    r = api.get("/api/applications/", {"rev": second})
    assert r.status_code == 200 and "production/web1/php" in paths(r)


@pytest.mark.parametrize("rev", ["no-such-branch", "0" * 40, "--output=/tmp/x", "main..HEAD"])
def test_unknown_rev_is_json_404_on_lists_and_details(api, rev):
    for url in ("/api/applications/", NGINX):
        r = api.get(url, {"rev": rev})
        assert r.status_code == 404, url
        assert "Unknown revision" in r.json()["detail"]


# --- secrets -----------------------------------------------------------------------------------------------------


def _htpasswd(client):
    app = client.get(NGINX).json()
    return next(a for a in app["artifacts"] if a["name"] == "htpasswd")


def test_secret_artifacts_are_masked_without_the_permission(synced, viewer, requester, approver):
    for user in (viewer, requester, approver):
        secret = _htpasswd(token_client(user))
        assert secret["is_secret"] is True and secret["masked"] is True
        assert len(secret["blob_sha"]) == 40  # metadata stays; content is never served by the API


def test_secret_artifacts_are_unmasked_for_secret_viewers_and_staff(synced, secret_viewer, staff):
    for user in (secret_viewer, staff):
        assert _htpasswd(token_client(user))["masked"] is False


def test_no_file_content_is_ever_in_a_ci(synced, staff):
    body = token_client(staff).get(NGINX).content.decode()
    assert "$apr1$" not in body  # the htpasswd hash
    assert "worker_processes" not in body


# --- query counts ------------------------------------------------------------------------------------------


# token (1) + the caller's permissions (2) + indexed commit (1) + count (1) + CIs with their last
# commit (1) + artifacts (1) + warnings (1)
LIST_QUERIES = 8


def _add_machines(repo, count: int) -> None:
    for i in range(count):
        repo.write(f"production/app{i}/README.md", f"# app{i}\n\nSee [nginx](nginx/).\n")
        for app in ("nginx", "redis"):
            repo.write(f"production/app{i}/{app}/README.md", f"# {app} on app{i}\n")
            repo.write(f"production/app{i}/{app}/files/{app}.conf", f"# {app} {i}\n")
            repo.write(f"production/app{i}/{app}/secrets/{app}.vault", "secret\n")
        repo.write(f"production/app{i}/php/php.ini", "memory_limit = 1G\n")  # a missing-readme warning
    repo.write("production/app0/redis/dump.bin", b"\0\1\2" * 50)
    repo.commit(f"{count} more machines")
    resync()


@pytest.mark.parametrize("endpoint", ["/api/machines/", "/api/applications/", "/api/environments/", "/api/commons/"])
def test_list_queries_do_not_grow_with_the_number_of_cis(synced, viewer, endpoint, django_assert_num_queries):
    client = token_client(viewer)
    client.get(endpoint)  # renders and stores READMEs on first use (see cmdb.api)
    with django_assert_num_queries(LIST_QUERIES):
        small = client.get(endpoint)

    _add_machines(synced, 12)
    client.get(endpoint + "?page_size=200")
    with django_assert_num_queries(LIST_QUERIES):
        large = client.get(endpoint + "?page_size=200")

    assert small.status_code == large.status_code == 200
    if endpoint in ("/api/machines/", "/api/applications/"):
        assert large.json()["count"] > small.json()["count"] + 10


def test_first_listing_renders_readmes_once_and_stores_them(synced, viewer, django_assert_max_num_queries):
    assert not ConfigItem.objects.filter(kind="application").exclude(readme_html="").exists()
    client = token_client(viewer)

    with django_assert_max_num_queries(LIST_QUERIES + 3):  # + one UPDATE per application
        first = client.get("/api/applications/")

    stored = ConfigItem.objects.get(path="production/web1/nginx").readme_html
    listed = {row["path"]: row["readme_html"] for row in first.json()["results"]}
    assert stored and stored == listed["production/web1/nginx"]


def test_lint_and_search_queries_are_fixed(synced, viewer, django_assert_num_queries):
    _add_machines(synced, 5)
    client = token_client(viewer)
    with django_assert_num_queries(3):  # token, count, warnings joined with their CI
        assert client.get("/api/lint/").json()["count"] > 5
    with django_assert_num_queries(3):  # token, full-text search, CIs of the hits
        assert client.get("/api/search/?q=redis").json()["count"] == 5


# --- lint ----------------------------------------------------------------------------------------------------------


@pytest.fixture
def linty(synced):
    synced.write("production/web1/php/php.ini", "memory_limit = 1G\n")  # missing README (error)
    synced.write("test/stray.conf", "x = 1\n")  # stray file at environment level (warning)
    synced.write("production/db1/postgresql/files/dump.bin", b"\0\1\2\3" * 10)  # binary (info)
    synced.commit("lint fodder")
    resync()
    return synced


def test_lint_lists_every_warning_with_its_ci(api, linty):
    rows = api.get("/api/lint/").json()["results"]
    by_code = {r["code"]: r for r in rows}

    assert set(by_code) == {"missing-readme", "stray-file", "binary-file"}
    assert by_code["missing-readme"] == {
        "code": "missing-readme", "severity": "error", "path": "production/web1/php",
        "message": "the application production/web1/php has no README.md.", "ci": "production/web1/php",
        "url": "http://testserver/ci/production/web1/php/",
    }
    assert by_code["stray-file"]["ci"] == "test"
    assert by_code["stray-file"]["url"] == "http://testserver/files/test/stray.conf"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("code=missing-readme", ["production/web1/php"]),
        ("severity=info", ["production/db1/postgresql/files/dump.bin"]),
        ("path__startswith=test/", ["test/stray.conf"]),
        ("environment=production", ["production/db1/postgresql/files/dump.bin", "production/web1/php"]),
        ("environment=production&severity=error", ["production/web1/php"]),
    ],
)
def test_lint_filters(api, linty, query, expected):
    assert paths(api.get(f"/api/lint/?{query}")) == expected


def test_lint_rejects_unknown_codes_with_json_400(api, linty):
    r = api.get("/api/lint/?code=bogus")
    assert r.status_code == 400
    assert "code" in r.json()["errors"] and r.json()["detail"]


# --- search ----------------------------------------------------------------------------------------------------


def test_search_ranks_name_matches_first_and_marks_the_matches(api):
    r = api.get("/api/search/", {"q": "postgresql"})

    assert r.status_code == 200
    hits = r.json()["results"]
    assert [h["path"] for h in hits] == ["production/db1/postgresql", "production/db1"]
    assert hits[0]["rank"] > hits[1]["rank"]
    assert hits[0]["kind"] == "application" and hits[0]["name"] == "postgresql"
    assert "<mark>postgresql</mark>" in hits[1]["snippet"]
    assert hits[1]["snippet_text"] == "# db1\n\nDatabase server running postgresql.\n"
    assert hits[1]["url"] == "http://testserver/ci/production/db1/"


def test_search_filters_by_kind_and_limits(api):
    assert {h["kind"] for h in api.get("/api/search/", {"q": "nginx", "kind": "application"}).json()["results"]} == {
        "application"
    }
    assert api.get("/api/search/", {"q": "nginx", "limit": 1}).json()["count"] == 1


def test_search_snippets_escape_readme_html(api, synced):
    synced.write("production/db1/README.md", "# db1\n\nif 1 < 2 & 3 <script>alert(1)</script> postgresql\n")
    synced.commit("html in readme")
    resync()
    hit = next(h for h in api.get("/api/search/", {"q": "postgresql"}).json()["results"] if h["path"] == "production/db1")
    assert "&lt;" in hit["snippet"] and "&amp;" in hit["snippet"]
    assert "<" not in re.sub("</?mark>", "", hit["snippet"])  # PostgreSQL drops the tag, SQLite escapes it


@pytest.mark.parametrize("query", ["", "?q=", "?q=%20", "?q=x&limit=0", "?q=x&limit=many", "?q=x&kind=planet"])
def test_search_without_a_query_or_with_bad_parameters_is_400(api, query):
    r = api.get("/api/search/" + query)
    assert r.status_code == 400 and r.json()["detail"]


# --- sync -------------------------------------------------------------------------------------------------------------


def test_sync_state_reports_the_indexed_commit_and_recent_runs(api, synced):
    body = api.get("/api/sync/").json()

    assert body["indexed_commit"]["sha"] == synced.head()
    assert body["branch"] == "main"
    assert body["running"] is False and body["last_error"] == ""
    assert [r["trigger"] for r in body["runs"]] == ["test"]
    assert body["runs"][0]["status"] == "succeeded" and body["runs"][0]["to_sha"] == synced.head()


def test_sync_state_keeps_only_the_last_ten_runs(api):
    for _ in range(12):
        resync()
    assert len(api.get("/api/sync/").json()["runs"]) == 10


def test_sync_state_before_any_sync(db, viewer):
    body = token_client(viewer).get("/api/sync/").json()
    assert body["indexed_commit"] is None and body["runs"] == [] and body["running"] is False
    assert not SyncState.objects.exists()  # a GET writes nothing


def test_staff_post_queues_a_sync_that_indexes_the_new_origin_commit(
    synced, staff, django_capture_on_commit_callbacks
):
    synced.write("production/web1/nginx/README.md", "# nginx\n\nchanged\n")
    head = synced.commit("change")

    with django_capture_on_commit_callbacks(execute=True):
        r = token_client(staff).post("/api/sync/")

    assert r.status_code == 202 and r.json() == {"status": "queued"}
    run = SyncRun.objects.order_by("-pk").first()
    assert run.trigger == "api" and run.requested_by == staff and run.status == "succeeded"
    assert services.indexed_sha() == head


@pytest.mark.parametrize("role", ["viewer", "requester", "approver", "secret_viewer"])
def test_non_staff_cannot_start_a_sync(synced, request, role, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        r = token_client(request.getfixturevalue(role)).post("/api/sync/")
    assert r.status_code == 403
    assert r.json() == {"detail": "Only staff can start a sync."}
    assert callbacks == [] and SyncRun.objects.count() == 1


# --- session authentication and CSRF -------------------------------------------------------------------------


def test_session_post_without_csrf_token_is_rejected(synced, staff, client_for):
    r = client_for(staff).post("/api/sync/")
    assert r.status_code == 403
    assert "CSRF" in r.json()["detail"]


def test_session_post_with_csrf_token_is_accepted(synced, staff, client_for):
    client = client_for(staff)
    secret = _get_new_csrf_string()
    client.cookies["csrftoken"] = secret
    r = client.post("/api/sync/", headers={"X-CSRFToken": secret})
    assert r.status_code == 202


def test_session_login_reads_the_api(synced, viewer, client_for):
    assert client_for(viewer).get("/api/environments/").status_code == 200


# --- tokens -----------------------------------------------------------------------------------------------------------


def test_token_create_command_makes_a_working_token(synced, viewer):
    out = io.StringIO()
    call_command("token_create", viewer.username, "--name", "ci", stdout=out)
    key = out.getvalue().strip()

    from django.test import Client

    r = Client().get("/api/environments/", headers={"Authorization": f"Token {key}"})
    assert r.status_code == 200 and r.json()["count"] == 2


def test_wrong_token_is_401_json_not_a_login_redirect(synced):
    from django.test import Client

    r = Client().get("/api/environments/", headers={"Authorization": "Token not-a-real-key"})
    assert r.status_code == 401
    assert r.json() == {"detail": "Invalid, expired or revoked token."}


def test_api_root_lists_the_endpoints(api):
    body = api.get("/api/").json()
    assert {"environments", "machines", "applications", "commons", "lint"} <= set(body)


# --- schema and docs --------------------------------------------------------------------------------------------


def test_schema_generates_without_warnings(tmp_path):
    target = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    schema = yaml.safe_load(target.read_text())
    assert schema["openapi"].startswith("3.")


def test_schema_endpoint_serves_openapi_json_and_yaml_with_every_path(api):
    r = api.get("/api/schema/?format=json")
    assert r.status_code == 200
    schema = json.loads(r.content)
    assert schema["openapi"].startswith("3.")
    assert {
        "/api/environments/", "/api/environments/{path}/", "/api/machines/", "/api/machines/{path}/",
        "/api/applications/", "/api/applications/{path}/", "/api/commons/", "/api/commons/{path}/",
        "/api/lint/", "/api/search/", "/api/sync/", "/api/hooks/push/",
    } <= set(schema["paths"])
    assert "security" not in schema["paths"]["/api/hooks/push/"]["post"]  # signed, not logged in
    assert schema["paths"]["/api/sync/"]["post"]["security"]

    r = api.get("/api/schema/")
    assert r["Content-Type"].startswith("application/vnd.oai.openapi")
    assert yaml.safe_load(r.content)["paths"].keys() == schema["paths"].keys()


@pytest.mark.parametrize("url", ["/api/docs/", "/api/redoc/"])
def test_docs_are_served_from_local_static_files_only(synced, viewer, client_for, url):
    client = client_for(viewer)
    r = client.get(url)

    assert r.status_code == 200
    html = r.content.decode()
    if url == "/api/docs/":  # the split view: its start-up script is a file of its own (no inline script)
        script = client.get(url + "?script")
        assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
        html += script.content.decode()
    assert "/static/drf_spectacular_sidecar/" in html
    assert "cdn" not in re.sub(r"[A-Za-z0-9]{64}", "", html).lower()  # a CSRF token may spell it
    assert "https://" not in html and "http://" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?//""", html)
    assert "/api/schema/" in html
    if url == "/api/docs/":
        assert '"validatorUrl": null' in html  # no badge that sends the schema URL to swagger.io


@pytest.mark.parametrize("url", ["/api/docs/", "/api/redoc/"])
def test_docs_send_anonymous_visitors_to_the_login_page(db, client, url):
    r = client.get(url)
    assert r.status_code == 302 and r["Location"].startswith("/accounts/login/")
