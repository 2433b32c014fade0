"""Rebuild runbooks of machines and environments, and the declared files of application pages: order of
the READMEs, what each application installs, links and contents at the asked revision, secrets, broken
manifests, hostile paths, a CI named ``runbook``, roles, print stylesheet and fixed query counts."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from cmdb import runbook, services
from tests.cmdb.ui import ci_url, text, write_fleet
from tests.gitutil import WorkRepo

ROLES = ["viewer", "requester", "approver", "staff"]
WEB1_ORDER = ["_common", "production/_common", "production", "production/web1/_common", "production/web1",
              "production/web1/app", "production/web1/nginx"]
PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
TOKEN = "s3cr3t-token-value-never-shown"

NGINX_MANIFEST = """\
[[file]]
path = "/etc/nginx/nginx.conf"
mode = "0640"
owner = "root"
group = "www-data"

[[file]]
path = "/etc/ssl/fullchain.pem"
source = "../../_common/tls/fullchain.pem"

[[file]]
path = "/etc/app/token"
source = "../../_common/tls/token"
secret = true

[deploy]
reload = ["nginx -t", "systemctl reload nginx"]
"""


def write_rebuild_repo(repo: WorkRepo) -> None:
    """Every level of README web1's rebuild needs, each with a marker to find it on the page."""
    repo.write("README.md", "# Infrastructure\n\nROOT-README-MARKER\n")
    repo.write("_common/README.md", "# Base installation\n\nSTEP-TOP-COMMON\n")
    repo.write("production/README.md", "# Production\n\nSTEP-ENVIRONMENT. See [web1](web1/README.md).\n")
    repo.write("production/_common/README.md", "# Production shared\n\nSTEP-ENV-COMMON\n")
    repo.write("production/_common/tls/fullchain.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    repo.write("production/_common/tls/token", TOKEN + "\n")
    repo.write("production/web1/README.md",
               "# web1\n\nSTEP-MACHINE. Follow the [shared steps](../_common/README.md) and "
               "[nginx](nginx/README.md), then read [the config](nginx/files/etc/nginx/nginx.conf).\n")
    repo.write("production/web1/_common/README.md", "# web1 shared\n\nSTEP-MACHINE-COMMON\n")
    repo.write("production/web1/nginx/README.md", "# nginx\n\nSTEP-APP-NGINX\n\n```\n" + PRIVATE_KEY + "```\n")
    repo.write("production/web1/nginx/manifest.toml", NGINX_MANIFEST)
    repo.write("production/web1/nginx/files/etc/nginx/nginx.conf", "worker_processes 4;\n")
    repo.write("production/web1/app/README.md", "# app\n\nSTEP-APP-APP\n")
    repo.write("production/web1/app/files/usr/local/bin/app", "#!/bin/sh\n", mode=0o755)
    repo.write("production/db1/README.md", "# db1\n\nSTEP-DB1\n")
    repo.write("production/db1/postgresql/files/etc/postgresql.conf", "shared_buffers = 1GB\n")  # no README
    repo.write("test/README.md", "# Test\n")
    repo.write("test/t1/README.md", "# t1\n")


@pytest.fixture
def rebuild(work_repo, db):
    write_rebuild_repo(work_repo)
    work_repo.commit("Rebuild layout")
    services.repo_sync(trigger="test")
    return work_repo


def runbook_url(path: str, **query) -> str:
    return ci_url(path, "runbook", **query)


def positions(html: str, markers: list[str]) -> list[int]:
    found = [html.find(m) for m in markers]
    assert -1 not in found, dict(zip(markers, found, strict=True))
    return found


# --- order and content ----------------------------------------------------------------------------------


def test_machine_runbook_lists_every_readme_in_rebuild_order(rebuild, viewer, client_for):
    book = runbook.machine_runbook("production/web1", None, can_view_secrets=False)
    assert [s.path for s in book.sections] == WEB1_ORDER
    assert [s.step for s in book.sections] == list(range(1, 8))

    page = text(client_for(viewer).get(runbook_url("production/web1")))
    markers = ["STEP-TOP-COMMON", "STEP-ENV-COMMON", "STEP-ENVIRONMENT", "STEP-MACHINE-COMMON", "STEP-MACHINE.",
               "STEP-APP-APP", "STEP-APP-NGINX"]
    at = positions(page, markers)
    assert at == sorted(at)
    assert "ROOT-README-MARKER" not in page  # the root README lists environments; it is no rebuild step
    assert "STEP-DB1" not in page


def test_runbook_lists_declared_files_modes_owners_sources_and_reloads(rebuild, viewer, client_for):
    book = runbook.machine_runbook("production/web1", None, can_view_secrets=False)
    nginx = book.sections[-1].declared
    rows = {r.target: (r.mode, r.owner, r.source_label, r.shared, r.secret) for r in nginx.files}
    assert rows == {
        "/etc/app/token": ("0644", "", "production/_common/tls/token", True, True),
        "/etc/nginx/nginx.conf": ("0640", "root:www-data", "files/etc/nginx/nginx.conf", False, False),
        "/etc/ssl/fullchain.pem": ("0644", "", "production/_common/tls/fullchain.pem", True, False),
    }
    assert nginx.reload == ["nginx -t", "systemctl reload nginx"]
    app = book.sections[-2].declared
    assert [(r.target, r.mode) for r in app.files] == [("/usr/local/bin/app", "0755")]
    assert app.reload == []

    page = text(client_for(viewer).get(runbook_url("production/web1")))
    assert "systemctl reload nginx" in page and "root:www-data" in page
    assert 'href="/files/production/_common/tls/fullchain.pem"' in page
    assert 'href="/files/production/web1/nginx/files/etc/nginx/nginx.conf"' in page


def test_application_page_lists_the_same_declared_files_next_to_its_readme(rebuild, viewer, client_for):
    page = text(client_for(viewer).get(ci_url("production/web1/nginx")))
    assert 'id="declared"' in page
    for target in ("/etc/nginx/nginx.conf", "/etc/ssl/fullchain.pem", "/etc/app/token"):
        assert target in page
    assert "0640" in page and "root:www-data" in page and "systemctl reload nginx" in page
    assert page.index("STEP-APP-NGINX") < page.index('id="declared"')
    # Machines and environments have no such table; applications have no runbook tab.
    assert 'id="declared"' not in text(client_for(viewer).get(ci_url("production/web1")))
    assert runbook_url("production/web1/nginx") not in page


def test_environment_runbook_has_shared_steps_once_then_each_machine(rebuild, viewer, client_for):
    book = runbook.environment_runbook("production", None, page=None, can_view_secrets=False)
    assert [s.path for s in book.shared] == ["_common", "production/_common", "production"]
    assert [m.path for m in book.machines] == ["production/db1", "production/web1"]
    assert [s.path for s in book.machines[0].sections] == ["production/db1", "production/db1/postgresql"]
    assert [s.step for s in book.machines[1].sections] == [4, 5, 6, 7]

    page = text(client_for(viewer).get(runbook_url("production")))
    assert page.count("STEP-ENV-COMMON") == 1
    assert positions(page, ["STEP-ENVIRONMENT", "STEP-DB1", "STEP-MACHINE."]) == sorted(
        positions(page, ["STEP-ENVIRONMENT", "STEP-DB1", "STEP-MACHINE."]))
    assert "It has no README.md" in page  # db1/postgresql


def test_environment_runbook_pages_through_many_machines(work_repo, viewer, client_for, db):
    write_fleet(work_repo, "fleet", runbook.MACHINES_PER_PAGE + 5)
    work_repo.commit("Fleet")
    services.repo_sync(trigger="test")
    client = client_for(viewer)
    first = text(client.get(runbook_url("fleet")))
    assert first.count('class="runbook-machine"') == runbook.MACHINES_PER_PAGE
    second = text(client.get(runbook_url("fleet", page=2)))
    assert second.count('class="runbook-machine"') == 5
    assert "fleet/_common/" in second  # the shared steps head every page


# --- revisions and links --------------------------------------------------------------------------------


def test_links_and_contents_are_those_of_the_asked_revision(rebuild, viewer, client_for):
    old = rebuild.head()
    rebuild.git("tag", "v1")
    rebuild.git("push", "-q", "origin", "v1")
    rebuild.write("production/web1/README.md", "# web1\n\nSTEP-MACHINE-NEW\n")
    rebuild.write("production/web1/nginx/manifest.toml", NGINX_MANIFEST.replace('"0640"', '"0600"'))
    rebuild.commit("Rewrite web1")
    services.repo_sync(trigger="test")
    client = client_for(viewer)

    now = text(client.get(runbook_url("production/web1")))
    assert "STEP-MACHINE-NEW" in now and "0600" in now and "0640" not in now
    for rev in ("v1", old, old[:12]):
        page = text(client.get(runbook_url("production/web1", rev=rev)))
        assert "STEP-MACHINE." in page and "STEP-MACHINE-NEW" not in page, rev
        assert "0640" in page and "0600" not in page, rev
        assert f'href="/ci/production/_common/?rev={rev}"' in page, rev  # README link at the same revision
        assert f'href="/ci/production/web1/nginx/?rev={rev}"' in page, rev
        assert f'href="/files/production/web1/nginx/files/etc/nginx/nginx.conf?rev={rev}"' in page, rev
        assert f'href="/files/production/_common/tls/fullchain.pem?rev={rev}"' in page, rev  # declared source
    app = text(client.get(ci_url("production/web1/nginx", rev="v1")))
    assert "0640" in app and 'href="/files/production/_common/tls/fullchain.pem?rev=v1"' in app


def test_a_machine_missing_at_the_revision_or_an_unknown_revision_is_404(rebuild, viewer, client_for):
    old = rebuild.head()
    rebuild.write("production/web9/README.md", "# web9\n")
    rebuild.commit("web9")
    services.repo_sync(trigger="test")
    client = client_for(viewer)
    assert client.get(runbook_url("production/web9")).status_code == 200
    assert client.get(runbook_url("production/web9", rev=old)).status_code == 404
    assert client.get(runbook_url("production/web1", rev="no-such-branch")).status_code == 404
    assert client.get(runbook_url("production/nothing")).status_code == 404
    assert client.get(runbook_url("nowhere")).status_code == 404


# --- secrets and broken manifests ---------------------------------------------------------------------


def test_secrets_are_listed_never_shown(rebuild, viewer, staff, client_for):
    page = text(client_for(viewer).get(runbook_url("production/web1")))
    assert TOKEN not in page
    assert "b3BlbnNzaC1rZXktdjEAAAAA" not in page  # the key pasted in nginx's README is masked
    assert re.search(r"/etc/app/token.*?secret", page, re.S)
    assert TOKEN not in text(client_for(staff).get(runbook_url("production/web1")))  # contents: never read
    assert TOKEN not in text(client_for(viewer).get(runbook_url("production")))


def test_a_malformed_manifest_is_a_note_in_its_section_not_an_error_page(rebuild, viewer, client_for):
    rebuild.write("production/web1/nginx/manifest.toml", "[[file]\npath = \n")
    rebuild.write("production/web1/manifest.toml", '[machine]\ntransport = "carrier-pigeon"\n')
    rebuild.commit("Break the manifests")
    services.repo_sync(trigger="test")
    client = client_for(viewer)
    for url in (runbook_url("production/web1"), runbook_url("production"), ci_url("production/web1/nginx")):
        response = client.get(url)
        assert response.status_code == 200, url
        assert "production/web1/nginx/manifest.toml:1" in text(response), url
    book = runbook.machine_runbook("production/web1", None, can_view_secrets=False)
    machine = book.sections[4]
    assert machine.path == "production/web1"
    assert any("production/web1/manifest.toml" in p for p in machine.problems)
    assert all("nginx" not in p for p in machine.problems)
    # What can still be read is listed: the files/ tree of the broken application.
    assert [r.target for r in book.sections[-1].declared.files] == ["/etc/nginx/nginx.conf"]


# --- URLs -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "/ci/production/../production/web1/-/runbook/",
    "/ci/production/%2e%2e/production/web1/-/runbook/",
    "/ci/production/web1/../../../etc/-/runbook/",
    "/ci//etc/passwd/-/runbook/",
    "/ci/production/web1%00/-/runbook/",
    "/ci/production/./web1/-/runbook/",
    "/ci/production/web1/-/-/runbook/",
    "/ci/production/web1/nginx/-/runbook/",
    "/ci/production/_common/-/runbook/",
    "/ci/_common/-/runbook/",
    "/ci/-/runbook/",
])
def test_hostile_or_wrong_paths_are_404(rebuild, viewer, client_for, url):
    assert client_for(viewer).get(url).status_code == 404


