"""Dry-run jobs: what deploying a revision would do on the machines, computed without touching them.

Every function is keyword-only and is the one place its action happens (views, the API and the
Celery tasks call these). Starting a job writes its row (and a ``ChangeEvent`` for a change request)
in one transaction; the work is queued with ``transaction.on_commit`` so that a worker never sees a
job that was rolled back. Machines are only ever looked at (``cmdb.transport`` reads, never writes).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from changes import permissions, planner
from changes.models import ChangeEvent, ChangeRequest, DryRunJob, JobLogLine, MachinePlan
from changes.services import BadBranch, ChangeConflict, ChangeForbidden, IllegalTransition
from cmdb import services as cmdb_services
from cmdb.declared import MachineDeclaration, declared_configuration
from cmdb.gitrepo import ConfigRepo, GitError, UnknownRevision
from cmdb.indexer import secret_patterns
from cmdb.transport import (
    AuthenticationFailed,
    HostKeyUnknown,
    MachineSnapshot,
    ManualMachine,
    SshSettings,
    Timeouts,
    TransportError,
    Unreachable,
    stat_machines_parallel,
)

log = logging.getLogger(__name__)

State = DryRunJob.State
Status = MachinePlan.Status
MANUAL_REASON = "configured by hand; documented only"


# --- helpers -------------------------------------------------------------------------------------------
def _log(job_id: int, message: str, level: str = "info") -> None:
    JobLogLine.objects.create(job_id=job_id, level=level, message=message)


def _event(change: ChangeRequest | None, actor, action: str, message: str, **data) -> None:
    if change is not None:
        ChangeEvent.objects.create(change=change, actor=actor, action=action, message=message, data=data)


def _resolve(repo: ConfigRepo, rev: str) -> str:
    """The commit ``rev`` names: a sha, tag, the clone's branch, or a branch on origin (fetched once)."""
    for attempt in range(2):
        try:
            return repo.resolve(rev)
        except UnknownRevision:
            pass
        except GitError as exc:
            raise BadBranch(str(exc)) from exc
        if attempt == 0:
            try:
                repo.fetch(settings.CMDB_BRANCH)
            except GitError:
                break
    raise BadBranch(f"Unknown revision {rev[:80]!r}.")


def ssh_settings() -> SshSettings | None:
    """The portal's SSH identity from settings, or None when none is configured."""
    if not settings.CMDB_SSH_KEY or not settings.CMDB_SSH_KNOWN_HOSTS:
        return None
    return SshSettings(
        Path(settings.CMDB_SSH_KEY),
        Path(settings.CMDB_SSH_KNOWN_HOSTS),
        Timeouts(float(settings.CMDB_SSH_CONNECT_TIMEOUT), float(settings.CMDB_SSH_COMMAND_TIMEOUT)),
        settings.CMDB_SSH_USER or None,
    )


def batches(machines: list[str], size: int | None = None) -> list[list[str]]:
    """``machines`` in slices of ``size`` (default ``CMDB_DRY_RUN_BATCH``), one task each."""
    size = max(1, size or settings.CMDB_DRY_RUN_BATCH)
    return [machines[i:i + size] for i in range(0, len(machines), size)]


# --- starting and cancelling ---------------------------------------------------------------------------
def dryrun_start(*, acting_user, change: ChangeRequest | None = None, revision: str | None = None,
                 machines: list[str] | None = None) -> DryRunJob:
    """Queue a dry run of a change request's branch head, or of any revision (sha, tag, branch)."""
    if not permissions.can(acting_user, "dry_run", change):
        raise ChangeForbidden("Only requesters, approvers and staff may start dry runs.")
    if change is None and not revision:
        raise BadBranch("A dry run needs a change request or a revision.")
    repo = cmdb_services.get_repo()
    if change is not None:
        if change.branch_missing:
            raise BadBranch(f"The branch {change.branch!r} is gone from origin.")
        sha = change.head_sha or _resolve(repo, change.branch)
        label = revision or change.branch
        if revision:
            sha = _resolve(repo, revision)
    else:
        assert revision is not None
        sha, label = _resolve(repo, revision), revision
    main = cmdb_services.main_sha(repo)
    if machines is not None:
        wanted = sorted({m.strip().strip("/") for m in machines if m and m.strip().strip("/")})
        bad = [m for m in wanted if m.count("/") != 1]
        if bad:
            raise BadBranch(f"Not a machine path (environment/machine): {bad[0]!r}.")
    elif change is not None:
        wanted = change.machines()
    else:
        try:
            wanted = sorted(declared_configuration(repo, sha, local_root_base=settings.CMDB_LOCAL_ROOT_BASE))
        except GitError as exc:
            raise ChangeConflict(f"Cannot read the revision: {exc}") from exc
    with transaction.atomic():
        job = DryRunJob.objects.create(
            change=change, revision=sha, rev_label=label[:255], requested_by=acting_user,
            for_head_sha=change.head_sha if change is not None else "", baseline_sha=main,
            machines=wanted, machines_total=len(wanted),
        )
        _log(job.pk, f"Dry run of {label} ({sha[:10]}) on {len(wanted)} machine(s) queued by {acting_user.get_username()}.")
        _event(change, acting_user, "dry-run-started", f"Dry run {job.pk} of {sha[:10]} on {len(wanted)} machine(s).",
               job=job.pk, revision=sha)
        job_id = job.pk
        transaction.on_commit(lambda: _enqueue_dispatch(job_id))
    return job


