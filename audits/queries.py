"""Read-side of auditing: the status-accounting figures, from stored rows only (no history scans).

The home page, the status page and ``GET /api/status/`` all call :func:`status_overview`; its cost
is a fixed handful of queries whatever the number of machines or runs (pinned in tests).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from celery.schedules import crontab
from django.conf import settings
from django.db.models import Count, Max, Q, Sum
from django.utils import timezone

from audits.models import AuditRun, Finding, MachineResult, MachineStatus, ManualCheck, percent
from changes.models import ChangeRequest, ImpactedCI, UnauthorizedCommit
from cmdb.models import SyncRun

TREND_RUNS = 12  # a year of monthly audits
PROBLEM_STATUSES = ("drifted", "unreachable", "error")


def next_scheduled_audit(*, now: datetime | None = None) -> datetime | None:
    """When the monthly audit runs next (``CMDB_AUDIT_CRONTAB`` in the portal's time zone).

    Celery, unlike cron (which runs when either matches), requires both day-of-month and day-of-week
    to match when both are restricted; the search walks days,
    then the crontab's hours and minutes, so it costs at most a few hundred set lookups.
    """
    schedule = crontab(**settings.CMDB_AUDIT_CRONTAB)
    tz = timezone.get_current_timezone()
    local = timezone.localtime(now or timezone.now(), tz)
    day = local.date()
    for _ in range(366 * 5):
        cron_dow = (day.weekday() + 1) % 7  # cron counts from Sunday = 0
        if day.month in schedule.month_of_year and day.day in schedule.day_of_month and cron_dow in schedule.day_of_week:
            for hour in sorted(schedule.hour):
                for minute in sorted(schedule.minute):
                    candidate = timezone.make_aware(datetime(day.year, day.month, day.day, hour, minute), tz)
                    if candidate > local:
                        return candidate
        day += timedelta(days=1)
    return None


def _env_row(name: str) -> dict:
    return {"environment": name, "machines": 0, "statuses": {}, "files": 0, "in_sync": 0, "compliance": None,
            "open_findings": 0, "overdue_checks": 0, "open_changes": 0, "last_audit_at": None, "trend": []}


def status_overview() -> dict:
    """Per environment: machines by status, compliance (files in sync / audited, unreachable, error
    and manual machines apart), open findings, overdue manual checks, open CRs, last audit and the
    compliance trend over the last runs; plus unauthorized commits on main and the last sync."""
    envs: dict[str, dict] = {}
    rows = (MachineStatus.objects.order_by().values("environment", "status")
            .annotate(n=Count("id"), files=Sum("files_total"), good=Sum("files_in_sync"),
                      findings=Sum("open_findings"), last=Max("last_audit_at")))
    for row in rows:
        env = envs.setdefault(row["environment"], _env_row(row["environment"]))
        env["machines"] += row["n"]
        env["statuses"][row["status"]] = row["n"]
        if row["status"] in ("compliant", "drifted"):
            env["files"] += row["files"] or 0
            env["in_sync"] += row["good"] or 0
        env["open_findings"] += row["findings"] or 0
        if row["last"] and (env["last_audit_at"] is None or row["last"] > env["last_audit_at"]):
            env["last_audit_at"] = row["last"]
    today = timezone.localdate()
    overdue = (ManualCheck.objects.filter(state=ManualCheck.State.OPEN, due__lte=today).order_by()
               .values_list("environment").annotate(n=Count("id")))
    for name, n in overdue:
        envs.setdefault(name, _env_row(name))["overdue_checks"] = n
    open_changes = (ImpactedCI.objects.filter(change__state__in=ChangeRequest.OPEN_STATES).exclude(environment="")
                    .order_by().values_list("environment").annotate(n=Count("change", distinct=True)))
    for name, n in open_changes:
        envs.setdefault(name, _env_row(name))["open_changes"] = n
    for name, trend in compliance_trends().items():
        if name in envs:
            envs[name]["trend"] = trend
    for env in envs.values():
        env["compliance"] = percent(env["in_sync"], env["files"])
    statuses: dict[str, int] = defaultdict(int)
    total: dict[str, Any] = {"machines": 0, "files": 0, "in_sync": 0, "open_findings": 0, "overdue_checks": 0}
    for env in envs.values():
        for key in ("machines", "files", "in_sync", "open_findings", "overdue_checks"):
            total[key] += env[key]
        for status, n in env["statuses"].items():
            statuses[status] += n
    # Every field the API serializes (a deferred one would cost a query each), but not the machine list.
    last_run = AuditRun.objects.select_related("requested_by").defer("machines").order_by("-created_at", "-id").first()
    last_sync = SyncRun.objects.order_by("-started_at").only("id", "status", "started_at", "finished_at", "to_sha").first()
    return {
        "environments": [envs[k] for k in sorted(envs)],
        "total": {**total, "statuses": dict(statuses), "compliance": percent(total["in_sync"], total["files"])},
        "open_changes": ChangeRequest.objects.filter(state__in=ChangeRequest.OPEN_STATES).count(),
        "unauthorized_commits": UnauthorizedCommit.objects.filter(status=UnauthorizedCommit.Status.OPEN).count(),
        "last_audit": last_run,
        "last_sync": last_sync,
        "next_audit_at": next_scheduled_audit(),
    }


def compliance_trends(runs: int = TREND_RUNS) -> dict[str, list[dict]]:
    """Compliance per environment over the last ``runs`` finished audits, oldest first, from the
    summaries stored on the runs (one query): ``{env: [{"run", "at", "compliance"}]}``."""
    out: dict[str, list[dict]] = defaultdict(list)
    last = list(AuditRun.objects.filter(state__in=(AuditRun.State.SUCCEEDED, AuditRun.State.INCOMPLETE))
                .order_by("-created_at", "-id").only("id", "created_at", "summary")[:runs])
    for run in reversed(last):
        for name, figures in run.summary.get("environments", {}).items():
            out[name].append({"run": run.pk, "at": run.created_at, "compliance": figures.get("compliance")})
    return dict(sorted(out.items()))


def machine_statuses(*, environment: str = "", status: str = "", q: str = ""):
    """The machine status rows, filtered (a queryset: the caller paginates)."""
    qs = MachineStatus.objects.all()
    if environment:
        qs = qs.filter(environment=environment)
    if status == "problem":
        qs = qs.filter(Q(status__in=PROBLEM_STATUSES) | Q(open_findings__gt=0))
    elif status:
        qs = qs.filter(status=status)
    if q:
        qs = qs.filter(machine_path__icontains=q)
    return qs.order_by("machine_path")


def machine_trends(machine_paths: list[str], runs: int = TREND_RUNS) -> dict[str, list[float | None]]:
    """Compliance of each machine over its last ``runs`` results, oldest first (one query)."""
    if not machine_paths:
        return {}
    since = AuditRun.objects.order_by("-created_at").values_list("created_at", flat=True)[runs - 1:runs].first()
    qs = MachineResult.objects.filter(machine_path__in=machine_paths)
    if since is not None:
        qs = qs.filter(run__created_at__gte=since)
    out: dict[str, list[float | None]] = defaultdict(list)
    for path, value in qs.order_by("machine_path", "finished_at").values_list("machine_path", "compliance"):
        out[path].append(value)
    return {p: v[-runs:] for p, v in out.items()}


def overdue_checks():
    return ManualCheck.objects.filter(state=ManualCheck.State.OPEN, due__lte=timezone.localdate())


def findings(*, state: str = "", environment: str = "", kind: str = "", machine: str = "", application: str = "",
             run: int | None = None, history: bool = False):
    """Findings filtered the way the list page and the API offer: by default those of each machine's
    latest audit (what is true now); ``run`` or ``history`` for older ones."""
    qs = Finding.objects.select_related("run", "change", "handled_by")
    if run is None and not history:
        qs = qs.filter(result__in=MachineStatus.objects.values("last_result"))
    if state:
        qs = qs.filter(state=state)
    if environment:
        qs = qs.filter(environment=environment)
    if kind:
        qs = qs.filter(kind=kind)
    if machine:
        qs = qs.filter(machine_path=machine)
    if application:
        qs = qs.filter(app_path=application)
    if run is not None:
        qs = qs.filter(run_id=run)
    return qs.order_by("-run_id", "machine_path", "target", "kind")
