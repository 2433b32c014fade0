"""The audit pages for each role: reads open to everyone logged in, actions checked, CSRF on, the home
page's status accounting from stored figures, and pinned query counts."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audits.models import AuditRun, Finding
from tests.changes.ui import post

pytestmark = pytest.mark.django_db

ROLES = ["viewer", "requester", "approver", "staff"]


@pytest.fixture
def audited(audit_env, staff, run_audit):
    return run_audit(acting_user=staff)


def pages(run):
    finding = run.findings.first()
    return [reverse("audits:audit_list"), reverse("audits:audit_detail", args=[run.pk]),
            reverse("audits:finding_list"), reverse("audits:finding_detail", args=[finding.pk]),
            reverse("audits:check_list"), reverse("audits:machinestatus_list"), reverse("home")]


def test_every_page_needs_a_login(audited, client):
    for url in pages(audited):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], url


@pytest.mark.parametrize("role", ROLES)
def test_every_page_renders_for_every_role(audited, role, request, client_for):
    client = client_for(request.getfixturevalue(role))
    for url in pages(audited):
        assert client.get(url).status_code == 200, url


@pytest.mark.parametrize("role,status", [("viewer", 403), ("requester", 403), ("approver", 403), ("staff", 302)])
def test_only_staff_start_an_audit_from_the_page(audit_env, role, status, request, client_for,
                                                 django_capture_on_commit_callbacks):
    client = client_for(request.getfixturevalue(role))
    page = client.get(reverse("audits:audit_list"))
    assert (b'data-action="start-audit"' in page.content) == (role == "staff")
    assert b"0 2 1 * *" in page.content and b"data-next-audit" in page.content  # the monthly schedule, visible
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, reverse("audits:audit_start"), {"scope": "prod/web1"})
    assert response.status_code == status
    assert AuditRun.objects.count() == (1 if role == "staff" else 0)
    if role == "staff":
        run = AuditRun.objects.get()
        assert response["Location"] == run.get_absolute_url() and run.state == "succeeded"


def test_csrf_is_enforced_on_actions(audited, staff, client_for):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    assert client.post(reverse("audits:audit_start"), {"scope": ""}).status_code == 403
    finding = audited.findings.first()
    assert client.post(reverse("audits:finding_act", args=[finding.pk]),
                       {"action": "acknowledge", "note": "x"}).status_code == 403


@pytest.mark.parametrize("role,status", [("viewer", 403), ("requester", 403), ("approver", 302), ("staff", 302)])
def test_acknowledge_from_the_finding_page(audited, role, status, request, client_for):
    client = client_for(request.getfixturevalue(role))
    finding = audited.findings.get(machine_path="prod/web1", target="/etc/nginx/nginx.conf", kind="content")
    page = client.get(finding.get_absolute_url())
    assert (b'value="acknowledge"' in page.content) == (role in ("approver", "staff"))
    assert (b'value="adopt"' in page.content) == (role != "viewer")
    assert b"worker_processes 1" in page.content  # the diff
    response = post(client, reverse("audits:finding_act", args=[finding.pk]), {"action": "acknowledge", "note": "ok"})
    assert response.status_code == status
    finding.refresh_from_db()
    assert finding.state == ("acknowledged" if status == 302 else "open")


def test_adopt_from_the_page_lands_on_the_new_change_request(audited, requester, client_for):
    client = client_for(requester)
    finding = audited.findings.get(machine_path="prod/web1", target="/etc/nginx/nginx.conf", kind="content")
    response = post(client, reverse("audits:finding_act", args=[finding.pk]), {"action": "adopt", "note": ""})
    finding.refresh_from_db()
    assert finding.state == "adopted" and response["Location"] == finding.change.get_absolute_url()


def test_secret_findings_never_show_content(audited, staff, client_for):
    finding = audited.findings.get(target="/etc/app/secrets/token", kind="content")
    page = client_for(staff).get(finding.get_absolute_url())
    assert b"never shown" in page.content and b"token-value" not in page.content
    detail = client_for(staff).get(reverse("audits:audit_detail", args=[audited.pk]))
    assert b"token-value" not in detail.content


def test_manual_check_from_the_checklist(audited, requester, viewer, client_for):
    check = audited.manual_checks.get()
    assert post(client_for(viewer), reverse("audits:check_record", args=[check.pk]),
                {"state": "matches"}).status_code == 403
    response = post(client_for(requester), reverse("audits:check_record", args=[check.pk]),
                    {"state": "discrepancy", "note": "port 7 tagged wrong"})
    assert response.status_code == 302
    check.refresh_from_db()
    assert (check.state, check.note, check.checked_by) == ("discrepancy", "port 7 tagged wrong", requester)


def test_home_page_answers_does_everything_still_work(audited, viewer, client_for):
    page = client_for(viewer).get(reverse("home"))
    status = page.context["status"]
    prod = next(e for e in status["environments"] if e["environment"] == "prod")
    assert prod["compliance"] == 22.2 and prod["statuses"]["drifted"] == 3 and prod["open_findings"] == 9
    assert status["last_audit"].pk == audited.pk
    html = page.content.decode()
    assert "Does everything still work?" in html and 'data-environment="prod"' in html and "22.2%" in html


def test_machine_list_filters_and_costs_a_fixed_number_of_queries(audit_env, audited, staff, run_audit, viewer,
                                                                  client_for, django_assert_num_queries):
    client = client_for(viewer)
    url = reverse("audits:machinestatus_list")
    client.get(url)
    # session, user, count, page (+ last result joined), trends (first run date + results), nav groups
    with django_assert_num_queries(7):
        small = client.get(url)
    assert len(small.context["rows"]) == 7
    run_audit(acting_user=staff)
    run_audit(acting_user=staff, scope="prod")
    with django_assert_num_queries(7):
        response = client.get(url + "?status=problem")
    assert {r["status"].machine_path for r in response.context["rows"]} == {
        "prod/bad1", "prod/broken", "prod/ssh1", "prod/web1", "prod/web2"}
    web1 = next(r for r in response.context["rows"] if r["status"].machine_path == "prod/web1")
    assert web1["trend"] == [40.0, 40.0, 40.0]
    assert Finding.objects.filter(machine_path="prod/web1").count() == 15


def test_the_run_page_lists_machines_needing_attention_first_and_filters_by_status(audited, viewer, client_for,
                                                                                   django_assert_max_num_queries):
    client = client_for(viewer)
    url = reverse("audits:audit_detail", args=[audited.pk])
    with django_assert_max_num_queries(9):
        page = client.get(url)
    order = [m["result"].status for m in page.context["machines"]]
    assert order == ["drifted", "drifted", "drifted", "unreachable", "error", "manual", "compliant"]
    only = client.get(url + "?status=unreachable")
    assert [m["result"].machine_path for m in only.context["machines"]] == ["prod/ssh1"]
    assert client.get(url + "?status=bogus").context["status"] == ""