def test_a_machine_named_runbook_keeps_its_page_and_has_a_runbook(rebuild, viewer, client_for):
    rebuild.write("production/runbook/README.md", "# runbook\n\nA MACHINE CALLED RUNBOOK\n")
    rebuild.write("production/runbook/runbook/README.md", "# runbook app\n\nAN APPLICATION CALLED RUNBOOK\n")
    rebuild.commit("Machine named runbook")
    services.repo_sync(trigger="test")
    client = client_for(viewer)
    page = client.get("/ci/production/runbook/")
    assert page.status_code == 200 and "A MACHINE CALLED RUNBOOK" in text(page)
    assert 'id="declared"' not in text(page)  # the machine's page, not a runbook
    app = client.get("/ci/production/runbook/runbook/")
    assert app.status_code == 200 and 'id="declared"' in text(app)
    book = client.get(runbook_url("production/runbook"))
    assert book.request["PATH_INFO"] == "/ci/production/runbook/-/runbook/"
    assert book.status_code == 200
    assert "A MACHINE CALLED RUNBOOK" in text(book) and "AN APPLICATION CALLED RUNBOOK" in text(book)


# --- access, links, print, queries ------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_every_role_reads_runbooks(rebuild, role, request, client_for):
    client = client_for(request.getfixturevalue(role))
    for url in (runbook_url("production/web1"), runbook_url("production"), runbook_url("test/t1")):
        assert client.get(url).status_code == 200, url


