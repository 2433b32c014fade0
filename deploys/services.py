"""Dry-run jobs: what deploying a revision would do on the machines, computed without touching them.

Every function is keyword-only and is the one place its action happens (views, the API and the
Celery tasks call these). Starting a job writes its row (and a record event for a change request)
in one transaction; the work is queued with ``transaction.on_commit`` so that a worker never sees a
job that was rolled back. Machines are looked at through :func:`fleet.look.look_at_machines`, the
loop audits use too; a dry run never writes to a machine.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from changes import services as change_services
from changes.models import ChangeRequest
from cmdb import services as cmdb_services
from cmdb.gitrepo import ConfigRepo, GitError, UnknownRevision
from cmdb.indexer import secret_patterns
from deploys import permissions
from deploys.models import Job, JobLogLine, MachinePlan
from fleet import apply, look, planner
from fleet.declared import declared_configuration
from portal.errors import ServiceError

log = logging.getLogger(__name__)

State = Job.State
Status = MachinePlan.Status


class DeployError(ServiceError):
    """Base of release errors; ``str()`` is the message shown to users."""


class DeployForbidden(DeployError):
    status = 403


class DeployConflict(DeployError):
    """The job or change request is not in a state that allows the action."""

    status = 409


class BadRevision(DeployError):
    """Not a revision, machine path or branch the repository knows."""


# A change request in these states is finished: nothing of it will be deployed, so a dry run would answer
# nothing anyone will act on (the revert of a release is a change request of its own, with its own dry runs).
DRY_RUN_FINISHED_STATES = (ChangeRequest.State.REJECTED, ChangeRequest.State.WITHDRAWN,
                           ChangeRequest.State.VERIFIED, ChangeRequest.State.CLOSED)


# --- helpers -------------------------------------------------------------------------------------------
def _log(job_id: int, message: str, level: str = "info") -> None:
    JobLogLine.objects.create(job_id=job_id, level=level, message=message)


def _event(change: ChangeRequest | None, actor, action: str, message: str, **data) -> None:
    if change is not None:
        change_services.record_event(change=change, actor=actor, action=action, message=message, **data)


def _resolve(repo: ConfigRepo, rev: str) -> str:
    """The commit ``rev`` names: a sha, tag, the clone's branch, or a branch on origin (fetched once)."""
    for attempt in range(2):
        try:
            return repo.resolve(rev)
        except UnknownRevision:
            pass
        except GitError as exc:
            raise BadRevision(str(exc)) from exc
        if attempt == 0:
            try:
                repo.fetch(settings.CMDB_BRANCH)
            except GitError:
                break
    raise BadRevision(f"Unknown revision {rev[:80]!r}.")


