"""Audits: the declared configuration on main compared with what is live, machine by machine.

Every write is a keyword-only function here, in one transaction, recording who did it. Starting a
run writes its row (the database refuses a second active run of one scope) and queues the dispatch
task with ``transaction.on_commit``. Batches of machines go through :func:`fleet.look.look_at_machines`
(read only: audits never write to a machine), the same loop and comparison as a dry run of main.
Each batch's results land in one transaction, so a worker killed mid-batch loses only that batch,
which is redelivered (``acks_late``) or, when the run outlives its time limit, listed as not done on
an incomplete run.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from audits import adopt, signals
from audits.errors import AuditConflict, AuditError, AuditForbidden
from audits.models import AuditRun, Finding, MachineResult, MachineStatus, ManualCheck, percent
from audits.permissions import OPEN_CHANGE_DENIAL, can_acknowledge, can_check, can_open_change, can_start
from changes import services as change_services
from changes.models import ChangeRequest
from cmdb import services as cmdb_services
from cmdb.gitrepo import ConfigRepo, GitError
from cmdb.indexer import secret_patterns
from fleet import look
from fleet.declared import is_machine_dir

log = logging.getLogger(__name__)

State = AuditRun.State
Status = MachineResult.Status
Kind = Finding.Kind
FState = Finding.State


# --- starting ------------------------------------------------------------------------------------------
def _main_head(repo: ConfigRepo) -> str:
    """main's head on origin now (fetched), or the clone's when origin cannot be reached."""
    try:
        repo.fetch(settings.CMDB_BRANCH)
    except GitError as exc:
        log.warning("audit: cannot fetch origin, auditing the clone's %s: %s", settings.CMDB_BRANCH, exc)
    sha = cmdb_services.main_sha(repo)
    if not sha:
        raise AuditError(f"The repository has no {settings.CMDB_BRANCH} branch yet: sync it first.")
    return sha


def machines_in_scope(repo: ConfigRepo, sha: str, scope: str) -> list[str]:
    """The machine paths (``env/machine``) under ``scope`` at ``sha``; AuditError for an unknown scope."""
    scope = scope.strip().strip("/")
    parts = scope.split("/") if scope else []
    if len(parts) > 2 or any(p in ("", ".", "..") for p in parts):
        raise AuditError(f"Not an audit scope: {scope!r} (use nothing, an environment, or environment/machine).")
    envs = [e.path for e in repo.ls_tree(sha, recursive=False) if e.type == "tree"] if not parts else [parts[0]]
    machines: list[str] = []
    for env in envs:
        for entry in repo.ls_tree(sha, env, recursive=False):
            env_name, _, name = entry.path.partition("/")
            if entry.type == "tree" and is_machine_dir(env_name, name):
                machines.append(entry.path)
    if len(parts) == 2:
        machines = [m for m in machines if m == scope]
    if parts and not machines:
        raise AuditError(f"No machine under {scope!r} on {settings.CMDB_BRANCH}.")
    return sorted(machines)


def audit_start(*, acting_user=None, scope: str = "", trigger: str = AuditRun.Trigger.MANUAL) -> AuditRun:
    """Queue an audit of ``scope`` ("" for everything). ``acting_user`` None: the monthly schedule."""
    if acting_user is not None and not can_start(acting_user):
        raise AuditForbidden("Only staff may start audits.")
    scope = scope.strip().strip("/")
    repo = cmdb_services.get_repo()
    sha = _main_head(repo)
    machines = machines_in_scope(repo, sha, scope)
    try:
        with transaction.atomic():
            run = AuditRun.objects.create(scope=scope, trigger=trigger, requested_by=acting_user, main_sha=sha,
                                          machines=machines, machines_total=len(machines))
            run_id = run.pk
            change_services.record_event(actor=acting_user, action="audit-started", commit=sha,
                                         message=f"Audit #{run_id} of {run.scope_label} ({len(machines)} machines)",
                                         audit=run_id, scope=scope, trigger=trigger)
            transaction.on_commit(lambda: _enqueue_dispatch(run_id))
    except IntegrityError:
        active = AuditRun.objects.filter(scope=scope, state__in=AuditRun.ACTIVE_STATES).first()
        raise AuditConflict(
            f"An audit of {scope or 'everything'} is already {active.state if active else 'active'}"
            + (f" (#{active.pk})." if active else ".")
        ) from None
    log.info("audit %s of %s queued (%d machines, main %s)", run.pk, run.scope_label, len(machines), sha[:10])
    return run


def audit_verification(*, machines: list[str], label: str, change=None) -> AuditRun:
    """Queue the audit that verifies a release landed: ``machines`` only, against main now. Its end
    is announced with :data:`audits.signals.audit_finished` (the release process listens)."""
    repo = cmdb_services.get_repo()
    sha = _main_head(repo)
    wanted = sorted(set(machines))
    try:
        with transaction.atomic():
            run = AuditRun.objects.create(scope=label[:1000], trigger=AuditRun.Trigger.VERIFICATION, main_sha=sha,
                                          machines=wanted, machines_total=len(wanted))
            run_id = run.pk
            change_services.record_event(actor=None, change=change, action="audit-started", commit=sha,
                                         message=f"Audit #{run_id}: {label} ({len(wanted)} machines)",
                                         audit=run_id, scope=label, trigger=AuditRun.Trigger.VERIFICATION)
            transaction.on_commit(lambda: _enqueue_dispatch(run_id))
    except IntegrityError:
        raise AuditConflict(f"{label} is already being audited.") from None
    return run


def _tasks():
    from audits import tasks  # the tasks call back into this module

    return tasks


def _enqueue_dispatch(run_id: int) -> None:
    _tasks().audit_dispatch.delay(run_id)


def audit_scheduled() -> AuditRun | None:
    """The monthly full audit (beat). Skipped, not failed, while another full audit is active."""
    try:
        return audit_start(scope="", trigger=AuditRun.Trigger.SCHEDULE)
    except AuditConflict as exc:
        log.warning("scheduled audit skipped: %s", exc)
        return None


# --- the work ------------------------------------------------------------------------------------------
def audit_begin(*, run_id: int) -> list[list[str]]:
    """Mark a queued run running; the batches of machines to look at ([] when there is nothing to do)."""
    with transaction.atomic():
        run = AuditRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.state != State.QUEUED:
            return []
        run.state, run.started_at = State.RUNNING, timezone.now()
        run.progress_at = run.started_at
        run.save(update_fields=["state", "started_at", "progress_at"])
        machines = list(run.machines)
    if not machines:
        _finish(run_id)
        return []
    return look.batches(machines, settings.CMDB_AUDIT_BATCH)


@dataclass
class _Outcome:
    """One machine's result before it is written."""

    machine: str
    status: str
    reason: str = ""
    findings: list[Finding] = field(default_factory=list)
    files_total: int = 0
    files_in_sync: int = 0
    applications: dict[str, list[int]] = field(default_factory=dict)


