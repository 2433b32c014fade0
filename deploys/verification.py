"""Verification: did the release land? A targeted audit of the machines a change request impacts.

It starts by itself when a deploy ends, or when a change is released to machines the portal does not
deploy to. When the audit ends, the change request's verification is ``passed`` (every file the change
touches is in sync on every machine looked at, and every machine configured by hand was checked by a
person as matching), ``failed`` (with the findings) or still ``pending`` while manual checks wait.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction

from audits import services as audit_services
from audits.models import AuditRun, Finding, MachineResult, ManualCheck
from changes import verification as change_verification
from changes.models import ChangeRequest
from cmdb import services as cmdb_services
from cmdb.gitrepo import GitError
from fleet import planner
from fleet.declared import declared_configuration
from portal.errors import ServiceError

log = logging.getLogger(__name__)


def touched_targets(change: ChangeRequest) -> dict[str, set[str]]:
    """Per machine, the target paths whose declaration the release changes (added, changed, removed)."""
    if not change.merged_sha or not change.released_from:
        return {}
    machines = change.machines()
    try:
        repo = cmdb_services.repo_with(change.merged_sha, change.released_from)  # this worker host's clone
        new = declared_configuration(repo, change.merged_sha, machines=machines,
                                     local_root_base=settings.CMDB_LOCAL_ROOT_BASE)
        old = declared_configuration(repo, change.released_from, machines=machines,
                                     local_root_base=settings.CMDB_LOCAL_ROOT_BASE)
    except GitError:
        return {}
    out: dict[str, set[str]] = {}
    for machine in machines:
        a, b = new.get(machine), old.get(machine)
        files_a, files_b = (a.files if a else {}), (b.files if b else {})
        out[machine] = {t for t in set(files_a) | set(files_b)
                        if planner.declared_state(files_a.get(t)) != planner.declared_state(files_b.get(t))}
    return out


def verification_start(*, change: ChangeRequest, machines: list[str], why: str) -> None:
    """Mark the verification pending and queue its audit (nothing to look at: passed at once)."""
    label = f"verification of {change.reference} ({why})"
    with transaction.atomic():
        if not machines:
            change_verification.change_set_verification(change=change, state="passed",
                                                    note="no machine needs a deploy for this change")
            return
        try:
            run = audit_services.audit_verification(machines=machines, label=label, change=change)
        except ServiceError as exc:  # e.g. main unreadable: say so rather than stay pending forever
            change_verification.change_set_verification(change=change, state="failed", note=str(exc))
            return
        change_verification.change_set_verification(change=change, state="pending", audit=run.pk)


def verification_finish(*, run_id: int) -> None:
    """Judge a finished verification audit for its change request."""
    run = AuditRun.objects.filter(pk=run_id, trigger=AuditRun.Trigger.VERIFICATION).first()
    change = ChangeRequest.objects.filter(verification__audit=run_id).first() if run else None
    if run is None or change is None:
        return
    touched = touched_targets(change)
    failures, manual = [], []
    results = {r.machine_path: r for r in MachineResult.objects.filter(run=run)}
    for machine in run.machines:
        result = results.get(machine)
        if result is None:
            failures.append(f"{machine}: not audited ({run.state})")
        elif result.status == MachineResult.Status.MANUAL:
            manual.append(machine)
        elif result.status in (MachineResult.Status.UNREACHABLE, MachineResult.Status.ERROR):
            failures.append(f"{machine}: {result.status}: {result.reason.splitlines()[0] if result.reason else ''}")
    for finding in Finding.objects.filter(run=run).only("machine_path", "target", "kind"):
        if finding.target in touched.get(finding.machine_path, set()):
            failures.append(f"{finding.machine_path}:{finding.target}: {finding.kind}")
    # Machines configured by hand: the run's manual checks, ticked by a person, say whether it landed.
    checks = dict(ManualCheck.objects.filter(run=run, machine_path__in=manual).values_list("machine_path", "state"))
    failures += [f"{m}: checked by hand: discrepancy" for m in manual if checks.get(m) == ManualCheck.State.DISCREPANCY]
    to_tick = [m for m in manual if checks.get(m, ManualCheck.State.OPEN) == ManualCheck.State.OPEN]
    state = "failed" if failures else "pending" if to_tick else "passed"
    note = (f"{len(failures)} problem(s)" if failures else "every file the change touches is in sync")
    if to_tick:
        note += f"; waiting for the manual check of {len(to_tick)} machine(s) configured by hand"
    change_verification.change_set_verification(change=change, state=state, audit=run.pk, findings=failures,
                                                manual=to_tick, note=note)


def on_audit_finished(sender, run_id: int, **kwargs) -> None:
    try:
        verification_finish(run_id=run_id)
    except Exception:  # a failed judgement must never break the audit that triggered it
        log.exception("verification of audit %s failed", run_id)


def on_manual_check_recorded(sender, run_id: int, **kwargs) -> None:
    """A person ticked a manual check: a verification waiting for it is judged again."""
    on_audit_finished(sender, run_id=run_id)


def on_change_released(sender, change_id: int, **kwargs) -> None:
    """Released to machines the portal does not deploy to: verify now (after the sync of the release)."""
    from deploys.rollout import deploy_enabled

    change = ChangeRequest.objects.filter(pk=change_id).first()
    if change is None:
        return
    machines = change.machines()
    if any(deploy_enabled(m) for m in machines):
        return  # the deploy verifies when it ends
    try:
        verification_start(change=change, machines=machines, why="released, not deployed by the portal")
    except Exception:
        log.exception("verification of %s could not start", change.reference)
