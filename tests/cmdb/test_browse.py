"""Browsing the repository: pages per role, CI navigation, revisions, README safety, history, compare,
lint, search, the not-indexed state, and a fixed number of queries per page."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from cmdb import services
from cmdb.models import ConfigItem, LintWarning, SyncState
from tests.cmdb.ui import ci_url, count_queries, readme_html, text, write_fleet
from tests.conftest import PASSWORD
from tests.gitutil import write_standard_layout

ROLES = ["viewer", "requester", "approver", "staff"]


def page_urls(sha: str) -> list[str]:
    return [
        reverse("home"),
        ci_url(""),
        ci_url("production"),
        ci_url("production/web1"),
        ci_url("production/web1/nginx"),
        ci_url("production/_common"),
        ci_url("", "history"),
        ci_url("production/web1/nginx", "history"),
        ci_url("", "compare"),
        ci_url("production/web1/nginx", "compare"),
        reverse("cmdb:artifact_detail", kwargs={"path": "production/web1/nginx/files/etc/nginx/nginx.conf"}),
        reverse("cmdb:commit_detail", kwargs={"sha": sha}),
        reverse("cmdb:commit_detail", kwargs={"sha": sha}) + "?path=production/web1",
        reverse("cmdb:lint_list"),
        reverse("cmdb:search") + "?q=nginx",
        reverse("cmdb:syncrun_list"),
    ]


# --- access ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_every_page_renders_for_every_role(role, synced, request, client_for):
    client = client_for(request.getfixturevalue(role))
    for url in page_urls(synced.head()):
        response = client.get(url)
        assert response.status_code == 200, url
        assert b"sync-error-banner" not in response.content


def test_anonymous_visitors_are_sent_to_the_login_page(synced, client):
    urls = [*page_urls(synced.head()), reverse("cmdb:raw", kwargs={"path": "production/topology.svg"})]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login") + "?next="), url


def test_login_page_signs_in_and_logout_is_a_post_form(db, viewer, client):
    page = client.get(reverse("login"))
    assert page.status_code == 200
    assert b'name="username"' in page.content and b'name="password"' in page.content
    response = client.post(reverse("login"), {"username": viewer.username, "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == reverse("home")
    home = client.get(reverse("home")).content.decode()
    assert f'<form method="post" action="{reverse("logout")}"' in home
    assert client.post(reverse("logout")).status_code == 302
    assert client.get(reverse("home")).status_code == 302


def test_pages_use_local_assets_only(synced, viewer, client_for):
    html = client_for(viewer).get(reverse("home")).content.decode()
    assert "/static/vendor/bootstrap/css/bootstrap.min.css" in html
    assert "/static/vendor/bootstrap/js/bootstrap.bundle.min.js" in html
    assert "/static/vendor/bootstrap-icons/bootstrap-icons.min.css" in html
    assert "/static/django_htmx/htmx-2.min.js" in html
    assert "/static/js/portal.js" in html and "/static/css/pygments.css" in html
    # (a random CSRF token may spell "cdn": tokens are not addresses)
    without_tokens = re.sub(r'value="[A-Za-z0-9]{64}"', "", html)
    assert "cdn" not in without_tokens.lower() and "https://" not in html


# --- configuration items --------------------------------------------------------------------------------


def test_application_page_shows_breadcrumbs_readme_artifacts_and_tabs(synced, viewer, client_for):
    response = client_for(viewer).get(ci_url("production/web1/nginx"))
    html = text(response)
    assert [c.label for c in response.context["breadcrumbs"]] == ["Repository", "production", "web1", "nginx"]
    for href in ('href="/ci/"', 'href="/ci/production/"', 'href="/ci/production/web1/"'):
        assert href in html
    assert '<h1 id="md-nginx">nginx</h1>' in readme_html(response)
    assert 'href="/files/production/web1/nginx/files/etc/nginx/nginx.conf"' in html
    assert ">files/etc/nginx/nginx.conf<" in html
    secrets = {a.relative_path: a.is_secret for a in response.context["artifacts"]}
    assert secrets == {"files/etc/nginx/nginx.conf": False, "secrets/htpasswd": True}
    assert 'href="/ci/production/web1/nginx/-/history/"' in html
    assert 'href="/ci/production/web1/nginx/-/compare/"' in html


def test_environment_page_lists_machines_with_counts_and_links_its_common_folder(synced, viewer, client_for):
    response = client_for(viewer).get(ci_url("production"))
    children = response.context["children"]
    assert [(c.name, c.kind, c.artifact_count) for c in children] == [("db1", "machine", 0), ("web1", "machine", 0)]
    assert [c.url for c in response.context["commons"]] == ["/ci/production/_common/"]
    assert response.context["children_label"] == "Machines"
    assert b'src="/raw/production/topology.svg"' in response.content


def test_machine_page_links_to_its_previous_and_next_sibling(synced, viewer, client_for):
    client = client_for(viewer)
    db1 = client.get(ci_url("production/db1")).context["siblings"]
    web1 = client.get(ci_url("production/web1")).context["siblings"]
    assert db1 == {"previous": None, "next": {"name": "web1", "url": "/ci/production/web1/"}}
    assert web1 == {"previous": {"name": "db1", "url": "/ci/production/db1/"}, "next": None}


def test_unknown_ci_is_a_404_page(synced, viewer, client_for):
    client = client_for(viewer)
    for url in (ci_url("production/nosuch"), ci_url("staging"), ci_url("production/web1/nginx/files")):
        response = client.get(url)
        assert response.status_code == 404, url


# --- revisions ------------------------------------------------------------------------------------------


def test_pages_at_an_older_revision_show_the_old_readme_and_carry_the_revision(synced, viewer, client_for):
    old = synced.head()
    synced.write("production/README.md", "# Production\n\nNow with three machines.\n")
    synced.write("production/web3/README.md", "# web3\n")
    synced.commit("Rewrite the production README")
    services.repo_sync(trigger="test")
    client = client_for(viewer)

    now = client.get(ci_url("production"))
    assert "Now with three machines." in readme_html(now)
    assert [c.name for c in now.context["children"]] == ["db1", "web1", "web3"]

    then = client.get(ci_url("production", rev=old))
    assert then.status_code == 200
    assert "Machines: web1, db1." in readme_html(then)
    assert "three machines" not in then.content.decode()
    assert [c.name for c in then.context["children"]] == ["db1", "web1"]
    html = then.content.decode()
    assert old[:10] in html and f'value="{old}"' in html  # the revision shown, and kept in the picker
    assert f'href="/ci/production/web1/?rev={old}"' in html  # children links carry it
    assert f'href="/ci/production/-/history/?rev={old}"' in html  # and so do the tabs
    assert f'src="/raw/production/topology.svg?rev={old}"' in readme_html(then)  # and README pictures
    assert f'href="/ci/?rev={old}"' in html  # and the breadcrumbs


def test_branches_and_tags_work_as_revisions_and_fill_the_picker(synced, viewer, client_for):
    old = synced.head()
    synced.git("tag", "baseline", old)
    synced.git("push", "-q", "origin", "baseline")
    synced.write("production/README.md", "# Production\n\nChanged after the baseline.\n")
    synced.commit("After the baseline")
    services.repo_sync(trigger="test")
    client = client_for(viewer)
    tagged = client.get(ci_url("production", rev="baseline"))
    assert "Machines: web1, db1." in readme_html(tagged)
    branch = client.get(ci_url("production", rev="main"))
    assert "Changed after the baseline." in readme_html(branch)
    assert branch.context["at_indexed"] is True  # main is what the index holds: links drop the rev
    assert '<option value="main" label="branch">' in branch.content.decode()
    assert '<option value="baseline" label="tag">' in branch.content.decode()


def test_unknown_revisions_are_a_404_page(synced, viewer, client_for):
    client = client_for(viewer)
    urls = [
        ci_url("production", rev="nonsense"),
        ci_url("", rev="0123456789abcdef0123456789abcdef01234567"),
        ci_url("production", rev="--output=/tmp/x"),
        ci_url("production", rev="main..HEAD"),
        ci_url("production", "history", rev="nope"),
        ci_url("production", "compare") + "?from=nope&to=main",
        reverse("cmdb:artifact_detail", kwargs={"path": "production/README.md"}) + "?rev=nope",
        reverse("cmdb:commit_detail", kwargs={"sha": "0123456789abcdef"}),
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 404, url
        assert b"Unknown revision" in response.content, url
    assert client.get(reverse("cmdb:raw", kwargs={"path": "production/README.md"}) + "?rev=nope").status_code == 404


TRAVERSALS = [
    "/ci/../etc/",
    "/ci/production/../../etc/",
    "/ci/production/%2e%2e/%2e%2e/etc/",
    "/ci/production/%00/",
    "/ci/-/-/history/",
    "/files/%2e%2e/etc/passwd",
    "/files/production/%2e%2e/%2e%2e/etc/passwd",
    "/files//etc/passwd",
    "/raw/production%5cREADME.md",  # a backslash is part of a name, not a separator: no such file
    "/files/.git/config",
    "/raw/production/%00x",
    "/raw//etc/passwd",
    "/raw/%2fetc/passwd",
    "/raw/./production/README.md",
    "/raw/.git/HEAD",
    "/commits/HEAD/?path=../../etc",
    "/commits/HEAD/?path=/etc",
]


def test_path_traversal_attempts_are_404(synced, viewer, client_for):
    client = client_for(viewer)
    for url in TRAVERSALS:
        assert client.get(url).status_code == 404, url


# --- READMEs --------------------------------------------------------------------------------------------


def test_hostile_readme_renders_without_scripts_handlers_or_frames(work_repo, viewer, client_for, db):
    write_standard_layout(work_repo)
    work_repo.write("production/README.md", (
        "# Production\n\n<script>alert('owned')</script>\n\n<img src=\"x.png\" onerror=\"alert(1)\">\n\n"
        "[click me](javascript:alert(2))\n\n<iframe src=\"https://evil.example/\"></iframe>\n\n"
        "<a href=\"#\" onclick=\"steal()\">link</a> <svg onload=\"alert(3)\"></svg>\n"
    ))
    work_repo.commit("Hostile README")
    services.repo_sync(trigger="test")
    article = readme_html(client_for(viewer).get(ci_url("production")))
    assert "Production" in article
    for bad in ("<script", "alert('owned')", "onerror", "javascript:", "<iframe", "onclick", "onload", "<svg"):
        assert bad not in article.lower(), bad


def test_readme_links_become_portal_pages_and_pictures_the_raw_endpoint(synced, viewer, client_for):
    client = client_for(viewer)
    root = readme_html(client.get(ci_url("")))
    assert 'href="/ci/production/"' in root and 'href="/ci/test/"' in root
    web1 = readme_html(client.get(ci_url("production/web1")))
    assert 'href="/ci/production/_common/"' in web1
    production = readme_html(client.get(ci_url("production")))
    assert 'src="/raw/production/topology.svg"' in production


# --- history and compare --------------------------------------------------------------------------------


@pytest.fixture
def two_changes(synced):
    """Two more commits: one to web1/nginx, one to db1."""
    synced.write("production/web1/nginx/files/etc/nginx/nginx.conf", "worker_processes 8;\nevents { worker_connections 4096; }\n")
    nginx = synced.commit("Tune nginx")
    synced.write("production/db1/postgresql/files/etc/postgresql/postgresql.conf", "shared_buffers = 4GB\n")
    postgres = synced.commit("Tune postgres")
    services.repo_sync(trigger="test")
    return {"nginx": nginx, "postgres": postgres}


def test_history_tab_lists_the_commits_that_touched_the_ci(two_changes, viewer, client_for):
    client = client_for(viewer)
    nginx = client.get(ci_url("production/web1/nginx", "history"))
    assert [c["summary"] for c in nginx.context["commits"]] == ["Tune nginx", "Initial layout"]
    html = nginx.content.decode()
    assert f'/commits/{two_changes["nginx"]}/?path=production%2Fweb1%2Fnginx' in html
    assert 'hx-get="/commits/' in html  # each entry expands in place
    root = client.get(ci_url("", "history"))
    assert [c["summary"] for c in root.context["commits"]] == ["Tune postgres", "Tune nginx", "Initial layout"]


def test_commit_page_restricted_to_a_ci_shows_only_its_changes(two_changes, synced, viewer, client_for):
    client = client_for(viewer)
    base = reverse("cmdb:commit_detail", kwargs={"sha": two_changes["nginx"]})
    restricted = client.get(base + "?path=production/db1")
    assert restricted.context["diffs"] == []
    full = client.get(base)
    assert [d.path for d in full.context["diffs"]] == ["production/web1/nginx/files/etc/nginx/nginx.conf"]
    html = full.content.decode()
    assert 'class="highlight diff"' in html and "worker_processes 8;" in html
    assert "Tune nginx" in html and "Test Author" in html
    fragment = client.get(base + "?path=production/web1/nginx", headers={"HX-Request": "true"})
    assert b"<html" not in fragment.content and b"diff-file" in fragment.content


def test_compare_tab_shows_highlighted_per_file_diffs_between_two_revisions(two_changes, synced, viewer, client_for):
    client = client_for(viewer)
    initial = synced.git("rev-list", "--max-parents=0", "HEAD").strip()
    default = client.get(ci_url("production/web1/nginx", "compare"))  # the CI's last change
    assert [d.path for d in default.context["diffs"]] == ["production/web1/nginx/files/etc/nginx/nginx.conf"]
    html = default.content.decode()
    assert '<span class="gd">-worker_processes 4;</span>' in html
    assert '<span class="gi">+worker_processes 8;</span>' in html
    chosen = client.get(ci_url("production", "compare") + f"?from={initial}&to=main")
    assert sorted(d.path for d in chosen.context["diffs"]) == [
        "production/db1/postgresql/files/etc/postgresql/postgresql.conf",
        "production/web1/nginx/files/etc/nginx/nginx.conf",
    ]
    same = client.get(ci_url("production", "compare") + "?from=main&to=main")
    assert same.context["diffs"] == [] and b"No changes." in same.content


# --- lint -----------------------------------------------------------------------------------------------


@pytest.fixture
def linty(work_repo, db):
    """The standard layout plus 30 machines (10 without README) and 105 stray files in an environment."""
    write_standard_layout(work_repo)
    write_fleet(work_repo, "fleet", 30)
    for i in range(105):
        work_repo.write(f"production/stray-{i:03d}.txt", f"stray file {i}\n")
    work_repo.commit("Fleet and strays")
    services.repo_sync(trigger="test")
    return work_repo


def test_lint_page_lists_filters_sorts_and_paginates_warnings(linty, viewer, client_for):
    client = client_for(viewer)
    url = reverse("cmdb:lint_list")
    total = LintWarning.objects.count()
    assert total == 115
    first = client.get(url)
    assert first.context["page"].paginator.count == total
    assert len(first.context["rows"]) == 100 and first.context["page"].has_next()
    assert [r["w"].code for r in first.context["rows"][:10]] == ["missing-readme"] * 10  # errors first
    second = client.get(url + "?page=2")
    assert second.context["page"].number == 2 and len(second.context["rows"]) == 15

    missing = client.get(url + "?code=missing-readme")
    assert {r["w"].code for r in missing.context["rows"]} == {"missing-readme"}
    assert missing.context["page"].paginator.count == 10
    stray = client.get(url + "?path=production/stray-10&severity=warning")
    assert [r["w"].path for r in stray.context["rows"]] == [f"production/stray-{i}.txt" for i in range(100, 105)]
    by_path = client.get(url + "?sort=-path&code=missing-readme")
    paths = [r["w"].path for r in by_path.context["rows"]]
    assert paths == sorted(paths, reverse=True)
    html = by_path.content.decode()
    assert 'aria-sort="descending"' in html and "sort=path" in html  # the header sorts back up
    assert client.get(url + "?code=bogus&sort=nonsense").status_code == 200  # bad filters are ignored


# --- search ---------------------------------------------------------------------------------------------


def test_search_finds_by_name_and_readme_text_and_ranks_name_matches_first(synced, viewer, client_for):
    client = client_for(viewer)
    url = reverse("cmdb:search")
    by_name = [r.item.path for r in client.get(url + "?q=nginx").context["rows"]]
    assert {"production/web1/nginx", "test/web-test1/nginx"} <= set(by_name)
    ranked = [r.item.path for r in client.get(url + "?q=postgresql").context["rows"]]
    assert ranked[0] == "production/db1/postgresql"  # the application is called so
    assert "production/db1" in ranked  # its README only mentions it
    by_text = client.get(url + "?q=tuning")
    assert [r.item.path for r in by_text.context["rows"]] == ["production/db1/postgresql"]
    assert "<mark>Tuning</mark>" in by_text.content.decode()
    empty = client.get(url)
    assert empty.status_code == 200 and empty.context["rows"] == []


def test_search_snippets_are_escaped_before_matches_are_marked(work_repo, viewer, client_for, db):
    write_standard_layout(work_repo)
    work_repo.write("production/README.md", "# Production\n\n<b onmouseover=x>zebra</b> crossing\n")
    work_repo.commit("README with HTML")
    services.repo_sync(trigger="test")
    html = client_for(viewer).get(reverse("cmdb:search") + "?q=zebra").content.decode()
    assert "<mark>zebra</mark>" in html
    assert "<b onmouseover" not in html
    # FTS5 keeps the markup in the snippet (shown escaped); PostgreSQL's ts_headline drops tags.
    if connection.vendor == "sqlite":
        assert "&lt;b onmouseover=x&gt;<mark>zebra</mark>&lt;/b&gt;" in html


# --- repository state -----------------------------------------------------------------------------------


def test_pages_explain_that_the_repository_was_never_indexed(work_repo, viewer, client_for, db):
    client = client_for(viewer)
    for url in ("/", "/ci/", "/ci/production/", "/ci/-/history/", "/ci/production/-/compare/",
                "/files/production/README.md", "/lint/", "/search/?q=x", "/sync/runs/"):
        response = client.get(url)
        assert response.status_code == 200, url
    assert b"not been indexed yet" in client.get("/ci/").content
    assert b"not been indexed yet" in client.get("/").content.lower()
    assert client.get("/raw/production/README.md").status_code == 404


def test_failed_sync_error_is_shown_in_a_banner_on_every_page(work_repo, viewer, client_for, settings, db):
    settings.CMDB_REPO_URL = str(work_repo.path.parent / "missing.git")
    with pytest.raises(services.SyncError):
        services.repo_sync(trigger="test")
    client = client_for(viewer)
    for url in ("/", "/ci/", "/lint/", "/sync/runs/", "/search/"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert b"sync-error-banner" in response.content and b"Cannot fetch from origin" in response.content


def test_banner_keeps_the_last_error_while_the_old_index_is_shown(synced, viewer, client_for):
    SyncState.objects.filter(pk=1).update(last_error="git fetch failed: host unreachable", last_error_at=timezone.now())
    response = client_for(viewer).get(ci_url("production/web1"))
    assert response.status_code == 200
    assert b"git fetch failed: host unreachable" in response.content
    assert b"web1" in response.content


# --- queries --------------------------------------------------------------------------------------------

# Session, user, the context processor's sync state, then the page's own queries.
EXPECTED_QUERIES = {
    "environment": 12,  # + indexed sha, CI, children, artifacts, 2 permission lookups, warnings, 2 siblings
    "machine": 17,  # 12 and the machine panels (tests/deploys/test_machine_page.py)
    "application": 13,  # + the secret paths, for the flags of its declared files
    "lint": 5,  # + count, page
    "search": 5,  # + full-text search, in_bulk
}


def _measure(client, env: str) -> dict[str, int]:
    return {
        "environment": count_queries(client, ci_url(env)),
        "machine": count_queries(client, ci_url(f"{env}/node0001")),
        "application": count_queries(client, ci_url(f"{env}/node0001/nginx")),
        "lint": count_queries(client, reverse("cmdb:lint_list")),
        "search": count_queries(client, reverse("cmdb:search") + "?q=node"),
    }


def test_pages_cost_the_same_queries_for_3_or_60_machines(work_repo, viewer, client_for, db):
    client = client_for(viewer)
    write_standard_layout(work_repo)
    write_fleet(work_repo, "fleet", 3)
    work_repo.commit("Small fleet")
    services.repo_sync(trigger="test")
    assert ConfigItem.objects.filter(kind="machine").count() == 3 + 3
    small = _measure(client, "fleet")

    write_fleet(work_repo, "fleet", 57, start=3)
    work_repo.commit("Big fleet")
    services.repo_sync(trigger="test")
    assert ConfigItem.objects.filter(parent__path="fleet", kind="machine").count() == 60
    big = _measure(client, "fleet")

    assert small == big == EXPECTED_QUERIES


def test_pinned_query_counts_on_the_standard_layout(synced, viewer, client_for, django_assert_num_queries):
    client = client_for(viewer)
    for url, expected in ((reverse("home"), 21), (ci_url("production"), 12), (ci_url("production/web1"), 17),
                          (ci_url("production/web1/nginx"), 13), (reverse("cmdb:search") + "?q=nginx", 5)):
        client.get(url)  # READMEs are rendered and kept on first view
        with django_assert_num_queries(expected):
            assert client.get(url).status_code == 200


def test_environment_page_paginates_and_filters_many_machines(work_repo, client_for, viewer, settings):
    from cmdb import services

    work_repo.write("README.md", "# top\n")
    work_repo.write("big/README.md", "# big\n")
    for i in range(130):
        work_repo.write(f"big/m{i:03d}/README.md", f"# m{i:03d}\n")
    work_repo.commit("Many machines")
    services.repo_sync(trigger="test")
    client = client_for(viewer)

    first = client.get("/ci/big/")
    assert first.status_code == 200
    assert first.content.count(b'href="/ci/big/m') == 100
    assert b"1 / 2" in first.content
    second = client.get("/ci/big/?page=2")
    assert second.content.count(b'href="/ci/big/m') == 30
    found = client.get("/ci/big/?children=m12")
    names = {line for line in found.content.decode().split('"') if line.startswith("/ci/big/m")}
    assert names == {f"/ci/big/m12{i}/" for i in range(10)}