def audit_run_batch(*, run_id: int, machine_paths: list[str]) -> None:
    """Audit a batch of machines and store their results in one transaction. Never writes to a machine."""
    run = AuditRun.objects.filter(pk=run_id).first()
    if run is None or run.state != State.RUNNING:
        return
    done = set(MachineResult.objects.filter(run_id=run_id, machine_path__in=machine_paths)
               .values_list("machine_path", flat=True))
    todo = [m for m in machine_paths if m not in done]  # a redelivered batch skips what is stored
    if not todo:
        _finish(run_id)
        return
    outcomes = _audit_machines(run.main_sha, todo)
    _store(run, outcomes)
    _finish(run_id)


def _audit_machines(sha: str, machines: list[str]) -> list[_Outcome]:
    try:
        repo = cmdb_services.repo_with(sha)  # this worker host's clone, fetched when it lacks the run's commit
        patterns = secret_patterns(repo, sha)
    except GitError as exc:
        return [_Outcome(m, Status.ERROR, f"Cannot read the repository: {exc}") for m in machines]
    looks = look.look_at_machines(repo, sha, machines, secret_patterns=patterns,
                                  local_root_base=settings.CMDB_LOCAL_ROOT_BASE,
                                  ssh_settings=look.ssh_settings_from(settings),
                                  missing_reason=f"The machine is no longer on {settings.CMDB_BRANCH}.")
    return [_compare(seen) if seen.status == look.PLANNED else _Outcome(seen.machine, seen.status, seen.reason)
            for seen in looks]


