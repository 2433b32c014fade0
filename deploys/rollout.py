"""Deploy jobs: apply a released change request's reviewed plan to its machines, batch by batch.

The only workflows that write to machines (through :func:`fleet.apply.apply_machine`). A deploy
applies the plan of a finished dry run of the release, nothing else: the files the change changes
(``origin`` change), conflicting hand edits only when the person confirmed them, never drift. Each
machine's result and its record event are written in one transaction; batches run one after the
other (the first can be a canary) and the rollout halts after ``CMDB_DEPLOY_MAX_FAILURES`` failed
machines. Batch tasks are acknowledged when received, never redelivered: a worker that dies
mid-deploy leaves no half-written file (every write is a rename) and the reaper ends the job
``interrupted`` with what was done and the backups kept.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from changes.models import ApprovalPolicy, ChangeRequest
from cmdb import services as cmdb_services
from cmdb.gitrepo import GitError
from cmdb.indexer import secret_patterns
from deploys import permissions
from deploys.models import Job, MachinePlan
from deploys.services import DeployConflict, DeployForbidden, _event, _log
from fleet import apply, look
from fleet.declared import by_target, declared_configuration
from fleet.manifest import MachineDeclaration
from fleet.planner import CHANGED, FileAction, reload_commands
from fleet.transport import FileWrite, ManualMachine, TransportError, Unreachable, open_machine

log = logging.getLogger(__name__)

State = Job.State
Status = MachinePlan.Status
DEPLOYABLE_STATES = (ChangeRequest.State.IMPLEMENTED, ChangeRequest.State.VERIFIED)


def deploy_enabled(machine_path: str) -> bool:
    """Whether the portal's configuration lets deploys write to this machine's environment."""
    return machine_path.split("/", 1)[0] in settings.CMDB_DEPLOY_ENVIRONMENTS


def latest_plan(change: ChangeRequest) -> Job | None:
    """The newest finished dry run of the change request's release (the plan a deploy applies)."""
    if not change.merged_sha:
        return None
    return (Job.objects.filter(change=change, kind=Job.Kind.DRY_RUN, revision=change.merged_sha,
                               state=State.SUCCEEDED).order_by("-created_at", "-id").first())


def deploy_start(*, acting_user, change: ChangeRequest, plan_job: Job | None = None,
                 confirm_conflicts: bool = False) -> Job:
    """Queue a deploy of a released change request, applying the plan of ``plan_job`` (default: the
    newest dry run of the release)."""
    if not permissions.can_deploy(acting_user):
        raise DeployForbidden("Only approvers and staff may deploy.")
    if change.requester_id == acting_user.pk and not ApprovalPolicy.self_deploy_allowed(change.environments()):
        raise DeployForbidden("The policy of this environment forbids deploying your own change request.")
    if change.state not in DEPLOYABLE_STATES or not change.merged_sha:
        raise DeployConflict(f"Only a released change request can be deployed; {change.reference} is {change.state}.")
    problem = change.release_window_problem()
    if problem and change.type != ChangeRequest.Type.EMERGENCY:
        raise DeployConflict(f"{change.reference} cannot be deployed now: {problem}")
    plan = plan_job or latest_plan(change)
    if plan is None:
        raise DeployConflict("No plan of the release yet: start a dry run and review it first.")
    if plan.change_id != change.pk or plan.kind != Job.Kind.DRY_RUN or plan.state != State.SUCCEEDED:
        raise DeployConflict(f"Job {plan.pk} is not a finished dry run of {change.reference}.")
    if plan.revision != change.merged_sha:
        raise DeployConflict(f"The plan is for {plan.revision[:10]}, the release is {change.merged_sha[:10]}: "
                             "plan the release again.")
    machines = list(plan.plans.exclude(status=Status.ERROR).values_list("machine_path", flat=True))
    if not any(deploy_enabled(m) for m in machines):
        raise DeployConflict("Deploys are not enabled for any of these machines' environments "
                             "(CMDB_DEPLOY_ENVIRONMENTS).")
    try:
        with transaction.atomic():
            job = Job.objects.create(
                kind=Job.Kind.DEPLOY, change=change, plan_job=plan, confirm_conflicts=confirm_conflicts,
                revision=change.merged_sha, baseline_sha=change.released_from, rev_label=f"deploy of {change.reference}",
                requested_by=acting_user, machines=machines, machines_total=len(machines),
            )
            _log(job.pk, f"Deploy of {change.reference} ({change.merged_sha[:10]}) with plan {plan.pk} on "
                         f"{len(machines)} machine(s) queued by {acting_user.get_username()}"
                         + ("; conflicting hand edits will be overwritten (confirmed)." if confirm_conflicts else "."))
            _event(change, acting_user, "deploy-started", f"Deploy {job.pk} of plan {plan.pk} on {len(machines)} "
                   f"machine(s)" + (", conflicts confirmed" if confirm_conflicts else ""),
                   job=job.pk, plan=plan.pk, confirm_conflicts=confirm_conflicts)
            job_id = job.pk
            transaction.on_commit(lambda: _enqueue("deploy_dispatch", job_id))
    except IntegrityError:
        running = Job.objects.filter(change=change, kind=Job.Kind.DEPLOY, state__in=Job.ACTIVE_STATES).first()
        raise DeployConflict(f"A deploy of {change.reference} is already running"
                             + (f" (job {running.pk})." if running else ".")) from None
    return job


