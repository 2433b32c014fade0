"""Impact that follows declarations: applications whose manifests ``source`` a changed file (at the
branch head and at the merge base), documentation reviewed but never deployed, the CR page, the API
and the dry-run button for a documentation-only change, approvals, and what computing it costs."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from changes import impact as impacts
from changes.models import ChangeRequest, ImpactedCI
from deploys.models import Job
from tests.changes.apiutil import token_client
from tests.gitutil import WorkRepo, on_branch

pytestmark = pytest.mark.django_db

CHAIN = "production/_common/tls/fullchain.pem"
NGINX_MANIFEST = "production/web1/nginx/manifest.toml"
DOC_ONLY = "documentation only: no machine needs a deploy or a dry run"


@pytest.fixture
def sourcing(synced) -> WorkRepo:
    """The standard layout where web1's nginx takes the production TLS chain from ``_common``."""
    synced.write(NGINX_MANIFEST, '[[file]]\npath = "/etc/ssl/fullchain.pem"\nsource = "../../_common/tls/fullchain.pem"\n')
    synced.commit("nginx serves the shared TLS chain")
    return synced


def remove_on_branch(repo: WorkRepo, branch: str, path: str) -> None:
    repo.git("checkout", "-q", "-B", branch, "main")
    repo.remove(path)
    repo.commit("remove", push=False)
    repo.push(branch, force=True)
    repo.git("checkout", "-q", "main")


def rows(change: ChangeRequest) -> dict[str, tuple[str, str, bool]]:
    return {r.path: (r.reason, r.via, r.deploy) for r in ImpactedCI.objects.filter(change=change)}


def test_a_readme_only_change_in_production_common_impacts_no_machine_for_deploy(synced, make_change):
    on_branch(synced, "docs/common", {"production/_common/README.md": "# Shared steps\n\nRenew the chain in May.\n",
                                      "production/_common/rack.png": "not really a png"})
    change = make_change("docs/common")

    assert rows(change) == {
        "production/_common": ("direct", "", False),
        # the shared steps are followed on the machines below: shown to them for review
        "production/db1": ("common", "production/_common", False),
        "production/web1": ("common", "production/_common", False),
    }
    assert change.documentation_only is True
    assert change.machines() == []
    assert [f["documentation"] for f in change.impact["files"]] == [True, True]
    # it still changes production's documentation: production's approvals
    assert change.required_approvals == 2


def test_a_changed_common_file_no_manifest_sources_still_needs_the_machines_below(synced, make_change):
    on_branch(synced, "common/script", {"production/_common/bin/rotate.sh": "#!/bin/sh\n"})
    change = make_change("common/script")

    assert rows(change) == {
        "production/_common": ("direct", "", True),
        "production/db1": ("common", "production/_common", True),
        "production/web1": ("common", "production/_common", True),
    }
    assert change.documentation_only is False
    assert change.machines() == ["production/db1", "production/web1"]


def test_a_changed_sourced_common_file_names_the_sourcing_applications_and_their_machines_only(sourcing, make_change):
    on_branch(sourcing, "tls/renew", {CHAIN: "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n"})
    change = make_change("tls/renew")

    assert rows(change) == {
        "production/_common": ("direct", "", True),
        "production/web1/nginx": ("source", CHAIN, True),
    }
    nginx = next(c for c in change.impact["cis"] if c["path"] == "production/web1/nginx")
    assert nginx == {"path": "production/web1/nginx", "kind": "application", "environment": "production",
                     "machine_path": "production/web1", "reason": "source", "via": CHAIN, "deploy": True}
    assert ImpactedCI.objects.get(change=change, path="production/web1/nginx").machine == "production/web1"
    assert change.machines() == ["production/web1"]  # not db1, which does not use the chain


def test_a_source_the_branch_removes_still_impacts_the_application(sourcing, make_change):
    remove_on_branch(sourcing, "tls/drop", CHAIN)
    change = make_change("tls/drop")

    assert change.impact["files"][0]["status"] == "D"
    assert rows(change)["production/web1/nginx"] == ("source", CHAIN, True)
    assert change.machines() == ["production/web1"]


def test_a_source_outside_common_folders_is_followed_too(synced, make_change):
    synced.write("production/db1/postgresql/manifest.toml",
                 '[[file]]\npath = "/etc/motd"\nsource = "../../../shared/motd.txt"\n')
    synced.write("shared/motd.txt", "Authorised use only.\n")
    synced.commit("db1 shows the shared motd")
    on_branch(synced, "motd", {"shared/motd.txt": "Authorised use only. Logged.\n"})
    change = make_change("motd")

    assert rows(change)["production/db1/postgresql"] == ("source", "shared/motd.txt", True)
    assert change.machines() == ["production/db1"]


