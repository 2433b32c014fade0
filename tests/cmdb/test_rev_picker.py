"""One revision picker everywhere a revision is asked for (branches, tags, recent commits), history
compares two picked commits, and compare starts from the CI's previous version."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from cmdb import services
from tests.cmdb.ui import ci_url

pytestmark = pytest.mark.django_db

OPTION = re.compile(r'<option value="([^"]*)" label="([^"]*)">')


@pytest.fixture
def versions_repo(synced):
    """web1 in three versions (other commits between them), a tag on the first, a second branch."""
    synced.git("tag", "-a", "baseline-2026-10", "-m", "by hand")
    synced.git("push", "-q", "origin", "refs/tags/baseline-2026-10")
    synced.git("push", "-q", "origin", "HEAD:refs/heads/feature/x")
    for n in (1, 2):
        synced.write("production/web1/README.md", f"# web1\n\nVersion {n}.\n")
        synced.commit(f"web1 version {n}")
        # Between two versions of web1: its previous version is not the parent of its latest.
        synced.write("production/db1/README.md", f"# db1\n\nUnrelated {n}.\n")
        synced.commit(f"db1 only {n}")
    services.repo_sync(trigger="test")
    return synced


def datalists(html: str) -> dict[str, dict[str, str]]:
    return {m.group(1): dict(OPTION.findall(m.group(2)))
            for m in re.finditer(r'<datalist id="([^"]+)">(.*?)</datalist>', html, re.S)}


@pytest.mark.parametrize("url", [
    ci_url("production/web1"),
    ci_url("production/web1", "history"),
    ci_url("production/web1", "compare"),
    reverse("cmdb:artifact_detail", kwargs={"path": "production/web1/README.md"}),
    reverse("changes:baseline_list"),
    reverse("changes:baseline_compare") + "?from=baseline-2026-10&to=main",
    reverse("changes:baseline_create"),
])
def test_every_revision_form_offers_branches_tags_and_recent_commits(versions_repo, staff, client_for, url):
    page = client_for(staff).get(url)
    assert page.status_code == 200
    html = page.content.decode()
    lists = datalists(html)
    inputs = re.findall(r'<input[^>]*\blist="([^"]+)"', html)
    assert inputs and all(i in lists for i in inputs), (inputs, list(lists))
    offered = lists[inputs[0]]
    assert offered["main"] == "branch" and offered["feature/x"] == "branch"
    assert offered["baseline-2026-10"] == "tag"
    head = versions_repo.head()
    assert offered[head[:12]].endswith("db1 only 2")


def test_an_unknown_revision_is_a_clear_message_not_an_error(versions_repo, viewer, client_for):
    client = client_for(viewer)
    page = client.get(reverse("changes:baseline_compare"), {"from": "no-such-tag", "to": "main"})
    assert page.status_code == 404 and "no-such-tag" in page.content.decode()
    page = client.get(ci_url("production/web1", "compare", **{"from": "no-such-tag", "to": "main"}))
    assert page.status_code == 404


def web1_versions(repo) -> list[str]:
    return repo.git("log", "--format=%H", "--", "production/web1").split()


def test_compare_defaults_to_the_previous_version_against_the_latest(versions_repo, viewer, client_for):
    latest, previous = web1_versions(versions_repo)[:2]
    page = client_for(viewer).get(ci_url("production/web1", "compare"))
    assert page.status_code == 200
    assert page.context["form"].initial == {"from_rev": previous, "to_rev": latest}
    html = page.content.decode()
    assert "Version 1." in html and "Version 2." in html


def test_the_history_preselects_the_two_latest_versions_and_compares_the_two_picked(versions_repo, viewer, client_for):
    latest, previous, oldest = web1_versions(versions_repo)[:3]
    client = client_for(viewer)
    html = client.get(ci_url("production/web1", "history")).content.decode()
    form = html[html.index('class="history-compare"'):]
    assert f'action="{reverse("cmdb:ci_compare", kwargs={"path": "production/web1"})}"' in html
    assert re.search(rf'name="from" value="{previous}"[^>]*checked', form)
    assert re.search(rf'name="to" value="{latest}"[^>]*checked', form)
    page = client.get(ci_url("production/web1", "compare", **{"from": oldest, "to": latest}))
    assert page.status_code == 200
    assert page.context["from_label"] == oldest and page.context["to_label"] == latest
    assert "Version 2." in page.content.decode()