def restore_start(*, acting_user, deploy: Job) -> Job:
    """Queue a job that puts back the files a failed, halted or interrupted deploy replaced."""
    if not permissions.can_deploy(acting_user):
        raise DeployForbidden("Only approvers and staff may restore machines.")
    if deploy.kind != Job.Kind.DEPLOY or deploy.state not in (State.FAILED, State.HALTED, State.INTERRUPTED):
        raise DeployConflict("Only a failed, halted or interrupted deploy can be restored.")
    machines = list(deploy.plans.filter(status__in=(Status.APPLIED, Status.INTERRUPTED))
                    .values_list("machine_path", flat=True))
    if not machines:
        raise DeployConflict("No machine of this deploy was written: there is nothing to restore.")
    with transaction.atomic():
        job = Job.objects.create(kind=Job.Kind.RESTORE, change=deploy.change, plan_job=deploy,
                                 revision=deploy.baseline_sha or deploy.revision, rev_label=f"restore of job {deploy.pk}",
                                 requested_by=acting_user, machines=machines, machines_total=len(machines))
        _log(job.pk, f"Restore of the {len(machines)} machine(s) deploy {deploy.pk} wrote, queued by "
                     f"{acting_user.get_username()}.")
        _event(deploy.change, acting_user, "restore-started", f"Restore {job.pk} of deploy {deploy.pk}",
               job=job.pk, deploy=deploy.pk)
        job_id = job.pk
        transaction.on_commit(lambda: _enqueue("deploy_dispatch", job_id))
    return job


def _enqueue(task: str, *args) -> None:
    from deploys import tasks

    getattr(tasks, task).delay(*args)


# --- the work ------------------------------------------------------------------------------------------
def rollout_begin(*, job_id: int) -> list[str]:
    """Mark a queued deploy or restore running; its first batch (the canary when configured)."""
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.state != State.QUEUED:
            return []
        job.state = State.RUNNING
        job.started_at = job.progress_at = timezone.now()
        job.save(update_fields=["state", "started_at", "progress_at"])
        _log(job.pk, "Started.")
    return _next_batch(job_id, first=True)


def _next_batch(job_id: int, *, first: bool = False) -> list[str]:
    job = Job.objects.get(pk=job_id)
    if job.state != State.RUNNING:
        return []
    done = set(job.plans.values_list("machine_path", flat=True))
    remaining = [m for m in job.machines if m not in done]
    if not remaining:
        _finish(job_id)
        return []
    size = settings.CMDB_DEPLOY_CANARY if first and settings.CMDB_DEPLOY_CANARY else settings.CMDB_DEPLOY_BATCH
    return remaining[:size]


