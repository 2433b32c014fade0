"""``/metrics``: the status-accounting figures for Prometheus, in its text format.

Every figure is read from the database (and the queue's length from the broker) at scrape time by a
collector, so any number of web processes give the same answer and nothing is counted in memory.
The endpoint is off unless ``CMDB_METRICS_TOKEN`` is set; a scraper sends ``Authorization: Bearer
<token>``. The cost is a fixed handful of aggregate queries whatever the history (pinned in tests).
"""

from __future__ import annotations

import hmac
import logging

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db.models import Count, DurationField, ExpressionWrapper, F, Sum
from django.http import Http404, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily

from audits.models import AuditRun, Finding, MachineStatus
from audits.queries import status_overview
from changes.models import ChangeRequest
from cmdb.models import SyncRun
from deploys.models import Job

log = logging.getLogger(__name__)

QUEUE_NAMES = ("celery",)


def _duration():
    return ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())


class PortalCollector:
    def collect(self):
        yield from self._status()
        yield from self._changes()
        yield from self._jobs()
        yield from self._audits()
        yield from self._sync()
        yield from self._queue()

    def _status(self):
        overview = status_overview()
        compliance = GaugeMetricFamily("cmdb_compliance_ratio", "Files in sync / files audited, per environment "
                                       "(latest audit of each machine)", labels=["environment"])
        for env in overview["environments"]:
            if env["compliance"] is not None:
                compliance.add_metric([env["environment"]], env["compliance"] / 100)
        yield compliance
        machines = GaugeMetricFamily("cmdb_machines", "Machines by latest audit status",
                                     labels=["environment", "status"])
        rows = MachineStatus.objects.order_by().values("environment", "status").annotate(n=Count("id"))
        for row in rows:
            machines.add_metric([row["environment"], row["status"]], row["n"])
        yield machines
        findings = GaugeMetricFamily("cmdb_open_findings", "Open audit findings by kind", labels=["environment", "kind"])
        rows = (Finding.objects.filter(state=Finding.State.OPEN).order_by().values("environment", "kind")
                .annotate(n=Count("id")))
        for row in rows:
            findings.add_metric([row["environment"], row["kind"]], row["n"])
        yield findings

    def _changes(self):
        changes = GaugeMetricFamily("cmdb_change_requests", "Change requests by state", labels=["state"])
        counts = dict(ChangeRequest.objects.order_by().values_list("state").annotate(n=Count("id")))
        for state in ChangeRequest.State.values:
            changes.add_metric([state], counts.get(state, 0))
        yield changes

    def _jobs(self):
        jobs = CounterMetricFamily("cmdb_jobs", "Dry runs, deploys and restores by result (finished ones)",
                                   labels=["kind", "result"])
        seconds = SummaryMetricFamily("cmdb_job_duration_seconds", "Time from start to end of finished jobs",
                                      labels=["kind", "result"])
        rows = (Job.objects.filter(state__in=Job.FINISHED_STATES).order_by().values("kind", "state")
                .annotate(n=Count("id"), total=Sum(_duration())))
        for row in rows:
            jobs.add_metric([row["kind"], row["state"]], row["n"])
            seconds.add_metric([row["kind"], row["state"]], count_value=row["n"],
                               sum_value=row["total"].total_seconds() if row["total"] else 0.0)
        yield jobs
        yield seconds

    def _audits(self):
        runs = CounterMetricFamily("cmdb_audits", "Audit runs by result (finished ones)", labels=["result"])
        seconds = SummaryMetricFamily("cmdb_audit_duration_seconds", "Time from start to end of finished audits",
                                      labels=["result"])
        finished = (AuditRun.State.SUCCEEDED, AuditRun.State.INCOMPLETE, AuditRun.State.FAILED)
        rows = (AuditRun.objects.filter(state__in=finished, started_at__isnull=False).order_by().values("state")
                .annotate(n=Count("id"), total=Sum(_duration())))
        for row in rows:
            runs.add_metric([row["state"]], row["n"])
            seconds.add_metric([row["state"]], count_value=row["n"],
                               sum_value=row["total"].total_seconds() if row["total"] else 0.0)
        yield runs
        yield seconds
        last = AuditRun.objects.filter(state__in=finished).order_by("-finished_at").values_list("finished_at",
                                                                                               flat=True).first()
        gauge = GaugeMetricFamily("cmdb_last_audit_timestamp_seconds", "When the last audit finished (Unix time)")
        if last:
            gauge.add_metric([], last.timestamp())
        yield gauge

    def _sync(self):
        ok = (SyncRun.objects.filter(status=SyncRun.Status.SUCCEEDED).order_by("-started_at")
              .values("finished_at", "duration_ms").first())
        age = GaugeMetricFamily("cmdb_sync_age_seconds", "Seconds since the last successful sync finished")
        duration = GaugeMetricFamily("cmdb_sync_duration_seconds", "Duration of the last successful sync")
        if ok and ok["finished_at"]:
            age.add_metric([], (timezone.now() - ok["finished_at"]).total_seconds())
            duration.add_metric([], (ok["duration_ms"] or 0) / 1000)
        yield age
        yield duration
        last = SyncRun.objects.exclude(status=SyncRun.Status.RUNNING).order_by("-started_at").values("status").first()
        failing = GaugeMetricFamily("cmdb_sync_failing", "1 when the last finished sync failed")
        failing.add_metric([], 1.0 if last and last["status"] != SyncRun.Status.SUCCEEDED else 0.0)
        yield failing

    def _queue(self):
        from portal.celery import app

        length = GaugeMetricFamily("cmdb_queue_messages", "Messages waiting in the task queue", labels=["queue"])
        up = GaugeMetricFamily("cmdb_queue_up", "1 when the broker answered the scrape")
        try:
            with app.connection_for_read() as conn:
                channel = conn.default_channel
                for name in QUEUE_NAMES:
                    length.add_metric([name], channel.queue_declare(queue=name, passive=True).message_count)
            up.add_metric([], 1.0)
        except Exception as exc:  # noqa: BLE001 - a broker down is a figure here, not an error page
            log.warning("metrics: the broker did not answer: %s", exc)
            up.add_metric([], 0.0)
        yield length
        yield up


def render_metrics() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PortalCollector())
    return generate_latest(registry)


def _authorized(request) -> bool:
    expected = settings.CMDB_METRICS_TOKEN
    given = request.headers.get("Authorization", "")
    return given.startswith("Bearer ") and hmac.compare_digest(given[7:].encode(), expected.encode())


@login_not_required  # a scraper has no session: the bearer token is the check
@require_GET
def metrics(request):
    if not settings.CMDB_METRICS_TOKEN:
        raise Http404("Metrics are off (set CMDB_METRICS_TOKEN).")
    if not _authorized(request):
        response = HttpResponse("A bearer token is required (CMDB_METRICS_TOKEN).\n", status=401,
                                content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(render_metrics(), content_type=CONTENT_TYPE_LATEST)
