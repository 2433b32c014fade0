"""``/metrics``: Prometheus text format, read back with the client library's own parser."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client, override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from audits.models import AuditRun, Finding, MachineResult, MachineStatus
from changes.models import ChangeRequest
from cmdb.models import SyncRun
from deploys.models import Job

pytestmark = pytest.mark.django_db

TOKEN = "s3cret-metrics-token-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def samples(body: bytes) -> dict[tuple, float]:
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.fixture
def figures(requester, staff):
    now = timezone.now()
    run = AuditRun.objects.create(state="succeeded", requested_by=staff, machines_total=2, machines_done=2,
                                  started_at=now - timedelta(seconds=40), finished_at=now - timedelta(seconds=10))
    drifted = MachineResult.objects.create(run=run, machine_path="production/web1", environment="production",
                                           status="drifted", files_total=4, files_in_sync=3, compliance=75.0)
    ok = MachineResult.objects.create(run=run, machine_path="production/db1", environment="production",
                                      status="compliant", files_total=4, files_in_sync=4, compliance=100.0)
    MachineStatus.objects.create(machine_path="production/web1", environment="production", last_result=drifted,
                                 status="drifted", files_total=4, files_in_sync=3, compliance=75.0, open_findings=1,
                                 last_audit_at=now)
    MachineStatus.objects.create(machine_path="production/db1", environment="production", last_result=ok,
                                 status="compliant", files_total=4, files_in_sync=4, compliance=100.0, last_audit_at=now)
    Finding.objects.create(run=run, result=drifted, machine_path="production/web1", environment="production",
                           target="/etc/nginx/nginx.conf", kind="content", fingerprint="f" * 64)
    ChangeRequest.objects.create(title="a", branch="change/a", requester=requester, state="submitted")
    ChangeRequest.objects.create(title="b", branch="change/b", requester=requester, state="implemented")
    for seconds, state in ((3, "succeeded"), (5, "succeeded"), (7, "failed")):
        Job.objects.create(kind="deploy", revision="a" * 40, requested_by=staff, state=state,
                           started_at=now - timedelta(seconds=seconds), finished_at=now)
    Job.objects.create(kind="dry-run", revision="a" * 40, requested_by=staff, state="running", started_at=now)
    SyncRun.objects.create(trigger="test", status="succeeded", started_at=now - timedelta(seconds=100),
                           finished_at=now - timedelta(seconds=90), duration_ms=1500)


def test_metrics_are_off_unless_a_token_is_configured(client):
    assert client.get("/metrics").status_code == 404


@override_settings(CMDB_METRICS_TOKEN=TOKEN)
@pytest.mark.parametrize("header", [None, "Bearer wrong-token", f"Token {TOKEN}"])
def test_metrics_need_the_bearer_token(header):
    r = Client(headers={"Authorization": header} if header else {}).get("/metrics")
    assert r.status_code == 401 and r["WWW-Authenticate"].startswith("Bearer")


@override_settings(CMDB_METRICS_TOKEN=TOKEN)
def test_metrics_report_compliance_machines_findings_changes_jobs_audits_sync_and_queue(figures):
    r = Client(headers=AUTH).get("/metrics")
    assert r.status_code == 200 and r["Content-Type"].startswith("text/plain; version=")
    got = samples(r.content)
    assert got[("cmdb_compliance_ratio", (("environment", "production"),))] == pytest.approx(7 / 8)
    assert got[("cmdb_machines", (("environment", "production"), ("status", "drifted")))] == 1
    assert got[("cmdb_machines", (("environment", "production"), ("status", "compliant")))] == 1
    assert got[("cmdb_open_findings", (("environment", "production"), ("kind", "content")))] == 1
    assert got[("cmdb_change_requests", (("state", "submitted"),))] == 1
    assert got[("cmdb_change_requests", (("state", "implemented"),))] == 1
    assert got[("cmdb_change_requests", (("state", "draft"),))] == 0
    assert got[("cmdb_jobs_total", (("kind", "deploy"), ("result", "succeeded")))] == 2
    assert got[("cmdb_jobs_total", (("kind", "deploy"), ("result", "failed")))] == 1
    assert ("cmdb_jobs_total", (("kind", "dry-run"), ("result", "running"))) not in got  # not finished
    assert got[("cmdb_job_duration_seconds_sum", (("kind", "deploy"), ("result", "succeeded")))] == pytest.approx(8)
    assert got[("cmdb_job_duration_seconds_count", (("kind", "deploy"), ("result", "succeeded")))] == 2
    assert got[("cmdb_audits_total", (("result", "succeeded"),))] == 1
    assert got[("cmdb_audit_duration_seconds_sum", (("result", "succeeded"),))] == pytest.approx(30)
    assert 89 < got[("cmdb_sync_age_seconds", ())] < 120
    assert got[("cmdb_sync_duration_seconds", ())] == 1.5
    assert got[("cmdb_sync_failing", ())] == 0
    assert got[("cmdb_queue_up", ())] == 1 and got[("cmdb_queue_messages", (("queue", "celery"),))] >= 0


@override_settings(CMDB_METRICS_TOKEN=TOKEN)
def test_a_failed_last_sync_is_reported(figures):
    SyncRun.objects.create(trigger="test", status="failed", finished_at=timezone.now(), error="origin gone")
    assert samples(Client(headers=AUTH).get("/metrics").content)[("cmdb_sync_failing", ())] == 1


@override_settings(CMDB_METRICS_TOKEN=TOKEN)
def test_an_unreachable_broker_is_a_figure_not_an_error(figures):
    from portal.celery import app

    old = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    app.conf.broker_connection_timeout = 1
    try:
        r = Client(headers=AUTH).get("/metrics")
    finally:
        app.conf.broker_url = old
    assert r.status_code == 200 and samples(r.content)[("cmdb_queue_up", ())] == 0


@override_settings(CMDB_METRICS_TOKEN=TOKEN)
def test_a_scrape_costs_a_fixed_number_of_queries(figures, staff, django_assert_max_num_queries):
    client = Client(headers=AUTH)
    with django_assert_max_num_queries(16) as ctx:
        client.get("/metrics")
    first = len(ctx)
    for _ in range(5):
        figures_more = Job.objects.create(kind="restore", revision="b" * 40, state="succeeded", requested_by=staff,
                                          started_at=timezone.now(), finished_at=timezone.now())
        assert figures_more.pk
    with django_assert_max_num_queries(first):
        client.get("/metrics")


@pytest.mark.parametrize("value", ["short"])
def test_a_short_metrics_token_fails_at_start(value, monkeypatch):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', "
                        "'portal.settings'); django.setup()"], env={**__import__("os").environ,
                        "CMDB_METRICS_TOKEN": value, "DJANGO_DEBUG": "true"}, capture_output=True, text=True)
    assert r.returncode != 0 and "CMDB_METRICS_TOKEN must be at least 16 characters" in r.stderr