def rollout_run_batch(*, job_id: int, machine_paths: list[str]) -> list[str]:
    """Deploy (or restore) a batch of machines one by one; the next batch ([] when done or halted)."""
    release: _Release | None = None
    # Only the job's state changes while it runs: the row and its relations are read once per batch.
    job = Job.objects.select_related("change", "plan_job", "requested_by").get(pk=job_id)
    for machine in machine_paths:
        if Job.objects.filter(pk=job_id).values_list("state", flat=True).first() != State.RUNNING:
            return []  # cancelled or halted between machines: the rest stays untouched
        if job.plans.filter(machine_path=machine).exists():
            continue
        if job.kind == Job.Kind.RESTORE:
            _store(job, machine, _restore_one(job, machine))
        else:
            release = release or _Release(job.revision, machine_paths)
            _store(job, machine, _deploy_one(job, machine, release))
        if _halt_if_needed(job_id):
            return []
    return _next_batch(job_id)


class _Release:
    """The release's declaration of a batch's machines, read from Git once for all of them (per
    machine, the secret rule and the manifests cost more than the write itself)."""

    def __init__(self, revision: str, machines: list[str]):
        self.error = ""
        self.declarations: dict[str, MachineDeclaration] = {}
        try:
            self.repo = cmdb_services.repo_with(revision)  # fetched when this worker host lacks the release
            self.declarations = declared_configuration(
                self.repo, revision, machines=machines, local_root_base=settings.CMDB_LOCAL_ROOT_BASE,
                secret_patterns=secret_patterns(self.repo, revision))
        except GitError as exc:
            self.error = str(exc)


class _Outcome:
    def __init__(self, status: str, reason: str = "", items: list | None = None, reload: list | None = None,
                 reload_results: list | None = None):
        self.status, self.reason = status, reason
        self.items, self.reload, self.reload_results = items or [], reload or [], reload_results or []


def _deploy_one(job: Job, machine: str, release: _Release) -> _Outcome:
    plan = job.plan_job.plans.filter(machine_path=machine).first() if job.plan_job else None
    if plan is None:
        return _Outcome(Status.SKIPPED, "not in the plan")
    if not deploy_enabled(machine):
        return _Outcome(Status.SKIPPED, f"deploys are not enabled for {machine.split('/', 1)[0]} "
                                        "(CMDB_DEPLOY_ENVIRONMENTS); nothing written", plan.items)
    if plan.status == Status.MANUAL:
        steps = [dict(i, result="to do by hand") for i in plan.items]
        return _Outcome(Status.MANUAL, "configured by hand: a person applies these steps and ticks them off", steps,
                        plan.reload)
    if plan.status != Status.PLANNED:
        return _Outcome(Status.SKIPPED, f"the plan says {plan.status}: {plan.reason}", plan.items)
    items, wanted = [], []
    for item in plan.items:
        shown = dict(item)
        if item.get("action") not in CHANGED:
            shown["result"] = "" if item.get("action") == "unchanged" else "left as it is"
        elif item.get("origin") == "drift":
            shown["result"] = "left as it is (drift)"
        elif item.get("origin") == "conflict" and not job.confirm_conflicts:
            shown["result"] = "kept: conflict not confirmed"
        else:
            wanted.append(item)
        items.append(shown)
    if release.error:
        return _Outcome(Status.ERROR, f"Cannot read the repository: {release.error}", items)
    decl = release.declarations.get(machine)
    if decl is None or decl.errors:
        return _Outcome(Status.ERROR, "The machine has no usable declaration at the release.", items)
    try:
        contents = by_target(decl, release.repo.read_blobs({decl.files[i["target"]].blob_sha for i in wanted
                                                            if i["target"] in decl.files}))
    except GitError as exc:
        return _Outcome(Status.ERROR, f"Cannot read the repository: {exc}", items)
    writes = []
    for item in wanted:
        declared = decl.files.get(item["target"])
        if item["action"] == "delete" or declared is None:
            writes.append(FileWrite(item["target"], None))
        else:
            writes.append(FileWrite(declared.target, contents[declared.target], declared.mode, declared.owner,
                                    declared.group, declared.kind))
    expected = {i["target"]: apply.Expected.from_item(i) for i in wanted}
    reload = _reload_for(release.repo, job, machine, decl, wanted) if writes else []
    try:
        with open_machine(decl.access, ssh_settings=look.ssh_settings_from(settings)) as target:
            done = apply.apply_machine(target, writes, expected, reload=reload, backup_dir=job.backup_dir(machine))
    except ManualMachine as exc:
        return _Outcome(Status.MANUAL, exc.message, items)
    except Unreachable as exc:
        return _Outcome(Status.UNREACHABLE, exc.message + "; nothing written", items)
    except TransportError as exc:
        return _Outcome(Status.ERROR, exc.message + "; nothing written", items)
    for shown in items:
        if shown["target"] in done.files:
            shown["result"] = done.files[shown["target"]]
        elif done.status == apply.SKIPPED and "result" not in shown:
            shown["result"] = "not written"
    return _Outcome({apply.APPLIED: Status.APPLIED, apply.SKIPPED: Status.SKIPPED}.get(done.status, Status.FAILED),
                    done.reason, items, reload, done.commands_as_dicts())


