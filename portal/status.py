"""The status verdict: "does everything still work?" answered per environment and overall, with reasons.

Read-only. It composes the apps (the audit figures of :func:`audits.queries.status_overview`, release
jobs, change requests, sync runs), which is why it lives in the composition root. Every reason has a
severity, an environment (None for the whole portal), a short text with its count and the URL of
the list that shows it. Severity rules (README, "Audits and status accounting"):

- failing: machines unreachable or in error at their last audit; a deploy failed, halted or
  interrupted and not followed by a successful deploy or restore of its change request (while the
  request is implemented or verified); a release whose verification failed; the last sync failed.
- attention: open findings (drift not handled, manual-check discrepancies); overdue manual checks;
  released change requests not deployed, or whose verification is missing or pending, after
  ``CMDB_STATUS_RELEASE_GRACE``; unauthorized commits on main; no sync for ``CMDB_STATUS_SYNC_STALE``;
  no full audit finished by the scheduled time plus ``CMDB_STATUS_AUDIT_GRACE``.

An environment's verdict is the worst of its own reasons; the overall verdict the worst of all.
The cost is a fixed number of queries, whatever the number of machines, runs, jobs or requests.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Exists, Max, OuterRef, Subquery
from django.urls import reverse
from django.utils import timezone

from audits.models import AuditRun
from audits.queries import next_scheduled_audit, status_overview
from changes.models import ChangeEvent, ChangeRequest
from cmdb import layout
from cmdb.models import ConfigItem, SyncRun
from deploys.models import Job
from deploys.rollout import deploy_enabled
from portal.listing import with_query

OK, ATTENTION, FAILING = "ok", "attention", "failing"
RANK = {OK: 0, ATTENTION: 1, FAILING: 2}
LABELS = {OK: "All good", ATTENTION: "Needs attention", FAILING: "Failing"}
RELEASED = (ChangeRequest.State.IMPLEMENTED, ChangeRequest.State.VERIFIED)
BROKEN_DEPLOYS = (Job.State.FAILED, Job.State.HALTED, Job.State.INTERRUPTED)
HEALED_BY = (Job.Kind.DEPLOY, Job.Kind.RESTORE)


@dataclass
class Reason:
    code: str
    severity: str
    environment: str | None
    count: int
    text: str
    url: str


def worst(severities) -> str:
    return max(severities, key=RANK.__getitem__, default=OK)


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _ago(delta: timedelta) -> str:
    hours = int(delta.total_seconds() // 3600)
    if hours >= 48:
        return _plural(hours // 24, "day")
    if hours >= 1:
        return _plural(hours, "hour")
    return _plural(max(int(delta.total_seconds() // 60), 1), "minute")


def status_verdict(*, environments: list[str] | None = None, now: datetime | None = None) -> dict[str, Any]:
    """The figures of :func:`status_overview` plus ``verdict``, ``reasons`` and, per environment,
    ``verdict`` and ``reasons``. ``environments``: the indexed environment names when the caller has
    them already (else one query reads them), so every environment gets a verdict, audited or not."""
    now = now or timezone.now()
    overview = status_overview()
    if environments is None:
        environments = list(ConfigItem.objects.filter(kind=layout.ENVIRONMENT).values_list("name", flat=True))
    reasons: list[Reason] = []
    reasons += _audit_reasons(overview)
    reasons += _release_reasons(now)
    reasons += _global_reasons(overview, now)

    rows = {e["environment"]: e for e in overview["environments"]}
    for name in {*environments, *(r.environment for r in reasons if r.environment)} - set(rows):
        rows[name] = {"environment": name, "machines": 0, "statuses": {}, "files": 0, "in_sync": 0,
                      "compliance": None, "open_findings": 0, "overdue_checks": 0, "open_changes": 0,
                      "last_audit_at": None, "trend": []}
    by_env: dict[str | None, list[Reason]] = defaultdict(list)
    for reason in reasons:
        by_env[reason.environment].append(reason)
    for name, row in rows.items():
        mine = sorted(by_env.get(name, []), key=lambda r: -RANK[r.severity])
        row["verdict"] = worst(r.severity for r in mine)
        row["verdict_label"] = LABELS[row["verdict"]]
        row["reasons"] = [asdict(r) for r in mine]
    verdict = worst(r.severity for r in reasons)
    ordered = sorted(reasons, key=lambda r: (-RANK[r.severity], r.environment is not None, r.environment or ""))
    return {
        **overview,
        "environments": [rows[k] for k in sorted(rows)],
        "verdict": verdict,
        "verdict_label": LABELS[verdict],
        "reasons": [asdict(r) for r in ordered],
        "global_reasons": [asdict(r) for r in ordered if r.environment is None],
    }


def _audit_reasons(overview: dict) -> list[Reason]:
    """Machines unreachable or in error, open findings and overdue manual checks, per environment."""
    machines_url = reverse("audits:machinestatus_list")
    out = []
    for env in overview["environments"]:
        name = env["environment"]
        for status, text in (("unreachable", "unreachable"), ("error", "in error")):
            n = env["statuses"].get(status, 0)
            if n:
                out.append(Reason(f"machines-{status}", FAILING, name, n, f"{_plural(n, 'machine')} {text}",
                                  with_query(machines_url, environment=name, status=status)))
        if env["open_findings"]:
            n = env["open_findings"]
            out.append(Reason("open-findings", ATTENTION, name, n, f"{_plural(n, 'open finding')} (drift or a "
                              "manual-check discrepancy)",
                              with_query(reverse("audits:finding_list"), state="open", environment=name)))
        if env["overdue_checks"]:
            n = env["overdue_checks"]
            out.append(Reason("checks-overdue", ATTENTION, name, n, f"{_plural(n, 'manual check')} overdue",
                              with_query(reverse("audits:check_list"), overdue="1", environment=name)))
    return out


def _release_reasons(now: datetime) -> list[Reason]:
    """Released change requests (implemented or verified) whose latest broken deploy was not followed
    by a successful deploy or restore, that were never deployed where the portal deploys, or whose
    verification failed, is missing or waits too long. One query, whatever the number of requests."""
    grace = timedelta(seconds=settings.CMDB_STATUS_RELEASE_GRACE)
    released_at = (ChangeEvent.objects.filter(change=OuterRef("pk"), action="merged").order_by()
                   .values("change").annotate(at=Max("at")).values("at"))
    healed = Job.objects.filter(change=OuterRef("change"), kind__in=HEALED_BY, state=Job.State.SUCCEEDED,
                                created_at__gt=OuterRef("created_at"))
    broken = (Job.objects.filter(change=OuterRef("pk"), kind=Job.Kind.DEPLOY, state__in=BROKEN_DEPLOYS)
              .exclude(Exists(healed)).order_by("-created_at", "-id"))
    changes = (ChangeRequest.objects.filter(state__in=RELEASED)
               .annotate(released_at=Subquery(released_at),
                         deployed=Exists(Job.objects.filter(change=OuterRef("pk"), kind=Job.Kind.DEPLOY)),
                         broken_job=Subquery(broken.values("id")[:1]), broken_state=Subquery(broken.values("state")[:1]))
               .only("id", "state", "verification", "impact", "updated_at"))
    found: dict[tuple[str, str], list[str]] = defaultdict(list)  # (code, environment) -> URLs of the items
    for change in changes:
        machines = change.machines()
        # A documentation-only release still belongs to the environments whose READMEs it changed.
        environments = sorted({m.split("/", 1)[0] for m in machines}) or change.environments()
        if change.broken_job:
            for env in environments:
                found[(f"deploy-{change.broken_state}", env)].append(
                    reverse("jobs:job_detail", kwargs={"pk": change.broken_job}))
        problem = _release_problem(change, machines, now, grace)
        if problem:
            for env in environments:
                found[(problem, env)].append(change.get_absolute_url())
    return [_release_reason(code, env, urls) for (code, env), urls in sorted(found.items())]


def _release_problem(change: ChangeRequest, machines: list[str], now: datetime, grace: timedelta) -> str:
    verification = change.verification or {}
    state = verification.get("state")
    deployable = any(deploy_enabled(m) for m in machines)
    deployed = getattr(change, "deployed", False)  # annotated by the caller's query
    if change.state == ChangeRequest.State.VERIFIED:
        # A person verified it (a passed verification or an override with a reason); only a release
        # the portal should have deployed and never did is still worth saying.
        return "not-deployed" if deployable and not deployed else ""
    if state == "failed":
        return "verification-failed"
    released = getattr(change, "released_at", None) or change.updated_at
    if deployable and not deployed:
        return "not-deployed" if now - released > grace else ""
    if state == "pending":
        since = _parse(verification.get("at")) or released
        return "verification-pending" if now - since > grace else ""
    if state != "passed" and now - released > grace:
        return "not-verified"
    return ""


def _parse(value) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except (TypeError, ValueError):
        return None


RELEASE_TEXTS = {
    "deploy-failed": (FAILING, "deploy failed", "deploys failed"),
    "deploy-halted": (FAILING, "deploy halted", "deploys halted"),
    "deploy-interrupted": (FAILING, "deploy interrupted", "deploys interrupted"),
    "verification-failed": (FAILING, "release failed its verification", "releases failed their verification"),
    "not-deployed": (ATTENTION, "released change request not deployed", "released change requests not deployed"),
    "verification-pending": (ATTENTION, "release waiting for its verification", "releases waiting for their verification"),
    "not-verified": (ATTENTION, "release without a verification", "releases without a verification"),
}


def _release_reason(code: str, env: str, urls: list[str]) -> Reason:
    severity, one, many = RELEASE_TEXTS[code]
    n = len(urls)
    if n == 1:
        url = urls[0]
    elif code.startswith("deploy-"):
        url = with_query(reverse("jobs:job_list"), kind="deploy", state=code.removeprefix("deploy-"), environment=env)
    else:
        url = with_query(reverse("changes:change_list"), state="implemented", environment=env)
    return Reason(code, severity, env, n, f"{n} {one if n == 1 else many}", url)


def _global_reasons(overview: dict, now: datetime) -> list[Reason]:
    out = []
    n = overview["unauthorized_commits"]
    if n:
        out.append(Reason("unauthorized-commits", ATTENTION, None, n,
                          f"{_plural(n, 'unauthorized commit')} on {settings.CMDB_BRANCH}",
                          reverse("changes:unauthorized_list")))
    runs_url = reverse("cmdb:syncrun_list")
    sync = overview["last_sync"]
    if sync is None:
        out.append(Reason("sync-never", ATTENTION, None, 0, "The repository has never been synced", runs_url))
    elif sync.status == SyncRun.Status.FAILED:
        out.append(Reason("sync-failed", FAILING, None, 1, "The last sync failed", runs_url))
    elif now - sync.started_at > timedelta(seconds=settings.CMDB_STATUS_SYNC_STALE):
        out.append(Reason("sync-stale", ATTENTION, None, 1, f"No sync for {_ago(now - sync.started_at)}", runs_url))
    stale = _audit_staleness(now)
    if stale:
        out.append(Reason("audit-stale", ATTENTION, None, 1, stale, reverse("audits:audit_list")))
    return out


def _audit_staleness(now: datetime) -> str:
    """Why the full audits are late ("" when they are not): none finished yet, or none since the one
    the schedule wanted after the last (``CMDB_AUDIT_CRONTAB``) plus the grace."""
    last = (AuditRun.objects.filter(scope="", state__in=(AuditRun.State.SUCCEEDED, AuditRun.State.INCOMPLETE))
            .exclude(trigger=AuditRun.Trigger.VERIFICATION).order_by("-created_at", "-id")
            .values_list("created_at", flat=True).first())
    if last is None:
        return "No full audit has finished yet"
    due = next_scheduled_audit(now=last)
    if due is not None and now > due + timedelta(seconds=settings.CMDB_STATUS_AUDIT_GRACE):
        return f"No full audit since {timezone.localtime(last):%Y-%m-%d}: one was due {timezone.localtime(due):%Y-%m-%d %H:%M}"
    return ""
