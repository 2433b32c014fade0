"""Tags made outside the portal are versions: baselines, search results, names on their commit's page."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse

from changes import services as change_services
from cmdb import services
from portal.env import env_glob

pytestmark = pytest.mark.django_db

BASELINES = reverse("changes:baseline_list")


def push_tag(repo, name: str, *, annotated: bool = True, rev: str = "HEAD") -> str:
    if annotated:
        repo.git("tag", "-a", name, "-m", f"Tagged {name} by hand", rev)
    else:
        repo.git("tag", name, rev)
    repo.git("push", "-q", "origin", f"refs/tags/{name}")
    return repo.git("rev-parse", f"{rev}^{{commit}}").strip()


def delete_tag(repo, name: str) -> None:
    repo.git("push", "-q", "origin", f":refs/tags/{name}")
    repo.git("tag", "-d", name)


def baseline_names(response) -> list[str]:
    return [r.name for r in response.context["rows"]]


@pytest.mark.parametrize("annotated", [True, False], ids=["annotated", "lightweight"])
def test_a_tag_pushed_to_origin_is_a_baseline_after_a_sync(synced, viewer, client_for, annotated):
    sha = push_tag(synced, "baseline-2026-10", annotated=annotated)
    client = client_for(viewer)
    assert "baseline-2026-10" not in baseline_names(client.get(BASELINES))  # not fetched yet
    services.repo_sync(trigger="test")
    page = client.get(BASELINES)
    assert page.status_code == 200
    row = next(r for r in page.context["rows"] if r.name == "baseline-2026-10")
    assert row.sha == sha and row.outside
    assert "tag made outside the portal" in page.content.decode()
    assert (row.note == "Tagged baseline-2026-10 by hand") is annotated


def test_portal_baselines_are_not_marked_as_made_outside(synced, staff, client_for):
    change_services.baseline_create(acting_user=staff, name="baseline-portal")
    services.repo_sync(trigger="test")
    rows = client_for(staff).get(BASELINES).context["rows"]
    assert [(r.name, r.outside) for r in rows] == [("baseline-portal", False)]


def test_tags_are_filtered_by_the_configured_pattern(synced, viewer, client_for, settings):
    push_tag(synced, "baseline-2026-10")
    push_tag(synced, "v1.2", annotated=False)
    services.repo_sync(trigger="test")
    settings.CMDB_BASELINE_TAG_PATTERN = "baseline-*"
    assert baseline_names(client_for(viewer).get(BASELINES)) == ["baseline-2026-10"]
    settings.CMDB_BASELINE_TAG_PATTERN = "*"
    assert sorted(baseline_names(client_for(viewer).get(BASELINES))) == ["baseline-2026-10", "v1.2"]


@pytest.mark.parametrize("value", ["base line", "x..y", "a[b", "tag;rm", ""])
def test_a_pattern_no_tag_name_could_match_stops_start_up(monkeypatch, value):
    monkeypatch.setenv("CMDB_BASELINE_TAG_PATTERN", value)
    if value == "":
        assert env_glob("CMDB_BASELINE_TAG_PATTERN", "*") == "*"  # unset means the default
        return
    with pytest.raises(ImproperlyConfigured, match="CMDB_BASELINE_TAG_PATTERN"):
        env_glob("CMDB_BASELINE_TAG_PATTERN", "*")


def test_a_tag_deleted_on_origin_disappears_and_a_moved_tag_follows(synced, viewer, client_for):
    first = synced.head()
    push_tag(synced, "gone")
    push_tag(synced, "moving", annotated=False)
    services.repo_sync(trigger="test")
    delete_tag(synced, "gone")
    synced.write("production/README.md", "# Production\n\nLater.\n")
    later = synced.commit("Later")
    synced.git("tag", "-f", "moving", later)
    synced.git("push", "-q", "-f", "origin", "refs/tags/moving")
    services.repo_sync(trigger="test")
    rows = {r.name: r.sha for r in client_for(viewer).get(BASELINES).context["rows"]}
    assert rows == {"moving": later}
    assert later != first


def test_baselines_compare_works_on_a_tag_made_outside(synced, viewer, client_for):
    push_tag(synced, "before")
    synced.write("production/web1/README.md", "# web1\n\nChanged.\n")
    synced.commit("Change web1")
    services.repo_sync(trigger="test")
    page = client_for(viewer).get(reverse("changes:baseline_compare"), {"from": "before", "to": "main"})
    assert page.status_code == 200
    assert [c.path for c in page.context["cis"]] == ["production/web1"]


def test_a_tag_is_found_by_search_and_links_to_its_commit(synced, viewer, client_for):
    sha = push_tag(synced, "baseline-2026-10")
    services.repo_sync(trigger="test")
    page = client_for(viewer).get(reverse("cmdb:search"), {"q": "2026-10"})
    assert page.status_code == 200
    assert [t["tag"].name for t in page.context["tags"]] == ["baseline-2026-10"]
    assert f'href="{reverse("cmdb:commit_detail", kwargs={"sha": sha})}"' in page.content.decode()
    assert client_for(viewer).get(reverse("cmdb:search"), {"q": "nomatch"}).context["tags"] == []


def test_the_commit_page_names_its_tags_and_branches(synced, viewer, client_for):
    tagged = push_tag(synced, "baseline-2026-10")
    synced.git("push", "-q", "origin", f"{tagged}:refs/heads/hotfix")
    synced.write("production/README.md", "# Production\n\nLater.\n")
    synced.commit("Later")
    services.repo_sync(trigger="test")
    page = client_for(viewer).get(reverse("cmdb:commit_detail", kwargs={"sha": tagged}))
    refs = page.context["refs"]
    assert refs.tags == ("baseline-2026-10",)
    assert refs.branches_at == ("hotfix",)
    assert set(refs.branches_containing) == {"hotfix", "main"}
    html = page.content.decode()
    assert "baseline-2026-10" in html and "hotfix" in html


def test_tags_need_a_signed_in_user(synced, client):
    push_tag(synced, "baseline-2026-10")
    services.repo_sync(trigger="test")
    for url in (BASELINES, reverse("cmdb:search") + "?q=baseline"):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("role", ["viewer", "requester", "approver", "staff"])
def test_every_role_sees_tags_made_outside(synced, client_for, request, role):
    push_tag(synced, "baseline-2026-10")
    services.repo_sync(trigger="test")
    assert "baseline-2026-10" in baseline_names(client_for(request.getfixturevalue(role)).get(BASELINES))
