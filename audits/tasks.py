"""Celery tasks of auditing: thin wrappers that take ids and call ``audits.services``."""

from __future__ import annotations

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.utils import timezone

from audits import retention, services
from audits.models import AuditRun, ManualCheck
from portal.tasks import RETRIES, TRANSIENT, retry_later


@shared_task(name="audits.tasks.audit_dispatch", acks_late=True, reject_on_worker_lost=True)
def audit_dispatch(run_id: int) -> int:
    """Mark the run running and queue one batch task per ``CMDB_AUDIT_BATCH`` machines."""
    parts = services.audit_begin(run_id=run_id)
    for machines in parts:
        audit_batch.delay(run_id, machines)
    return len(parts)


@shared_task(
    bind=True,
    name="audits.tasks.audit_batch",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=settings.CMDB_AUDIT_SOFT_TIME_LIMIT,
    time_limit=settings.CMDB_AUDIT_TIME_LIMIT,
    max_retries=RETRIES,
)
def audit_batch(self, run_id: int, machines: list[str]) -> None:
    """Audit a batch of machines (a redelivered or retried batch skips machines already stored)."""
    try:
        services.audit_run_batch(run_id=run_id, machine_paths=machines)
    except TRANSIENT as exc:
        retry_later(self, exc)
    except SoftTimeLimitExceeded:
        services.audit_fail_machines(
            run_id=run_id, machine_paths=machines,
            reason=f"timed out (no answer within {settings.CMDB_AUDIT_SOFT_TIME_LIMIT}s)",
        )


@shared_task(name="audits.tasks.audit_scheduled")
def audit_scheduled() -> int | None:
    """Beat, monthly (``CMDB_AUDIT_CRONTAB``): a full audit."""
    run = services.audit_scheduled()
    return run.pk if run is not None else None


@shared_task(name="audits.tasks.audit_reap")
def audit_reap() -> int:
    """Periodic: close runs whose worker died as incomplete."""
    return services.audit_reap_stale()


# --- the summary mail of a finished run -----------------------------------------------------------
@shared_task(name="audits.tasks.audit_summary_mail", acks_late=True)
def audit_summary_mail(run_id: int) -> None:
    """The summary of a finished run to every active staff member with an address (once per run)."""
    run = AuditRun.objects.get(pk=run_id)
    if run.summary_mailed_at is not None:
        return
    recipients = sorted(set(get_user_model().objects.filter(is_staff=True, is_active=True).exclude(email="")
                            .values_list("email", flat=True)))
    if recipients:
        send_mail(mail_subject(run), mail_body(run), None, recipients, fail_silently=False)
    AuditRun.objects.filter(pk=run_id).update(summary_mailed_at=timezone.now())


def mail_subject(run: AuditRun) -> str:
    s = run.summary
    compliance = "n/a" if s.get("compliance") is None else f"{s['compliance']}%"
    statuses = s.get("statuses", {})
    return (f"[CM portal] Audit #{run.pk} of {run.scope_label} {run.state}: {compliance} compliant, "
            f"{statuses.get('drifted', 0)} drifted, {statuses.get('unreachable', 0)} unreachable")


def mail_body(run: AuditRun) -> str:
    s = run.summary
    lines = [
        f"Audit #{run.pk} of {run.scope_label} ({run.get_trigger_display()}), {run.state}.",
        f"main at {run.main_sha[:10]}; {run.machines_done} of {run.machines_total} machines done.",
        "",
        f"{'environment':<20} {'compliance':>10} {'compliant':>9} {'drifted':>7} {'unreach.':>8} {'error':>5} "
        f"{'manual':>6} {'findings':>8}",
    ]
    for env, e in s.get("environments", {}).items():
        st = e["statuses"]
        comp = "n/a" if e["compliance"] is None else f"{e['compliance']}%"
        lines.append(f"{env[:20]:<20} {comp:>10} {st.get('compliant', 0):>9} {st.get('drifted', 0):>7} "
                     f"{st.get('unreachable', 0):>8} {st.get('error', 0):>5} {st.get('manual', 0):>6} {e['findings']:>8}")
    if run.machines_missing:
        lines += ["", f"Not done ({len(run.machines_missing)}): " + ", ".join(run.machines_missing[:50])]
    open_checks = run.manual_checks.filter(state=ManualCheck.State.OPEN).count()
    if open_checks:
        lines += ["", f"{open_checks} machine(s) configured by hand wait for a manual check this month."]
    lines += ["", f"Details: {settings.CMDB_PUBLIC_URL.rstrip('/')}{run.get_absolute_url()}"]
    return "\n".join(lines) + "\n"


@shared_task(name="audits.tasks.results_prune")
def results_prune() -> dict:
    """Daily: remove old per-machine results as ``CMDB_RETAIN_AUDIT_RESULTS_DAYS`` says (nothing by default)."""
    return retention.results_prune().__dict__