def _compare(seen: look.MachineLook) -> _Outcome:
    """Turn a machine's plan against main into findings: one per file and kind of drift."""
    machine, actions = seen.machine, seen.actions
    assert seen.snapshot is not None
    snapshot = seen.snapshot
    env = machine.split("/", 1)[0]
    outcome = _Outcome(machine, Status.COMPLIANT)
    apps: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for a in actions:
        apps[a.app_path][1] += 1
        live = snapshot.files.get(a.target)
        live_sha = (live.sha256 or "") if live is not None else ""
        if a.action == "unchanged":
            apps[a.app_path][0] += 1
            continue
        common = {"machine_path": machine, "environment": env, "app_path": a.app_path, "source_path": a.source_path,
                  "target": a.target, "secret": a.secret, "live_sha256": live_sha}
        if a.action == "create":
            outcome.findings.append(Finding(kind=Kind.MISSING, **common,
                                            fingerprint=Finding.fingerprint_of(machine, a.target, Kind.MISSING, "")))
        elif a.action == "unreadable":
            outcome.findings.append(Finding(kind=Kind.UNREADABLE, reason=a.reason, **common,
                                            fingerprint=Finding.fingerprint_of(machine, a.target, Kind.UNREADABLE, a.reason)))
        else:
            if "content" in a.changes:
                outcome.findings.append(Finding(kind=Kind.CONTENT, diff=a.diff, reason=a.reason, **common,
                                                fingerprint=Finding.fingerprint_of(machine, a.target, Kind.CONTENT, live_sha)))
            if "mode" in a.changes:
                outcome.findings.append(Finding(kind=Kind.MODE, declared=a.declared_mode, live=a.live_mode, **common,
                                                fingerprint=Finding.fingerprint_of(machine, a.target, Kind.MODE, a.live_mode)))
            if "owner" in a.changes or "group" in a.changes:
                declared = f"{a.declared_owner or '*'}:{a.declared_group or '*'}"
                live_og = f"{a.live_owner}:{a.live_group}"
                outcome.findings.append(Finding(kind=Kind.OWNER, declared=declared, live=live_og, **common,
                                                fingerprint=Finding.fingerprint_of(machine, a.target, Kind.OWNER, live_og)))
    outcome.files_total = len(actions)
    outcome.files_in_sync = sum(good for good, _ in apps.values())
    outcome.applications = dict(apps)
    if outcome.findings:
        outcome.status = Status.DRIFTED
    return outcome


def _carry_over(findings: list[Finding]) -> None:
    """Findings of drift someone already handled keep that handling (see :class:`Finding`)."""
    if not findings:
        return
    prints = {f.fingerprint for f in findings}
    handled: dict[str, Finding] = {}
    earlier = (Finding.objects.filter(fingerprint__in=prints).exclude(state=FState.OPEN)
               .select_related("change").order_by("id"))
    for old in earlier:
        handled[old.fingerprint] = old  # the latest handling wins
    for f in findings:
        previous = handled.get(f.fingerprint)
        if previous is None:
            continue
        old = previous
        if old.state in (FState.ADOPTED, FState.RESTORE) and (old.change is None or not old.change.is_open):
            continue  # its change request ended and the drift is still there: it needs a new decision
        f.state, f.note, f.handled_by_id, f.handled_at = old.state, old.note, old.handled_by_id, old.handled_at
        f.change_id = old.change_id
        f.carried_from = old.carried_from or old


def _store(run: AuditRun, outcomes: list[_Outcome]) -> None:
    """Write a batch's results, findings, manual checks and machine statuses in one transaction; nothing
    when the run finished meanwhile (closed by the reaper): a finished run is never written into."""
    try:
        _store_running(run, outcomes)
    except _RunClosed:
        log.warning("audit %s: a batch of %d machine(s) finished after the run was closed; discarded",
                    run.pk, len(outcomes))


