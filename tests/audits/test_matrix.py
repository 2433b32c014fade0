"""The audit run's compliance matrix (machines x applications): each cell says its state in a symbol
and words as well as a colour, links to exactly its findings, reads for every role, and costs the same
number of queries whatever the size of the run."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse

from audits.models import AuditRun, Finding, MachineResult

pytestmark = pytest.mark.django_db

ROLES = ["viewer", "requester", "approver", "staff"]


@pytest.fixture
def audited(audit_env, staff, run_audit):
    return run_audit(acting_user=staff)


def cells(response) -> dict[tuple[str, str], object]:
    return {(row["result"].machine_path, c.application.rsplit("/", 1)[-1]): c
            for row in response.context["matrix"]["rows"] for c in row["cells"]}


def test_cells_reflect_each_machines_results(audited, viewer, client_for):
    response = client_for(viewer).get(reverse("audits:audit_detail", args=[audited.pk]))
    matrix = response.context["matrix"]
    assert matrix["columns"] == ["app", "nginx"]
    states = {key: c.state for key, c in cells(response).items()}
    assert states == {
        ("prod/bad1", "app"): "missing", ("prod/bad1", "nginx"): "not-declared",
        ("prod/web1", "app"): "drifted", ("prod/web1", "nginx"): "drifted",
        ("prod/web2", "app"): "drifted", ("prod/web2", "nginx"): "not-declared",
        ("test/t1", "app"): "in-sync", ("test/t1", "nginx"): "not-declared",
    }
    web1_nginx = cells(response)[("prod/web1", "nginx")]
    result = MachineResult.objects.get(run=audited, machine_path="prod/web1")
    assert (web1_nginx.in_sync, web1_nginx.total) == tuple(result.applications["prod/web1/nginx"])
    assert web1_nginx.findings == Finding.objects.filter(result=result, app_path="prod/web1/nginx").count() == 2
    whole = {row["result"].machine_path: row["whole"].state for row in matrix["rows"] if row["whole"]}
    assert whole == {"prod/ssh1": "unreachable", "prod/broken": "error", "prod/db1": "manual"}

    html = response.content.decode()
    table = html[html.index('id="audit-matrix"'):html.index("</table>", html.index('id="audit-matrix"'))]
    # Never colour alone: every state carries its symbol and its words.
    assert '<td class="matrix-drifted" data-application="prod/web1/nginx" data-state="drifted">' in table
    assert "≠</span> drifted" in table and "∅</span> missing files" in table and "⊘</span> unreachable" in table
    assert '<span class="visually-hidden">in sync</span>' in table and "not declared" in table
    assert 'colspan="2" class="matrix-unreachable"' in table


def test_a_cell_links_to_exactly_that_runs_machines_and_applications_findings(audited, staff, run_audit, viewer,
                                                                             client_for):
    later = run_audit(acting_user=staff)  # the same drift again: the link must not mix the two runs
    client = client_for(viewer)
    link = cells(client.get(reverse("audits:audit_detail", args=[audited.pk])))[("prod/web1", "nginx")].url
    assert parse_qs(urlsplit(link).query) == {"run": [str(audited.pk)], "machine": ["prod/web1"],
                                               "application": ["prod/web1/nginx"]}
    page = client.get(link)
    assert page.status_code == 200
    shown = {f.pk for f in page.context["page"]}
    assert shown == set(Finding.objects.filter(run=audited, machine_path="prod/web1", app_path="prod/web1/nginx")
                        .values_list("pk", flat=True))
    assert len(shown) == 2 and not Finding.objects.filter(pk__in=shown, run=later).exists()
    assert f'The findings of <a href="/audits/{audited.pk}/">audit #{audited.pk}</a>' in page.content.decode()
    in_sync = cells(client.get(reverse("audits:audit_detail", args=[audited.pk])))[("test/t1", "app")]
    assert in_sync.url == ""  # nothing to list


@pytest.mark.parametrize("query", ["run=abc", "run=99999999999999999999999", "run=-1", "run=%23999",
                                   "application=" + "x" * 2000, "run=1&machine=nope&application=nope"])
def test_no_filter_of_the_findings_list_is_a_server_error(audited, viewer, client_for, query):
    response = client_for(viewer).get(reverse("audits:finding_list") + "?" + query)
    assert response.status_code == 200


@pytest.mark.parametrize("role", ROLES)
def test_every_role_reads_the_matrix(audited, role, request, client_for):
    response = client_for(request.getfixturevalue(role)).get(reverse("audits:audit_detail", args=[audited.pk]))
    assert response.status_code == 200 and 'id="audit-matrix"' in response.content.decode()


def test_the_matrix_needs_a_login(audited, client):
    response = client.get(reverse("audits:audit_detail", args=[audited.pk]))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def _big_run(machines: int) -> AuditRun:
    run = AuditRun.objects.create(state=AuditRun.State.SUCCEEDED, machines_total=machines, machines_done=machines)
    results = MachineResult.objects.bulk_create(
        MachineResult(run=run, machine_path=f"prod/m{i:05d}", environment="prod",
                      status="drifted" if i % 10 == 0 else "compliant", files_total=4,
                      files_in_sync=3 if i % 10 == 0 else 4,
                      applications={f"prod/m{i:05d}/web": [1 if i % 10 == 0 else 2, 2],
                                    f"prod/m{i:05d}/{'db' if i % 2 else 'cache'}": [2, 2]})
        for i in range(machines))
    Finding.objects.bulk_create(
        Finding(run=run, result=r, machine_path=r.machine_path, environment="prod", app_path=f"{r.machine_path}/web",
                target="/etc/web.conf", kind="content", fingerprint=r.machine_path)
        for r in results if r.status == "drifted")
    return run


def test_a_large_run_is_paginated_at_a_fixed_number_of_queries(viewer, client_for, django_assert_num_queries):
    client = client_for(viewer)
    small, large = _big_run(3), _big_run(250)
    client.get(reverse("audits:audit_detail", args=[small.pk]))
    # session, user, run, status counts, results count and page, their findings, manual checks, nav groups
    with django_assert_num_queries(9):
        few = client.get(reverse("audits:audit_detail", args=[small.pk]))
    with django_assert_num_queries(9):
        many = client.get(reverse("audits:audit_detail", args=[large.pk]))
    assert len(few.context["matrix"]["rows"]) == 3
    rows = many.context["matrix"]["rows"]
    assert len(rows) == 100 and many.context["page"].paginator.num_pages == 3
    assert many.context["matrix"]["columns"] == ["cache", "db", "web"]
    assert [r["result"].status for r in rows[:25]] == ["drifted"] * 25  # attention first, as the list below
    drifted = cells(many)[("prod/m00010", "web")]
    assert (drifted.state, drifted.findings, drifted.files) == ("drifted", 1, "1/2")
    assert cells(many)[("prod/m00010", "db")].state == "not-declared"
    last = client.get(reverse("audits:audit_detail", args=[large.pk]) + "?page=3")
    assert len(last.context["matrix"]["rows"]) == 50