def _reload_for(repo, job: Job, machine: str, decl, wanted: list[dict]) -> list[str]:
    """The reload commands of the applications whose files this deploy writes. The plan's own list
    also names applications with drift or unconfirmed conflicts: their files stay as they are, so
    restarting their services would only disturb production for nothing."""
    actions = [FileAction(i["target"], i["action"], app_path=i.get("app_path", "")) for i in wanted]
    baseline = None
    # a file deleted with its whole application: only the declaration before the release names its reload
    if job.baseline_sha and any(a.action == "delete" and a.app_path not in decl.reload for a in actions):
        try:
            baseline = declared_configuration(repo, job.baseline_sha, machines=[machine],
                                              local_root_base=settings.CMDB_LOCAL_ROOT_BASE).get(machine)
        except GitError:
            baseline = None
    return reload_commands(decl, actions, baseline)


def _restore_one(job: Job, machine: str) -> _Outcome:
    deploy = job.plan_job
    assert deploy is not None
    try:
        repo = cmdb_services.repo_with(deploy.revision)
        decl = declared_configuration(repo, deploy.revision, machines=[machine],
                                      local_root_base=settings.CMDB_LOCAL_ROOT_BASE).get(machine)
    except GitError as exc:
        return _Outcome(Status.ERROR, f"Cannot read the repository: {exc}")
    if decl is None:
        return _Outcome(Status.ERROR, "The machine is not in the repository at the deploy's revision.")
    try:
        with open_machine(decl.access, ssh_settings=look.ssh_settings_from(settings)) as target:
            done = apply.restore_machine(target, deploy.backup_dir(machine))
    except TransportError as exc:
        return _Outcome(Status.UNREACHABLE if isinstance(exc, Unreachable) else Status.ERROR, exc.message)
    items = [{"target": t, "action": "restore", "result": r} for t, r in done.files.items()]
    return _Outcome({apply.APPLIED: Status.APPLIED, apply.SKIPPED: Status.SKIPPED}.get(done.status, Status.FAILED),
                    done.reason, items)


FAILING = (Status.FAILED, Status.UNREACHABLE, Status.ERROR)