class _RunClosed(Exception):
    pass


def _store_running(run: AuditRun, outcomes: list[_Outcome]) -> None:
    now = timezone.now()
    due = _next_month(timezone.localtime(run.created_at).date())
    findings = [f for o in outcomes for f in o.findings]
    with transaction.atomic():
        # The row lock orders this batch against the reaper: whoever comes second sees the other's state.
        if not AuditRun.objects.select_for_update().filter(pk=run.pk, state=State.RUNNING).exists():
            raise _RunClosed
        _carry_over(findings)
        results = []
        for o in outcomes:
            checked = o.status in (Status.COMPLIANT, Status.DRIFTED)
            results.append(MachineResult(
                run=run, machine_path=o.machine, environment=o.machine.split("/", 1)[0], status=o.status,
                reason=o.reason, files_total=o.files_total, files_in_sync=o.files_in_sync,
                compliance=percent(o.files_in_sync, o.files_total) if checked else None,
                applications=o.applications, finished_at=now,
            ))
        try:
            with transaction.atomic():
                MachineResult.objects.bulk_create(results)
        except IntegrityError:
            return  # another delivery of this batch stored it first
        by_machine = {r.machine_path: r for r in results}  # SQLite and PostgreSQL set pks on bulk inserts
        for o in outcomes:
            for f in o.findings:
                f.run, f.result = run, by_machine[o.machine]
        findings += _carry_manual_findings(by_machine)
        Finding.objects.bulk_create(findings, batch_size=1000)
        ManualCheck.objects.bulk_create([
            ManualCheck(run=run, machine_path=o.machine, environment=o.machine.split("/", 1)[0], due=due)
            for o in outcomes if o.status == Status.MANUAL
        ])
        open_counts: dict[str, int] = defaultdict(int)
        for f in findings:
            if f.state == FState.OPEN:
                open_counts[f.result.machine_path] += 1
        MachineStatus.objects.bulk_create(
            [MachineStatus(machine_path=r.machine_path, environment=r.environment, last_result=r, last_audit_at=now,
                           status=r.status, reason=r.reason[:2000], compliance=r.compliance,
                           files_total=r.files_total, files_in_sync=r.files_in_sync,
                           open_findings=open_counts[r.machine_path]) for r in by_machine.values()],
            update_conflicts=True, unique_fields=["machine_path"],
            update_fields=["environment", "last_result", "last_audit_at", "status", "reason", "compliance",
                           "files_total", "files_in_sync", "open_findings"],
        )
        AuditRun.objects.filter(pk=run.pk).update(machines_done=F("machines_done") + len(results), progress_at=now)


def _carry_manual_findings(results: dict[str, MachineResult]) -> list[Finding]:
    """Open manual-check discrepancies of the machines' previous results, carried onto the new ones:
    no audit sees them again, and they stay open until a person acknowledges or resolves them."""
    previous = MachineStatus.objects.filter(machine_path__in=list(results)).values_list("last_result_id", flat=True)
    carried = []
    for old in Finding.objects.filter(result_id__in=list(previous), kind=Kind.MANUAL, state=FState.OPEN):
        result = results[old.machine_path]
        carried.append(Finding(run=result.run, result=result, machine_path=old.machine_path, environment=old.environment,
                               source_path=old.source_path, target=old.target, kind=Kind.MANUAL, reason=old.reason,
                               fingerprint=old.fingerprint, carried_from=old.carried_from or old))
    return carried


def _next_month(day: date) -> date:
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1)


def _finish(run_id: int) -> None:
    """A running run whose machines are all stored succeeds: its figures are summed and mailed."""
    with transaction.atomic():
        run = AuditRun.objects.select_for_update().filter(pk=run_id, state=State.RUNNING).first()
        if run is None or run.machines_done < run.machines_total:
            return
        _close(run, State.SUCCEEDED)


