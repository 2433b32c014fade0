"""A machine's page after a real release: the audit that verified it (status, compliance, open findings,
manual check), the last deploy and dry run, the open change requests that touch it; readable by every
role, actionable by none from there, at a fixed number of queries whatever the history."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from audits.models import Finding, MachineStatus
from cmdb import services as cmdb_services
from deploys import rollout
from deploys import services as dryruns
from deploys.models import Job
from tests.gitutil import on_branch

pytestmark = pytest.mark.django_db

MACHINE = "prod/web1"
PAGE = reverse("cmdb:ci_detail", kwargs={"path": MACHINE})


def _panel(html: str, name: str) -> str:
    return html.split(f'data-panel="{name}"', 1)[1].split("</section>", 1)[0]


@pytest.fixture
def deployed(released, approver, make_change, dry_env, django_capture_on_commit_callbacks):
    """The released change planned and deployed (its verification audit run), an open change request
    on an application of web1 and a withdrawn one; the index synced."""
    with django_capture_on_commit_callbacks(execute=True):
        plan = dryruns.dryrun_start(acting_user=approver, change=released)
    with django_capture_on_commit_callbacks(execute=True):
        job = rollout.deploy_start(acting_user=approver, change=released)
    on_branch(dry_env["repo"], "change/panel", {"prod/web1/app/files/etc/app/extra.conf": "x\n"})
    open_cr = make_change("change/panel", title="Extra app setting")
    on_branch(dry_env["repo"], "change/gone", {"prod/web1/app/files/etc/app/gone.conf": "x\n"})
    gone = make_change("change/gone", title="Withdrawn one")
    from changes import services as change_services

    change_services.change_withdraw(change=gone, acting_user=gone.requester)
    cmdb_services.repo_sync(trigger="test")
    return {"plan": Job.objects.get(pk=plan.pk), "deploy": Job.objects.get(pk=job.pk), "open": open_cr,
            "withdrawn": gone}


@pytest.mark.parametrize("role", ["viewer", "requester", "approver", "staff"])
def test_every_role_sees_the_machine_status_and_cannot_act_from_it(deployed, role, request, client_for):
    response = client_for(request.getfixturevalue(role)).get(PAGE)
    assert response.status_code == 200
    html = response.content.decode()
    status = MachineStatus.objects.select_related("last_result").get(machine_path=MACHINE)
    audit = _panel(html, "audit")
    assert f'data-status="{status.status}"' in audit
    assert reverse("audits:audit_detail", kwargs={"pk": status.last_result.run_id}) in audit
    assert "Last audit" in audit and status.reason[:20] in audit
    open_findings = Finding.objects.filter(result=status.last_result, state="open")
    assert open_findings.exists() and status.open_findings == open_findings.count()
    for finding in open_findings:
        assert finding.get_absolute_url() in audit
    release = _panel(html, "release")
    assert deployed["deploy"].get_absolute_url() in release and deployed["plan"].get_absolute_url() in release
    changes = _panel(html, "changes")
    assert deployed["open"].get_absolute_url() in changes
    assert deployed["withdrawn"].get_absolute_url() not in changes
    assert deployed["deploy"].change.get_absolute_url() not in changes  # it touched web1 too, but is released
    for panel in ("audit", "release", "changes"):
        assert not re.search(r"<form|<button|/act/", _panel(html, panel)), panel


def test_the_panels_cost_a_fixed_number_of_queries_whatever_the_history(
        deployed, released, approver, staff, viewer, client_for, django_assert_num_queries,
        django_capture_on_commit_callbacks):
    from audits import services as audits

    client = client_for(viewer)
    client.get(PAGE)
    # The CI page's own 12 (tests/cmdb/test_browse.py) and the panels': machine status, open findings,
    # latest manual check; last deploy, last dry run; open change requests (17 when no finding is open).
    with django_assert_num_queries(18):
        assert client.get(PAGE).status_code == 200
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            dryruns.dryrun_start(acting_user=approver, change=released)
        with django_capture_on_commit_callbacks(execute=True):
            audits.audit_start(acting_user=staff)
    with django_assert_num_queries(18):
        assert client.get(PAGE).status_code == 200