def _enqueue_dispatch(job_id: int) -> None:
    from changes import tasks

    tasks.dryrun_dispatch.delay(job_id)


def dryrun_cancel(*, job: DryRunJob, acting_user) -> DryRunJob:
    """Stop a queued or running job: batches not started yet do nothing; running ones are ignored."""
    if not (acting_user.is_authenticated and (acting_user.is_staff or job.requested_by_id == acting_user.pk
                                              or permissions.is_approver(acting_user))):
        raise ChangeForbidden("Only the requester of a dry run, approvers and staff may cancel it.")
    with transaction.atomic():
        locked = DryRunJob.objects.select_for_update().get(pk=job.pk)
        if locked.is_finished:
            raise IllegalTransition(f"Cannot cancel a dry run that is {locked.state}.")
        locked.state = State.CANCELLED
        locked.finished_at = timezone.now()
        locked.save(update_fields=["state", "finished_at"])
        _log(locked.pk, f"Cancelled by {acting_user.get_username()}.", "warning")
        _event(locked.change, acting_user, "dry-run-cancelled", f"Dry run {locked.pk} cancelled.", job=locked.pk)
    return locked


# --- the work ------------------------------------------------------------------------------------------
def dryrun_begin(*, job_id: int) -> list[list[str]]:
    """Mark a queued job running; the batches of machines to look at ([] when there is nothing to do)."""
    with transaction.atomic():
        job = DryRunJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.state != State.QUEUED:
            return []
        job.state = State.RUNNING
        job.started_at = job.progress_at = timezone.now()
        job.save(update_fields=["state", "started_at", "progress_at"])
        _log(job.pk, "Started.")
        if not job.machines:
            _finish(job.pk)
            return []
        return batches(list(job.machines))


class _JobClosed(Exception):
    """The job finished while a batch was storing a plan: the plan is rolled back."""


def _finish(job_id: int) -> None:
    done = DryRunJob.objects.filter(pk=job_id, state=State.RUNNING, machines_done__gte=F("machines_total")).update(
        state=State.SUCCEEDED, finished_at=timezone.now()
    )
    if done:
        _log(job_id, "Finished.")


def _save_plan(job_id: int, machine_path: str, status: str, *, reason: str = "", items: list | None = None,
               reload: list | None = None) -> bool:
    """Store one machine's plan and count it; False when it was already stored (a redelivered batch) or
    the job is no longer running (cancelled, or closed by the reaper): a finished job is never written."""
    now = timezone.now()
    try:
        with transaction.atomic():
            MachinePlan.objects.create(job_id=job_id, machine_path=machine_path, status=status, reason=reason,
                                       items=items or [], reload=reload or [], finished_at=now)
            counted = DryRunJob.objects.filter(pk=job_id, state=State.RUNNING).update(
                machines_done=F("machines_done") + 1, progress_at=now)
            if not counted:
                raise _JobClosed
            level = "info" if status in (Status.PLANNED, Status.MANUAL) else "warning"
            summary = reason.splitlines()[0] if reason else ""
            if status == Status.PLANNED:
                counts = planner.summarize(items or [])
                summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n and k != "unchanged") or "no changes"
            _log(job_id, f"{machine_path}: {status}" + (f" ({summary})" if summary else ""), level)
    except (IntegrityError, _JobClosed):
        return False
    _finish(job_id)
    return True


def _is_active(job_id: int) -> bool:
    return DryRunJob.objects.filter(pk=job_id, state=State.RUNNING).exists()