def _close(run: AuditRun, state: str, *, error: str = "") -> None:
    run.state, run.finished_at, run.error = state, timezone.now(), error
    run.summary = summarize(run)
    if state == State.INCOMPLETE:
        done = set(run.results.values_list("machine_path", flat=True))
        run.machines_missing = [m for m in run.machines if m not in done]
    run.save(update_fields=["state", "finished_at", "error", "summary", "machines_missing"])
    run_id = run.pk
    if run.trigger != AuditRun.Trigger.VERIFICATION:  # its result goes to the change request instead
        transaction.on_commit(lambda: _tasks().audit_summary_mail.delay(run_id))
    transaction.on_commit(lambda: signals.audit_finished.send(sender=AuditRun, run_id=run_id))


def summarize(run: AuditRun) -> dict:
    """Counts and compliance of a run, in total and per environment (stored on the run)."""
    rows = (run.results.order_by().values("environment", "status")
            .annotate(n=Count("id"), files=Sum("files_total"), good=Sum("files_in_sync")))
    envs: dict[str, dict[str, Any]] = {}
    total: dict[str, Any] = {"machines": 0, "files": 0, "in_sync": 0, "statuses": {}}
    for row in rows:
        env = envs.setdefault(row["environment"], {"machines": 0, "files": 0, "in_sync": 0, "statuses": {}})
        for bucket in (env, total):
            bucket["machines"] += row["n"]
            bucket["statuses"][row["status"]] = bucket["statuses"].get(row["status"], 0) + row["n"]
            if row["status"] in (Status.COMPLIANT, Status.DRIFTED):
                bucket["files"] += row["files"] or 0
                bucket["in_sync"] += row["good"] or 0
    findings = dict(run.findings.order_by().values_list("environment").annotate(n=Count("id")))
    for name, figures in envs.items():
        figures["compliance"] = percent(figures["in_sync"], figures["files"])
        figures["findings"] = findings.get(name, 0)
    total["compliance"] = percent(total["in_sync"], total["files"])
    total["findings"] = sum(findings.values())
    return {**total, "environments": dict(sorted(envs.items()))}


def audit_fail_machines(*, run_id: int, machine_paths: list[str], reason: str) -> None:
    """A batch that timed out: its machines without a result get an error result."""
    run = AuditRun.objects.filter(pk=run_id, state=State.RUNNING).first()
    if run is None:
        return
    done = set(MachineResult.objects.filter(run_id=run_id, machine_path__in=machine_paths)
               .values_list("machine_path", flat=True))
    _store(run, [_Outcome(m, Status.ERROR, reason) for m in machine_paths if m not in done])
    _finish(run_id)


def audit_reap_stale() -> int:
    """Close runs that stopped making progress (no batch stored for longer than twice a batch's time
    limit: a lost batch is redelivered well within that) as incomplete, with the machines not done
    listed; what was stored is kept. A run still storing batches is never reaped, however long."""
    limit = timedelta(seconds=2 * settings.CMDB_AUDIT_TIME_LIMIT)
    now = timezone.now()
    stale = list(AuditRun.objects.filter(
        Q(state=State.RUNNING, progress_at__lt=now - limit) | Q(state=State.QUEUED, created_at__lt=now - 12 * limit)
    ).values_list("pk", flat=True))
    reaped = 0
    for pk in stale:
        with transaction.atomic():
            run = AuditRun.objects.select_for_update().filter(pk=pk, state__in=AuditRun.ACTIVE_STATES).first()
            if run is None:
                continue
            _close(run, State.INCOMPLETE, error="worker lost: no progress within the time limit")
            reaped += 1
    return reaped


# --- findings ------------------------------------------------------------------------------------------
def _locked_open(finding: Finding) -> Finding:
    locked = Finding.objects.select_for_update().get(pk=finding.pk)
    if locked.state != FState.OPEN:
        raise AuditConflict(f"This finding is already {locked.get_state_display()}.")
    return locked


