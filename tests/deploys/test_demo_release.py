"""The demo's release run by an ordinary user, as ``make demo`` usually is: the local machines'
files cannot be given to root, so their owners and groups are neither compared nor set, and the
release of ``change/nginx-tls-hardening`` deploys and verifies (the browser walk of the same path,
as root, is tests/deploys/test_browser_release.py)."""

from __future__ import annotations

import os

import pytest

from changes import services as change_services
from deploys import rollout
from deploys import services as dryruns
from deploys.models import MachinePlan
from fleet.transport import local
from tests.fixtures.windows import around_now

NGINX = "/etc/nginx/nginx.conf"


@pytest.fixture
def not_root(monkeypatch, demo):
    """What a portal run by an ordinary user meets: chown to another user is refused."""
    def refused(*args, **kwargs):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(local, "manages_ownership", lambda: False)
    monkeypatch.setattr(os, "fchown", refused)
    for path in (demo / "live").rglob("*"):  # the demo user's files, as the builder leaves them
        os.lchown(path, 65534, 65534)


def test_an_ordinary_user_deploys_and_verifies_the_demo_release(
        demo, not_root, requester, approver, second_approver, staff, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    with capture(execute=True):
        cr = change_services.change_create(acting_user=requester, branch="change/nginx-tls-hardening",
                                           title="TLS hardening", **around_now())
        change_services.change_submit(change=cr, acting_user=requester)
        change_services.change_approve(change=cr, acting_user=approver)
        change_services.change_approve(change=cr, acting_user=second_approver)
        cr = change_services.change_implement(change=cr, acting_user=staff)
    with capture(execute=True):
        plan = dryruns.dryrun_start(acting_user=staff, change=cr)
    plan.refresh_from_db()
    web1 = {i["target"]: i for i in MachinePlan.objects.get(job=plan, machine_path="production/web1").items}
    # the hotfix is the conflict; owners (root declared, the demo user's on disk) are not drift
    assert (web1[NGINX]["origin"], web1[NGINX]["changes"]) == ("conflict", ["content"])
    assert {t: i["changes"] for t, i in web1.items() if i["origin"] == "drift"} == {
        "/etc/systemd/system/shopfront.service": ["mode"]}

    with capture(execute=True):
        job = rollout.deploy_start(acting_user=staff, change=cr, plan_job=plan, confirm_conflicts=True)
    job.refresh_from_db()
    result = MachinePlan.objects.get(job=job, machine_path="production/web1")
    assert (job.state, result.status) == ("succeeded", "applied"), (job.error, result.reason)
    live = demo / "live/production/web1/etc/nginx/nginx.conf"
    assert "ssl_protocols TLSv1.3;" in live.read_text() and "64m" not in live.read_text()
    assert live.stat().st_uid == os.getuid()  # written by the portal's user, not given away
    cr.refresh_from_db()
    assert cr.verification["state"] == "passed", cr.verification