def _store(job: Job, machine: str, outcome: _Outcome) -> None:
    """One machine's result, its log line and its record event, in one transaction."""
    now = timezone.now()
    with transaction.atomic():
        try:
            with transaction.atomic():
                MachinePlan.objects.create(job=job, machine_path=machine, status=outcome.status, reason=outcome.reason,
                                           items=outcome.items, reload=outcome.reload,
                                           reload_results=outcome.reload_results, finished_at=now)
        except IntegrityError:
            return  # stored already
        Job.objects.filter(pk=job.pk).update(machines_done=F("machines_done") + 1, progress_at=now)
        level = "info" if outcome.status in (Status.APPLIED, Status.MANUAL) else "warning"
        _log(job.pk, f"{machine}: {outcome.status}" + (f" ({outcome.reason})" if outcome.reason else ""), level)
        _event(job.change, None, f"{job.kind}-machine", f"{job.get_kind_display().capitalize()} {job.pk}: {machine} "
               f"{outcome.status}" + (f": {outcome.reason}" if outcome.reason else ""),
               job=job.pk, machine=machine, status=outcome.status)


def _halt_if_needed(job_id: int) -> bool:
    failed = MachinePlan.objects.filter(job_id=job_id, status__in=FAILING).count()
    if failed < settings.CMDB_DEPLOY_MAX_FAILURES:
        return False
    with transaction.atomic():
        # Lock the job's row only: PostgreSQL cannot lock the nullable side (change) of an outer join.
        job = Job.objects.select_for_update(of=("self",)).select_related("change").get(pk=job_id)
        if job.state != State.RUNNING:
            return True
        done = set(job.plans.values_list("machine_path", flat=True))
        job.machines_missing = [m for m in job.machines if m not in done]
        job.state, job.finished_at = State.HALTED, timezone.now()
        job.error = (f"Halted: {failed} machine(s) failed (CMDB_DEPLOY_MAX_FAILURES={settings.CMDB_DEPLOY_MAX_FAILURES}); "
                     f"{len(job.machines_missing)} machine(s) left untouched.")
        job.save(update_fields=["state", "finished_at", "error", "machines_missing"])
        _log(job_id, job.error + " " + ", ".join(job.machines_missing[:50]), "error")
        _event(job.change, None, f"{job.kind}-halted", job.error, job=job_id, untouched=job.machines_missing)
        if job.kind == Job.Kind.DEPLOY and job.change is not None:
            transaction.on_commit(lambda: _verify_after(job_id))
    return True


def _finish(job_id: int) -> None:
    with transaction.atomic():
        job = Job.objects.select_for_update(of=("self",)).select_related("change").get(pk=job_id)
        if job.state != State.RUNNING or job.machines_done < job.machines_total:
            return
        failed = job.plans.filter(status__in=FAILING).count()
        job.state = State.FAILED if failed else State.SUCCEEDED
        job.finished_at = timezone.now()
        counts = {s: n for s, n in ((s, job.plans.filter(status=s).count()) for s in Status.values) if n}
        job.error = f"{failed} machine(s) failed." if failed else ""
        job.save(update_fields=["state", "finished_at", "error"])
        _log(job_id, f"Finished: {counts}.")
        if job.kind == Job.Kind.DEPLOY and job.change is not None:
            transaction.on_commit(lambda: _verify_after(job_id))
        _event(job.change, None, f"{job.kind}-finished", f"{job.get_kind_display().capitalize()} {job_id} {job.state}: "
               + ", ".join(f"{n} {s}" for s, n in counts.items()), job=job_id, state=job.state, counts=counts)


def _verify_after(job_id: int) -> None:
    """A deploy ended: verify every machine of its plan (untouched ones of a halted rollout fail)."""
    from deploys import verification

    job = Job.objects.select_related("change").get(pk=job_id)
    assert job.change is not None
    machines = [m for m, status in job.plans.values_list("machine_path", "status") if status != Status.ERROR]
    machines += job.machines_missing
    verification.verification_start(change=job.change, machines=sorted(set(machines)), why=f"deploy {job_id}")
