"""Versions in real Chromium: a tag pushed to origin is a baseline after a sync, and a CI's history
compares two picked commits."""

from __future__ import annotations

import re

import pytest

from cmdb import services
from tests.changes.browser import Session

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_tag_pushed_to_origin_shows_as_a_baseline(browser, live_server, synced, viewer):
    synced.git("tag", "-a", "baseline-2026-10", "-m", "October state, tagged by hand")
    synced.git("push", "-q", "origin", "refs/tags/baseline-2026-10")
    tagged = synced.head()
    services.repo_sync(trigger="test")

    vera = Session(browser, live_server.url, "viewer", prefix="versions")
    vera.login(viewer.username)
    page = vera.page
    page.goto(f"{live_server.url}/changes/baselines/")
    row = page.locator("tr.baseline-row", has_text="baseline-2026-10")
    assert row.is_visible()
    assert row.get_by_text("tag made outside the portal").is_visible()
    assert row.get_by_text("October state, tagged by hand").is_visible()
    vera.shot("baselines")

    row.get_by_role("link", name=tagged[:10]).click()
    page.wait_for_url(re.compile(rf".*/commits/{tagged}/?.*"))
    assert page.locator(".commit-tags").get_by_text("baseline-2026-10").is_visible()
    assert page.locator(".commit-branches").get_by_text("main").first.is_visible()
    vera.shot("commit")

    page.goto(f"{live_server.url}/search/?q=baseline-2026")
    page.locator(".search-tags").get_by_role("link", name="baseline-2026-10").click()
    page.wait_for_url(re.compile(rf".*/commits/{tagged}/?.*"))


def test_a_history_compares_the_two_commits_picked(browser, live_server, synced, viewer):
    first = synced.head()
    for n in (1, 2):
        synced.write("production/web1/README.md", f"# web1\n\nVersion {n}.\n")
        synced.commit(f"web1 version {n}")
    services.repo_sync(trigger="test")

    vera = Session(browser, live_server.url, "viewer", prefix="versions")
    vera.login(viewer.username)
    page = vera.page
    page.goto(f"{live_server.url}/ci/production/web1/-/history/")
    page.get_by_label(f"Compare from {first[:10]}").check()
    page.get_by_role("button", name="Compare selected").click()
    page.wait_for_url(re.compile(r".*/-/compare/\?.*from=.*"))
    assert f"from={first}" in page.url
    assert page.get_by_text("Version 2.").first.is_visible()
    vera.shot("history-compare")