def test_anonymous_visitors_are_sent_to_the_login_page(rebuild, client):
    response = client.get(runbook_url("production/web1"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_machine_and_environment_pages_link_their_runbook_which_links_the_print_stylesheet(rebuild, viewer, client_for):
    client = client_for(viewer)
    for path in ("production/web1", "production"):
        assert f'href="{runbook_url(path)}"' in text(client.get(ci_url(path)))
    old = rebuild.head()
    rebuild.write("production/web1/README.md", "# web1\n")
    rebuild.commit("Newer")
    services.repo_sync(trigger="test")
    assert f'href="{runbook_url("production/web1")}?rev={old}"' in text(client.get(ci_url("production/web1", rev=old)))
    page = text(client.get(runbook_url("production/web1")))
    assert re.search(r'<link rel="stylesheet" href="/static/css/print\.css" media="print">', page)
    assert "data-print" in page


def _queries(client, url: str) -> int:
    assert client.get(url).status_code == 200  # READMEs are rendered once and kept
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_runbook_queries_do_not_grow_with_the_environment(work_repo, viewer, client_for, db):
    client = client_for(viewer)
    write_fleet(work_repo, "fleet", 3)
    work_repo.commit("Small fleet")
    services.repo_sync(trigger="test")
    small = (_queries(client, runbook_url("fleet/node0001")), _queries(client, runbook_url("fleet")))
    write_fleet(work_repo, "fleet", 37, start=3)
    work_repo.commit("Bigger fleet")
    services.repo_sync(trigger="test")
    big = (_queries(client, runbook_url("fleet/node0001")), _queries(client, runbook_url("fleet")))
    # session, user, 2 permission lookups, indexed sha, the READMEs, secret paths, the sync banner
    assert small == big == (8, 8)