def _handled(finding: Finding, user, state: str, note: str, change: ChangeRequest | None = None) -> None:
    finding.state, finding.note, finding.handled_by, finding.handled_at = state, note, user, timezone.now()
    finding.change = change
    finding.save(update_fields=["state", "note", "handled_by", "handled_at", "change"])
    # Every decision a person takes on a finding is in the record, in the same transaction.
    change_services.record_event(
        actor=user, action=f"finding-{state}", change=change,
        message=f"Finding #{finding.pk} ({finding.get_kind_display()} of {finding.target} on {finding.machine_path}): {state}",
        finding=finding.pk, audit=finding.run_id, machine=finding.machine_path, target=finding.target, note=note,
    )
    MachineStatus.objects.filter(last_result_id=finding.result_id, open_findings__gt=0).update(
        open_findings=F("open_findings") - 1
    )


def finding_acknowledge(*, finding: Finding, acting_user, note: str) -> Finding:
    """Accept a discrepancy as it is, saying why (approvers and staff)."""
    if not can_acknowledge(acting_user):
        raise AuditForbidden("Only approvers and staff may acknowledge findings.")
    if not note.strip():
        raise AuditError("Acknowledging a finding needs a note saying why.")
    with transaction.atomic():
        locked = _locked_open(finding)
        _handled(locked, acting_user, FState.ACKNOWLEDGED, note.strip())
    return locked


_BRANCH_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _branch_for(kind: str, finding: Finding) -> str:
    machine = _BRANCH_SAFE.sub("-", finding.machine_path.replace("/", "-")).strip("-.")[:80]
    return f"audit/{kind}-{machine}-finding-{finding.pk}"


def finding_adopt(*, finding: Finding, acting_user, note: str = "") -> Finding:
    """Turn the live edits into a new branch from main and open a change request with it (the
    repository then matches reality once the change is approved and released). Content and mode drift
    only; only what the machine changed is applied onto main as it is now (:mod:`audits.adopt`), so a
    release made since the audit is kept, and the adopt is refused when both changed the same lines."""
    if not can_open_change(acting_user):
        raise AuditForbidden(OPEN_CHANGE_DENIAL)
    if finding.state != FState.OPEN:
        raise AuditConflict(f"This finding is already {finding.get_state_display()}.")
    adopted = adopt.adoption(finding)
    branch = _branch_for("adopt", finding)
    what = "content" if finding.kind == Kind.CONTENT else f"mode {finding.live}"
    message = (f"Adopt live {what} of {finding.target} on {finding.machine_path}\n\n"
               f"Audit #{finding.run_id} of {finding.run.scope_label} ({finding.run.main_sha[:10]}), "
               f"machine {finding.machine_path}, finding #{finding.pk}.\n\n{adopted.how}"
               + (f"\n\n{note.strip()}" if note.strip() else ""))
    head = change_services.branch_push_new(acting_user=acting_user, branch=branch, files=adopted.files,
                                           message=message, base=adopted.main_sha)
    with _discard_on_failure(branch, head):
        return _open_change(finding, acting_user, branch, FState.ADOPTED, note,
                            title=f"Adopt live {what} of {finding.target} on {finding.machine_path}",
                            description=message)


def finding_restore(*, finding: Finding, acting_user, note: str = "") -> Finding:
    """Open a change request recording the intent to re-deploy what the repository declares (its
    branch carries one empty commit; its dry run shows what the re-deploy would do)."""
    if not can_open_change(acting_user):
        raise AuditForbidden(OPEN_CHANGE_DENIAL)
    if finding.state != FState.OPEN:
        raise AuditConflict(f"This finding is already {finding.get_state_display()}.")
    branch = _branch_for("restore", finding)
    message = (f"Restore declared {finding.target} on {finding.machine_path} ({finding.get_kind_display()})\n\n"
               f"Audit #{finding.run_id}, finding #{finding.pk}." + (f"\n\n{note.strip()}" if note.strip() else ""))
    head = change_services.branch_push_new(acting_user=acting_user, branch=branch, files={}, message=message)
    with _discard_on_failure(branch, head):
        return _open_change(finding, acting_user, branch, FState.RESTORE, note,
                            title=f"Restore declared {finding.target} on {finding.machine_path}",
                            description=message, redeploy=[finding.app_path or finding.machine_path])