def dryrun_run_batch(*, job_id: int, machine_paths: list[str]) -> None:
    """Look at a batch of machines and store each one's plan. Never writes to a machine."""
    job = DryRunJob.objects.filter(pk=job_id).first()
    if job is None or job.state != State.RUNNING:
        return
    todo = [m for m in machine_paths
            if not MachinePlan.objects.filter(job_id=job_id, machine_path=m).exists()]
    if not todo:
        _finish(job_id)
        return
    try:
        repo = cmdb_services.get_repo()
        patterns = secret_patterns(repo, job.revision)
        declared = declared_configuration(repo, job.revision, machines=todo,
                                          local_root_base=settings.CMDB_LOCAL_ROOT_BASE, secret_patterns=patterns)
        baseline: dict[str, MachineDeclaration] = {}
        if job.baseline_sha and job.baseline_sha != job.revision:
            baseline = declared_configuration(repo, job.baseline_sha, machines=todo,
                                              local_root_base=settings.CMDB_LOCAL_ROOT_BASE, secret_patterns=patterns)
    except GitError as exc:
        for machine in todo:
            _save_plan(job_id, machine, Status.ERROR, reason=f"Cannot read the repository: {exc}")
        return

    looked: dict[str, MachineDeclaration] = {}
    for machine in todo:
        decl = declared.get(machine)
        base = baseline.get(machine)
        if decl is None and base is not None:
            decl = MachineDeclaration(machine, access=base.access)  # removed: every file is a deletion
        if decl is None:
            _save_plan(job_id, machine, Status.ERROR, reason="The machine is not in the repository at this revision.")
        elif decl.errors:
            _save_plan(job_id, machine, Status.ERROR, reason="\n".join(str(e) for e in decl.errors))
        elif decl.access.transport == "manual":
            items = [{"target": f.target, "action": "documented", "app_path": f.app_path, "secret": f.secret}
                     for f in decl.files.values()]
            _save_plan(job_id, machine, Status.MANUAL, reason=MANUAL_REASON, items=items)
        else:
            looked[machine] = decl
    if not looked or not _is_active(job_id):
        return

    shas = {f.blob_sha for d in looked.values() for f in d.files.values()}
    blobs = repo.read_blobs(shas) if shas else {}
    declared_bytes = {m: {t: blobs[f.blob_sha] for t, f in d.files.items() if f.blob_sha in blobs}
                      for m, d in looked.items()}
    paths: dict[str, list[str]] = {}
    for m, d in looked.items():
        old = baseline.get(m)
        paths[m] = sorted(set(d.files) | (set(old.files) if old is not None and not old.errors else set()))

    def read(name: str, files: dict) -> list[str]:
        return planner.paths_to_read(looked[name], files, declared_bytes[name])

    _log(job_id, f"Looking at {len(looked)} machine(s): {', '.join(sorted(looked))}.")
    snapshots = stat_machines_parallel(
        {m: d.access for m, d in looked.items()}, paths, ssh_settings=ssh_settings(), read=read,
    )
    for machine, decl in looked.items():
        result = snapshots.get(machine)
        if isinstance(result, ManualMachine):
            _save_plan(job_id, machine, Status.MANUAL, reason=MANUAL_REASON)
        elif isinstance(result, (Unreachable, AuthenticationFailed, HostKeyUnknown)):
            _save_plan(job_id, machine, Status.UNREACHABLE, reason=result.message)
        elif isinstance(result, TransportError):
            _save_plan(job_id, machine, Status.ERROR, reason=result.message)
        elif isinstance(result, MachineSnapshot):
            old = baseline.get(machine)
            old = old if old is not None and not old.errors else None
            actions = planner.plan_machine(decl, old, result.files, declared_bytes[machine], result.contents)
            reload = planner.reload_commands(decl, actions, old)
            _save_plan(job_id, machine, Status.PLANNED, items=[a.to_dict() for a in actions], reload=reload)
        else:  # pragma: no cover - stat_machines_parallel answers for every machine
            _save_plan(job_id, machine, Status.ERROR, reason="No answer for this machine.")


def dryrun_fail_machines(*, job_id: int, machine_paths: list[str], reason: str) -> None:
    """Give the machines of a batch that have no plan yet an error plan (e.g. the batch timed out)."""
    for machine in machine_paths:
        if not MachinePlan.objects.filter(job_id=job_id, machine_path=machine).exists():
            _save_plan(job_id, machine, Status.ERROR, reason=reason)


def dryrun_reap_stale() -> int:
    """Close jobs that stopped making progress: no plan stored for longer than twice a batch's time
    limit (a lost batch is redelivered well within that). What was planned is kept; the machines
    without a plan are named. A job still storing plans is never reaped, however long it runs."""
    limit = timedelta(seconds=2 * settings.CMDB_DRY_RUN_TIME_LIMIT)
    now = timezone.now()
    stale = list(DryRunJob.objects.filter(state=State.RUNNING, progress_at__lt=now - limit).values_list("pk", flat=True))
    stale += list(DryRunJob.objects.filter(state=State.QUEUED, created_at__lt=now - 12 * limit)
                  .values_list("pk", flat=True))
    reaped = 0
    for pk in stale:
        with transaction.atomic():
            job = DryRunJob.objects.select_for_update().filter(pk=pk, state__in=(State.RUNNING, State.QUEUED)).first()
            if job is None:
                continue
            planned = set(job.plans.values_list("machine_path", flat=True))
            job.machines_missing = [m for m in job.machines if m not in planned]
            job.state, job.finished_at = State.INCOMPLETE, now
            job.error = (f"Interrupted: no progress for {int(limit.total_seconds())} s; "
                         f"{len(job.machines_missing)} machine(s) without a plan.")
            job.save(update_fields=["state", "finished_at", "error", "machines_missing"])
            reaped += 1
            _log(pk, job.error + " " + ", ".join(job.machines_missing[:50]), "error")
    return reaped
