"""The verdict in a real headless Chromium (Debian's chromium driven by Playwright): a viewer opens the
home page and reads "All good" overall and per environment; a hand edit on a machine, found by the
next audit, turns its environment to "Needs attention" with the reason as a link to the findings.

Celery runs eagerly: an audit runs on commit of the call that starts it. Screenshots:
``test-artifacts/screenshots/status-*.png`` (git-ignored).
"""

from __future__ import annotations

import re

import pytest

from tests.changes.browser import Session

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def small_fleet(work_repo, tmp_path, settings):
    """prod/web1 and test/t1, two local machines whose live trees match main; synced."""
    from cmdb import services

    live = tmp_path / "live"
    settings.CMDB_LOCAL_ROOT_BASE = live
    work_repo.write("README.md", "# Infrastructure\n")
    for env, machine in (("prod", "web1"), ("test", "t1")):
        work_repo.write(f"{env}/README.md", f"# {env}\n\nThe **{env}** machines.\n")
        work_repo.write(f"{env}/{machine}/README.md", f"# {machine}\n")
        work_repo.write(f"{env}/{machine}/manifest.toml",
                        f'[machine]\ntransport = "local"\nroot = "machines/{machine}"\n')
        work_repo.write(f"{env}/{machine}/nginx/README.md", "# nginx\n")
        work_repo.write(f"{env}/{machine}/nginx/files/etc/nginx/nginx.conf", "worker_processes 2;\n")
        target = live / "machines" / machine / "etc" / "nginx" / "nginx.conf"
        target.parent.mkdir(parents=True)
        target.write_text("worker_processes 2;\n")
        target.chmod(0o644)
    work_repo.commit("Two machines")
    services.repo_sync(trigger="test")
    return live


def test_a_viewer_reads_the_verdict_and_drift_turns_an_environment_to_needs_attention(
        browser, live_server, small_fleet, staff, viewer):
    from playwright.sync_api import expect  # after the browser fixture: it skips/fails without Playwright

    from audits import services

    services.audit_start(acting_user=staff, scope="")
    base = live_server.url
    vera = Session(browser, base, "viewer", prefix="status")
    vera.login(viewer.username)
    page = vera.page  # login lands on the home page

    verdict = page.locator("#verdict")
    expect(verdict.get_by_role("heading", level=2).first).to_have_text("Status: All good")
    expect(verdict).to_have_attribute("data-verdict", "ok")
    prod, test = verdict.locator('[data-environment="prod"]'), verdict.locator('[data-environment="test"]')
    for card in (prod, test):
        expect(card.locator(".verdict-badge")).to_have_text("All good")
        expect(card).to_contain_text("Nothing to report.")
    box = verdict.bounding_box()
    counters = page.locator(".stat-cards").bounding_box()
    assert box and counters and box["y"] < counters["y"]  # the verdict first, the inventory below
    expect(page.locator(".env-card").first).to_contain_text("The prod machines.")  # no Markdown shown
    vera.shot("all-good")

    (small_fleet / "machines" / "web1" / "etc" / "nginx" / "nginx.conf").write_text("worker_processes 8;  # by hand\n")
    services.audit_start(acting_user=staff, scope="")
    page.reload()

    expect(verdict.get_by_role("heading", level=2).first).to_have_text("Status: Needs attention")
    expect(verdict).to_have_attribute("data-verdict", "attention")
    expect(verdict.locator(".verdict-icon")).to_have_class(re.compile(r"bi-exclamation-triangle-fill"))
    expect(prod.locator(".verdict-badge")).to_have_text("Needs attention")
    expect(test.locator(".verdict-badge")).to_have_text("All good")
    reason = prod.get_by_role("link", name=re.compile(r"^1 open finding"))
    expect(reason).to_be_visible()
    vera.shot("needs-attention")

    reason.click()
    page.wait_for_url(f"{base}/audits/findings/?state=open&environment=prod")
    expect(page.get_by_text("/etc/nginx/nginx.conf").first).to_be_visible()
    vera.shot("findings")