# --- starting and cancelling ---------------------------------------------------------------------------
def dryrun_start(*, acting_user, change: ChangeRequest | None = None, revision: str | None = None,
                 machines: list[str] | None = None) -> Job:
    """Queue a dry run of a change request's branch head, or of any revision (sha, tag, branch)."""
    if not permissions.can_dry_run(acting_user, change):
        raise DeployForbidden(permissions.DRY_RUN_DENIAL)
    if change is None and not revision:
        raise BadRevision("A dry run needs a change request or a revision.")
    if change is not None and change.state in DRY_RUN_FINISHED_STATES:
        raise DeployConflict(f"{change.reference} is {change.state}: it will not be deployed, so there is nothing "
                             "to dry-run (a dry run of any revision stays possible: POST /api/dry-runs/).")
    repo = cmdb_services.get_repo()
    main = cmdb_services.main_sha(repo)
    if change is not None and change.merged_sha and not revision:
        # Released: plan the release itself against main before it (what a deploy applies).
        sha, label, main = change.merged_sha, f"release of {change.reference}", change.released_from or main
    elif change is not None:
        if change.branch_missing:
            raise BadRevision(f"The branch {change.branch!r} is gone from origin.")
        sha = change.head_sha or _resolve(repo, change.branch)
        label = revision or change.branch
        if revision:
            sha = _resolve(repo, revision)
    else:
        assert revision is not None
        sha, label = _resolve(repo, revision), revision
    if machines is not None:
        wanted = sorted({m.strip().strip("/") for m in machines if m and m.strip().strip("/")})
        bad = [m for m in wanted if m.count("/") != 1]
        if bad:
            raise BadRevision(f"Not a machine path (environment/machine): {bad[0]!r}.")
    elif change is not None:
        if change.documentation_only:
            raise DeployConflict(f"{change.reference} is documentation only: no machine needs a deploy or a dry run.")
        wanted = change.machines()
    else:
        try:
            wanted = sorted(declared_configuration(repo, sha, local_root_base=settings.CMDB_LOCAL_ROOT_BASE))
        except GitError as exc:
            raise DeployConflict(f"Cannot read the revision: {exc}") from exc
    with transaction.atomic():
        job = Job.objects.create(
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
    from deploys import tasks

    tasks.dryrun_dispatch.delay(job_id)


def dryrun_cancel(*, job: Job, acting_user) -> Job:
    """Stop a queued or running job: batches not started yet do nothing; running ones are ignored."""
    if not permissions.can_cancel(acting_user, job):
        raise DeployForbidden("Only the requester of a dry run, approvers and staff may cancel it.")
    with transaction.atomic():
        locked = Job.objects.select_for_update().get(pk=job.pk)
        if locked.is_finished:
            raise DeployConflict(f"Cannot cancel a dry run that is {locked.state}.")
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
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.state != State.QUEUED:
            return []
        job.state = State.RUNNING
        job.started_at = job.progress_at = timezone.now()
        job.save(update_fields=["state", "started_at", "progress_at"])
        _log(job.pk, "Started.")
        if not job.machines:
            _finish(job.pk)
            return []
        return look.batches(list(job.machines), settings.CMDB_DRY_RUN_BATCH)


class _JobClosed(Exception):
    """The job finished while a batch was storing a plan: the plan is rolled back."""


def _finish(job_id: int) -> None:
    done = Job.objects.filter(pk=job_id, state=State.RUNNING, machines_done__gte=F("machines_total")).update(
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
            counted = Job.objects.filter(pk=job_id, state=State.RUNNING).update(
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
    return Job.objects.filter(pk=job_id, state=State.RUNNING).exists()


def dryrun_run_batch(*, job_id: int, machine_paths: list[str]) -> None:
    """Look at a batch of machines and store each one's plan. Never writes to a machine."""
    job = Job.objects.filter(pk=job_id).first()
    if job is None or job.state != State.RUNNING:
        return
    todo = [m for m in machine_paths
            if not MachinePlan.objects.filter(job_id=job_id, machine_path=m).exists()]
    if not todo:
        _finish(job_id)
        return
    try:
        repo = cmdb_services.repo_with(job.revision, job.baseline_sha or "")  # fetched when this host lacks them
        patterns = secret_patterns(repo, job.revision)
    except GitError as exc:
        for machine in todo:
            _save_plan(job_id, machine, Status.ERROR, reason=f"Cannot read the repository: {exc}")
        return

    def proceed(names: list[str]) -> bool:
        if not _is_active(job_id):
            return False
        _log(job_id, f"Looking at {len(names)} machine(s): {', '.join(names)}.")
        return True

    looks = look.iter_looks(repo, job.revision, todo, baseline=job.baseline_sha, secret_patterns=patterns,
                            local_root_base=settings.CMDB_LOCAL_ROOT_BASE,
                            ssh_settings=look.ssh_settings_from(settings), proceed=proceed)
    # Plans are stored as their machines answer, so the job page shows the first machine while the rest
    # of the batch is still being looked at: the first at once, then what answered in the last
    # quarter-second in one transaction (a commit per machine: 100 local machines in 1.42 s, so 0.72 s).
    pending: list[look.MachineLook] = []
    stored_at: float | None = None
    for seen in looks:
        pending.append(seen)
        if stored_at is None or time.monotonic() - stored_at >= _STORE_EVERY_S:
            _save_looks(job_id, pending)
            pending, stored_at = [], time.monotonic()
    _save_looks(job_id, pending)


_STORE_EVERY_S = 0.25


def _save_looks(job_id: int, looks: list[look.MachineLook]) -> None:
    with transaction.atomic():  # each plan a savepoint of its own: a duplicate skips that machine only
        for seen in looks:
            if seen.status == look.PLANNED:
                _save_plan(job_id, seen.machine, Status.PLANNED, items=[a.to_dict() for a in seen.actions],
                           reload=seen.reload)
            elif seen.status == look.MANUAL and seen.declaration is not None:
                items = [{"target": f.target, "action": "documented", "app_path": f.app_path, "secret": f.secret}
                         for f in seen.declaration.files.values()]
                _save_plan(job_id, seen.machine, Status.MANUAL, reason=seen.reason, items=items)
            else:
                _save_plan(job_id, seen.machine, seen.status, reason=seen.reason)


def dryrun_fail_machines(*, job_id: int, machine_paths: list[str], reason: str) -> None:
    """Give the machines of a batch that have no plan yet an error plan (e.g. the batch timed out)."""
    for machine in machine_paths:
        if not MachinePlan.objects.filter(job_id=job_id, machine_path=machine).exists():
            _save_plan(job_id, machine, Status.ERROR, reason=reason)


def _cut_short(job: Job, now) -> list[str]:
    """The machines of a dead deploy that were being written when its worker died: no result stored,
    but their backup is complete (it is made before the first write). Each gets an ``interrupted``
    row, so that they are not reported untouched and a restore puts their files back."""
    cut = [m for m in job.machines if not job.plans.filter(machine_path=m).exists()
           and (job.backup_dir(m) / apply.MANIFEST).is_file()]
    for machine in cut:
        MachinePlan.objects.create(job=job, machine_path=machine, status=Status.INTERRUPTED, finished_at=now,
                                   reason=f"the worker stopped while this machine was being deployed: each file is "
                                          f"the old or the new one, whole; the backup is kept in "
                                          f"{job.backup_dir(machine)}")
    return cut


def dryrun_reap_stale() -> int:
    """Close jobs that stopped making progress: no plan stored for longer than twice a batch's time
    limit (a lost batch is redelivered well within that). What was planned is kept; the machines
    without a plan are named. A job still storing plans is never reaped, however long it runs."""
    now = timezone.now()
    stale: list[tuple[int, timedelta]] = []
    # A deploy batch is never redelivered, so a lost one is known after its own time limit.
    for kinds, limit in ((Job.Kind.DRY_RUN,), timedelta(seconds=2 * settings.CMDB_DRY_RUN_TIME_LIMIT)), \
                        ((Job.Kind.DEPLOY, Job.Kind.RESTORE), timedelta(seconds=settings.CMDB_DEPLOY_TIME_LIMIT + 60)):
        jobs = Job.objects.filter(kind__in=kinds)
        stale += [(pk, limit) for pk in jobs.filter(state=State.RUNNING, progress_at__lt=now - limit)
                  .values_list("pk", flat=True)]
        stale += [(pk, limit) for pk in jobs.filter(state=State.QUEUED, created_at__lt=now - 12 * limit)
                  .values_list("pk", flat=True)]
    reaped = 0
    for pk, limit in stale:
        with transaction.atomic():
            job = (Job.objects.select_for_update(of=("self",)).select_related("change")
                   .filter(pk=pk, state__in=(State.RUNNING, State.QUEUED)).first())
            if job is None:
                continue
            planned = set(job.plans.values_list("machine_path", flat=True))
            job.machines_missing = [m for m in job.machines if m not in planned]
            cut = _cut_short(job, now) if job.kind == Job.Kind.DEPLOY else []
            job.machines_missing = [m for m in job.machines_missing if m not in cut]
            if job.writes:
                job.state = State.INTERRUPTED
                job.error = (f"Interrupted: no progress for {int(limit.total_seconds())} s; {len(planned)} machine(s) "
                             f"done, " + (f"{len(cut)} cut short while being written ({', '.join(cut)}: each file "
                                         "old or new, whole; a restore puts them back), " if cut else "")
                             + f"{len(job.machines_missing)} not touched; backups kept in "
                             f"{settings.CMDB_DEPLOY_BACKUP_DIR}/{pk}.")
            else:
                job.state = State.INCOMPLETE
                job.error = (f"Interrupted: no progress for {int(limit.total_seconds())} s; "
                             f"{len(job.machines_missing)} machine(s) without a plan.")
            job.finished_at = now
            job.machines_done += len(cut)
            job.save(update_fields=["state", "finished_at", "error", "machines_missing", "machines_done"])
            reaped += 1
            _log(pk, job.error + " " + ", ".join(job.machines_missing[:50]), "error")
            if job.writes:
                _event(job.change, None, f"{job.kind}-interrupted", job.error, job=pk, untouched=job.machines_missing)
    return reaped
