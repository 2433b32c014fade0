"""How events reach notifications: receivers of the other apps' signals (those apps never import
this one) turn what happened into :func:`notifications.services.event_raise` calls, each with the
dedupe key that makes it one message per target.

- the change record (``changes.signals.event_recorded``, sent inside the action's transaction):
  CR submitted, approved, rejected, released; deploy finished, failed, halted; verification failed;
  unauthorized commits;
- ``audits.signals.audit_finished``: one digest per run of the drift no earlier audit had seen;
- ``cmdb.signals.sync_failed``: at most one message a day per failing streak;
- the ``notifications.tasks.checks_overdue`` beat task: once a month.
"""

from __future__ import annotations

import logging
from collections import Counter

from django.db.models import Exists, OuterRef
from django.urls import reverse
from django.utils import timezone

from audits.models import AuditRun, Finding, ManualCheck
from changes.models import ChangeEvent, ChangeRequest
from cmdb import services as cmdb_services
from cmdb.gitrepo import GitError
from cmdb.models import SyncRun
from notifications.models import Event
from notifications.services import event_raise

log = logging.getLogger(__name__)

CHANGE_ACTIONS = {
    "submitted": (Event.CR_SUBMITTED, "{ref} awaits approval: {title}"),
    "approved": (Event.CR_APPROVED, "{ref} approved: {title}"),
    "approved-after-the-fact": (Event.CR_APPROVED, "{ref} approved after the fact: {title}"),
    "rejected": (Event.CR_REJECTED, "{ref} rejected: {title}"),
    "merged": (Event.CR_IMPLEMENTED, "{ref} released to main: {title}"),
    "verification-failed": (Event.VERIFICATION_FAILED, "{ref}: verification failed: {title}"),
}


def on_event_recorded(sender, event: ChangeEvent, **kwargs) -> None:
    """A new entry of the change record: the actions people want to hear of become events."""
    try:
        _from_record(event)
    except Exception:  # noqa: BLE001 - a notification must never undo the action being recorded
        log.exception("notification for record event %s (%s) failed", event.pk, event.action)


def _from_record(event: ChangeEvent) -> None:
    action, data = event.action, event.data or {}
    if action == "unauthorized-commit":
        event_raise(event=Event.UNAUTHORIZED_COMMIT, dedupe_key=f"unauthorized:{event.commit_sha}",
                    title=f"Unauthorized commit on main: {event.commit_sha[:10]} {event.message[:200]}",
                    text="It reached main without a released change request: link it to a CR or acknowledge it.",
                    url=reverse("changes:unauthorized_list"), environments=_commit_environments(event.commit_sha),
                    data={"sha": event.commit_sha})
        return
    change: ChangeRequest | None = event.change
    if change is None:
        return
    ref, common = change.reference, {"change": change.pk, "state": change.state, "branch": change.branch}
    if action in CHANGE_ACTIONS:
        kind, title = CHANGE_ACTIONS[action]
        key = (f"{kind}:{change.pk}:{data.get('audit')}" if kind == Event.VERIFICATION_FAILED
               else f"{kind}:{change.pk}:{event.pk}")
        text = event.message
        if kind == Event.CR_SUBMITTED:
            text = (f"{change.requester} submitted {ref} ({change.type}, risk {change.risk}); "
                    f"it needs {change.required_approvals} approval(s).")
        event_raise(event=kind, dedupe_key=key, title=title.format(ref=ref, title=change.title), text=text,
                    url=change.get_absolute_url(), environments=change.environments(),
                    data={**common, "action": action, "actor": event.actor.get_username() if event.actor else None})
    elif action in ("deploy-finished", "deploy-halted", "deploy-interrupted"):
        job = data.get("job")
        if action == "deploy-finished":
            kind = Event.DEPLOY_FAILED if data.get("state") == "failed" else Event.DEPLOY_FINISHED
        else:
            kind = Event.DEPLOY_HALTED
        event_raise(event=kind, dedupe_key=f"deploy:{job}", title=f"{ref}: deploy {job} {kind.label.split()[-1]}",
                    text=event.message, url=reverse("jobs:job_detail", kwargs={"pk": job}) if job else "",
                    environments=change.environments(), data={**common, "job": job, "action": action})