def test_documentation_of_an_application_is_reviewed_but_what_its_files_tree_holds_is_deployed(synced, make_change):
    on_branch(synced, "docs/nginx", {"production/web1/nginx/README.md": "# nginx\n\nReload after edits.\n",
                                     "production/web1/nginx/notes/tuning.md": "Keep 4 workers.\n"})
    docs = make_change("docs/nginx")
    assert rows(docs) == {"production/web1/nginx": ("direct", "", False)}
    assert (docs.documentation_only, docs.machines()) == (True, [])

    on_branch(synced, "site/index", {"production/web1/nginx/files/var/www/index.md": "# Welcome\n",
                                     "production/web1/nginx/files/var/www/logo.png": "png"})
    served = make_change("site/index")
    assert rows(served) == {"production/web1/nginx": ("direct", "", True)}
    assert (served.documentation_only, served.machines()) == (False, ["production/web1"])


def test_a_sourced_readme_is_configuration_not_documentation(synced, make_change):
    synced.write(NGINX_MANIFEST, '[[file]]\npath = "/usr/share/doc/site/README.md"\nsource = "../../_common/README.md"\n')
    synced.commit("ship the shared README")
    on_branch(synced, "docs/shipped", {"production/_common/README.md": "# Shared production steps\n\nv2\n"})
    change = make_change("docs/shipped")

    assert change.documentation_only is False
    assert rows(change) == {"production/_common": ("direct", "", True),
                            "production/web1/nginx": ("source", "production/_common/README.md", True)}
    assert change.machines() == ["production/web1"]


def test_declarations_are_read_only_for_changes_that_reach_outside_machine_folders(sourcing, monkeypatch):
    from changes import services

    calls: list[str] = []
    real = impacts.declared_configuration

    def counting(repo, sha, **kwargs):
        calls.append(sha)
        return real(repo, sha, **kwargs)

    monkeypatch.setattr(impacts, "declared_configuration", counting)
    repo = services.fetch()
    main = repo.origin_head("main")
    inside = on_branch(sourcing, "inside", {"production/web1/nginx/files/etc/nginx/nginx.conf": "worker_processes 8;\n"})
    repo = services.fetch()
    assert [c["path"] for c in impacts.compute_impact(repo, main, inside)["cis"]] == ["production/web1/nginx"]
    assert calls == []
    outside = on_branch(sourcing, "outside", {CHAIN: "new chain\n"})
    repo = services.fetch()
    impacts.compute_impact(repo, main, outside)
    assert calls == [outside, main]  # the head and the merge base, once each


def test_a_documentation_only_change_request_page_says_so_and_offers_no_dry_run(synced, make_change, tls_branch,
                                                                                 requester, client_for):
    on_branch(synced, "docs/common", {"production/_common/README.md": "# Shared steps\n\nv2\n"})
    docs = make_change("docs/common")
    client = client_for(requester)
    page = client.get(docs.get_absolute_url()).content.decode().replace("<wbr>", "")
    assert "Documentation only:</strong> " + DOC_ONLY.split(": ", 1)[1] in page
    assert 'data-action="dry-run"' not in page
    assert 'data-label="Deploy"><span class="text-body-secondary">review only</span>' in page

    code = make_change(tls_branch)
    page = client.get(code.get_absolute_url()).content.decode()
    assert "Documentation only" not in page
    assert 'data-action="dry-run"' in page
    assert '<span class="badge text-bg-primary">deploy</span>' in page
    assert "source via" not in page and "common via" in page


def test_the_api_says_per_ci_why_and_whether_it_needs_a_deploy_and_refuses_a_dry_run_of_documentation(
        synced, make_change, requester):
    on_branch(synced, "docs/common", {"production/_common/README.md": "# Shared steps\n\nv2\n"})
    docs = make_change("docs/common")
    client = token_client(requester)

    impact = client.get(f"/api/changes/{docs.pk}/").json()["impact"]
    assert impact["documentation_only"] is True and impact["machines"] == []
    assert {c["path"]: (c["reason"], c["deploy"]) for c in impact["cis"]} == {
        "production/_common": ("direct", False), "production/db1": ("common", False),
        "production/web1": ("common", False)}
    assert impact["files"] == [{"path": "production/_common/README.md", "status": "M", "ci": "production/_common",
                                "documentation": True}]

    response = client.post(f"/api/changes/{docs.pk}/dry-run/", {}, content_type="application/json")
    assert response.status_code == 409
    assert DOC_ONLY in response.json()["detail"]
    assert not Job.objects.exists()


def test_a_documentation_only_page_costs_no_more_queries_than_any_other(synced, make_change, tls_branch, viewer,
                                                                         client_for):
    on_branch(synced, "docs/common", {"production/_common/README.md": "# Shared steps\n\nv2\n"})
    client = client_for(viewer)

    def cost(change: ChangeRequest) -> int:
        client.get(change.get_absolute_url())
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(change.get_absolute_url()).status_code == 200
        return len(ctx.captured_queries)

    # the pin of tests/changes/test_views.py for a change with a planned window
    assert cost(make_change("docs/common")) == cost(make_change(tls_branch)) == 20