@contextmanager
def _discard_on_failure(branch: str, head: str):
    """The branch was pushed before the change request could be opened (Git is not transactional):
    if opening it fails (e.g. the finding was handled meanwhile), the branch goes too, so a retry works."""
    try:
        yield
    except BaseException:
        change_services.branch_discard(branch=branch, head=head)
        raise


def _open_change(finding: Finding, user, branch: str, state: str, note: str, *, title: str, description: str,
                 redeploy: Iterable[str] = ()) -> Finding:
    with transaction.atomic():
        locked = _locked_open(finding)
        change = change_services.change_create(acting_user=user, branch=branch, title=title[:200],
                                               description=description, type=ChangeRequest.Type.NORMAL,
                                               redeploy=list(redeploy))
        _handled(locked, user, state, note.strip() or title, change)
    return locked


# --- manual checks -------------------------------------------------------------------------------------
def manual_check_record(*, check: ManualCheck, acting_user, state: str, note: str = "") -> ManualCheck:
    """A person's verdict on a machine configured by hand: matches its README, or a discrepancy (with a note)."""
    if not can_check(acting_user):
        raise AuditForbidden("Only requesters, approvers and staff may record manual checks.")
    if state not in (ManualCheck.State.MATCHES, ManualCheck.State.DISCREPANCY):
        raise AuditError('A check is either "matches" or "discrepancy".')
    if state == ManualCheck.State.DISCREPANCY and not note.strip():
        raise AuditError("Describe the discrepancy in the note.")
    with transaction.atomic():
        locked = ManualCheck.objects.select_for_update().get(pk=check.pk)
        if locked.state != ManualCheck.State.OPEN:
            raise AuditConflict(f"This check was already recorded ({locked.state}).")
        locked.state, locked.note = state, note.strip()
        locked.checked_by, locked.checked_at = acting_user, timezone.now()
        locked.save(update_fields=["state", "note", "checked_by", "checked_at"])
        finding = _manual_finding(locked) if state == ManualCheck.State.DISCREPANCY else None
        extra: dict[str, Any] = {"finding": finding.pk} if finding else {}
        change_services.record_event(actor=acting_user, action=f"manual-check-{state}",
                                     message=f"Manual check of {locked.machine_path} (audit #{locked.run_id}): {state}"
                                     + (f"; open finding #{finding.pk}" if finding else ""),
                                     check=locked.pk, audit=locked.run_id, machine=locked.machine_path,
                                     note=locked.note, **extra)
        run_id, check_id = locked.run_id, locked.pk
        transaction.on_commit(lambda: signals.manual_check_recorded.send(sender=ManualCheck, run_id=run_id,
                                                                         check_id=check_id))
    return locked


def _manual_finding(check: ManualCheck) -> Finding:
    """A discrepancy found by hand becomes an open finding on the machine's latest result (an older
    check may be recorded after a newer audit), counted like drift until someone handles it."""
    status = MachineStatus.objects.select_for_update().filter(machine_path=check.machine_path).first()
    result = (status.last_result if status is not None and status.last_result_id else None) or \
        MachineResult.objects.get(run_id=check.run_id, machine_path=check.machine_path)
    target = "README (checked by hand)"
    finding = Finding.objects.create(
        run_id=result.run_id, result=result, machine_path=check.machine_path, environment=check.environment,
        source_path=f"{check.machine_path}/README.md", target=target, kind=Kind.MANUAL, reason=check.note,
        fingerprint=Finding.fingerprint_of(check.machine_path, target, Kind.MANUAL, f"check {check.pk}"),
    )
    MachineStatus.objects.filter(last_result_id=result.pk).update(open_findings=F("open_findings") + 1)
    return finding


# What a person may decide about an open finding, by the name the forms and the API use.
FINDING_ACTIONS: dict[str, Callable[..., Finding]] = {
    "acknowledge": finding_acknowledge, "adopt": finding_adopt, "restore": finding_restore,
}