def _commit_environments(sha: str) -> list[str]:
    """The environments a commit touched (its first parent to it); none when Git cannot say."""
    try:
        repo = cmdb_services.get_repo()
        paths = [c.path for c in repo.changed_paths(f"{sha}^", sha)]
    except GitError:
        return []
    return sorted({p.split("/", 1)[0] for p in paths if "/" in p and not p.startswith((".", "_"))})


def on_audit_finished(sender, run_id: int, **kwargs) -> None:
    try:
        raise_audit_drift(run_id)
    except Exception:  # noqa: BLE001 - never break the audit's end
        log.exception("notification for audit %s failed", run_id)


def raise_audit_drift(run_id: int) -> None:
    """One digest per run: new drift (never seen by an earlier audit) counted per environment."""
    run = AuditRun.objects.filter(pk=run_id).first()
    if run is None or run.trigger == AuditRun.Trigger.VERIFICATION:
        return  # a verification's verdict goes to its change request (verification failed)
    seen_before = Finding.objects.filter(fingerprint=OuterRef("fingerprint"), id__lt=OuterRef("id")).exclude(
        run__trigger=AuditRun.Trigger.VERIFICATION)
    new = Finding.objects.filter(run=run).annotate(old=Exists(seen_before)).filter(old=False)
    counts = Counter(new.values_list("environment", flat=True))
    if not counts:
        return
    lines = [f"{env}: {n} new finding(s)" for env, n in sorted(counts.items())]
    event_raise(event=Event.AUDIT_DRIFT, dedupe_key=f"audit-drift:{run.pk}",
                title=f"Audit #{run.pk} of {run.scope_label}: {sum(counts.values())} new drift finding(s)",
                text="\n".join(lines), url=run.get_absolute_url(), environments=list(counts),
                data={"audit": run.pk, "new_findings": dict(sorted(counts.items())),
                      "findings_url": reverse("audits:finding_list") + f"?run={run.pk}"})


def on_sync_failed(sender, run_id: int, error: str, **kwargs) -> None:
    try:
        raise_sync_failing(run_id, error)
    except Exception:  # noqa: BLE001 - never hide the sync's own error
        log.exception("notification for failed sync %s failed", run_id)


def raise_sync_failing(run_id: int, error: str) -> None:
    """Once a day per failing streak: a new streak (after a success) is news again."""
    last_ok = SyncRun.objects.filter(status=SyncRun.Status.SUCCEEDED).order_by("-started_at", "-id").first()
    streak = SyncRun.objects.filter(status=SyncRun.Status.FAILED)
    if last_ok is not None:
        streak = streak.filter(id__gt=last_ok.pk)
    first = streak.order_by("id").first()
    start = first.pk if first else run_id
    day = timezone.localdate().isoformat()
    event_raise(event=Event.SYNC_FAILING, dedupe_key=f"sync-failing:{start}:{day}",
                title="The portal cannot sync the configuration repository", text=error[:2000],
                url=reverse("cmdb:syncrun_list"), data={"sync_run": run_id, "failing_since": start})


def raise_checks_overdue() -> int:
    """Open manual checks past their due date, per environment; raised once per month."""
    today = timezone.localdate()
    overdue = Counter(ManualCheck.objects.filter(state=ManualCheck.State.OPEN, due__lte=today)
                      .values_list("environment", flat=True))
    if not overdue:
        return 0
    month = today.strftime("%Y-%m")
    event_raise(event=Event.CHECKS_OVERDUE, dedupe_key=f"checks-overdue:{month}",
                title=f"{sum(overdue.values())} manual check(s) overdue",
                text="\n".join(f"{env}: {n}" for env, n in sorted(overdue.items())),
                url=reverse("audits:check_list"), environments=list(overdue),
                data={"overdue": dict(sorted(overdue.items())), "month": month})
    return sum(overdue.values())
