"""Change-control workflows. Each ``change_*`` action checks permission and state, runs in one
transaction with the CR row locked, and writes its ChangeEvent in that same transaction; mail and
background work are queued with ``transaction.on_commit``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from changes import impact as impacts
from changes import permissions, signals
from changes.models import (
    Approval,
    Baseline,
    BranchLock,
    ChangeEvent,
    ChangeRequest,
    Comment,
    ImpactedCI,
    ReleasedCommit,
    UnauthorizedCommit,
    span,
)
from cmdb import services as cmdb_services
from cmdb.gitrepo import ConfigRepo, GitError, MergeConflict, PushRejected, UnknownRevision
from portal.errors import ServiceError

log = logging.getLogger(__name__)
State = ChangeRequest.State


# ====================================================================================================
# Errors: each maps to one HTTP status in views and the API
# ====================================================================================================


class ChangeError(ServiceError):
    """Base of change-control errors; ``str()`` is the message shown to users."""

    status = 400


class ChangeForbidden(ChangeError):
    status = 403


class IllegalTransition(ChangeError):
    status = 409


class ChangeConflict(ChangeError):
    """Git said no (merge conflict, origin moved, branch moved) or another action won the race."""

    status = 409


class BadBranch(ChangeError):
    status = 400


# ====================================================================================================
# The state machine
# ====================================================================================================

# action -> states it may start from (emergency and after-the-fact rules are applied in the actions)
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "edit": (State.DRAFT, State.SUBMITTED, State.REJECTED),
    "submit": (State.DRAFT, State.REJECTED),
    "approve": (State.SUBMITTED,),
    "reject": (State.SUBMITTED,),
    "schedule": (State.APPROVED, State.SCHEDULED),
    "implement": (State.APPROVED, State.SCHEDULED),
    "verify": (State.IMPLEMENTED,),
    "close": (State.VERIFIED, State.REJECTED, State.WITHDRAWN),
    "withdraw": (State.DRAFT, State.SUBMITTED, State.APPROVED, State.SCHEDULED, State.REJECTED),
    "revert": ChangeRequest.AFTER_THE_FACT_STATES,  # opens a new CR undoing the release: changes.reverts
}
EMERGENCY_IMPLEMENT_FROM = (State.DRAFT, State.SUBMITTED, State.APPROVED, State.SCHEDULED)
AFTER_THE_FACT_STATES = ChangeRequest.AFTER_THE_FACT_STATES


def allowed(action: str, change: ChangeRequest) -> bool:
    """Whether ``action`` may start from the change's current state."""
    if action in ("approve", "reject") and change.needs_after_the_fact_approval and change.state in AFTER_THE_FACT_STATES:
        return True
    if action == "implement" and change.type == ChangeRequest.Type.EMERGENCY:
        return change.state in EMERGENCY_IMPLEMENT_FROM
    return change.state in TRANSITIONS.get(action, ())


def available_actions(user, change: ChangeRequest) -> list[str]:
    """The actions this user may take now (for buttons and the API)."""
    actions = [a for a in TRANSITIONS if allowed(a, change) and permissions.can(user, a, change)]
    if permissions.can(user, "comment", change):
        actions.append("comment")
    return actions


def _check(action: str, change: ChangeRequest, user) -> None:
    if not permissions.can(user, action, change):
        raise ChangeForbidden(permissions.denial(action))
    if not allowed(action, change):
        raise IllegalTransition(f"Cannot {action} a change request that is {change.state}.")


def _locked(change: ChangeRequest) -> ChangeRequest:
    """Re-read the row under a lock: concurrent actions on one CR run one after the other."""
    return ChangeRequest.objects.select_for_update().get(pk=change.pk)


def _event(change: ChangeRequest | None, actor, action: str, message: str = "", *, commit: str = "", **data) -> ChangeEvent:
    event = ChangeEvent.objects.create(change=change, actor=actor, action=action, message=message, commit_sha=commit, data=data)
    signals.event_recorded.send(sender=ChangeEvent, event=event)
    return event


def record_event(*, actor, action: str, message: str = "", change: ChangeRequest | None = None, commit: str = "",
                 **data) -> ChangeEvent:
    """Write an entry of the append-only record for a decision taken elsewhere (audits: a run started,
    a finding handled, a manual check). Call it inside the transaction that makes the decision."""
    return _event(change, actor, action, message, commit=commit, **data)


def _tasks():
    from changes import tasks  # the tasks call back into this module

    return tasks


def _author(user) -> tuple[str, str]:
    name = user.get_full_name() or user.get_username()
    return name, user.email or f"{user.get_username()}@cm-portal.invalid"


# ====================================================================================================
# Branches and impact
# ====================================================================================================


@dataclass
class BranchState:
    head: str
    base: str
    main: str


def _repo() -> ConfigRepo:
    return cmdb_services.get_repo()


def fetch() -> ConfigRepo:
    """Fetch origin so branch heads are current; Git errors become a clear ChangeError."""
    repo = _repo()
    try:
        repo.fetch(settings.CMDB_BRANCH)
    except GitError as exc:
        raise ChangeConflict(f"Cannot reach origin: {exc}") from exc
    return repo


def branch_names() -> list[str]:
    """Branches on origin other than main, for the create form."""
    try:
        repo = fetch()
    except ChangeError:
        repo = _repo()
    return [b for b in repo.branches() if b != settings.CMDB_BRANCH]


def _branch_state(repo: ConfigRepo, branch: str) -> BranchState:
    if branch == settings.CMDB_BRANCH:
        raise BadBranch(f"A change request needs a branch other than {settings.CMDB_BRANCH}.")
    try:
        head = repo.origin_head(branch)
    except UnknownRevision:
        raise BadBranch(f"Unknown branch {branch!r}: push it to origin first.") from None
    main = repo.origin_head(settings.CMDB_BRANCH)
    base = repo.merge_base(main, head)
    if base is None:
        raise BadBranch(f"Branch {branch!r} shares no history with {settings.CMDB_BRANCH}; branch off it and retry.")
    return BranchState(head=head, base=base, main=main)


def branch_push_new(*, acting_user, branch: str, files: Mapping[str, tuple[bytes, str]], message: str,
                    base: str | None = None) -> str:
    """Create ``branch`` on origin: one commit writing ``files`` (path -> (content, mode)) on ``base``,
    the commit of main the caller computed ``files`` from (default main's head now), so a main that
    moved meanwhile is merged when the change is released, never overwritten by the branch.
    Refused (BadBranch) when the branch already exists on origin; nothing is left behind on failure.
    Returns the new head.
    """
    repo = fetch()
    main = base or repo.origin_head(settings.CMDB_BRANCH)
    try:
        sha = repo.commit_files(main, files, message=message, author=_author(acting_user))
        repo.push(sha, branch, expect="")
    except PushRejected as exc:
        raise BadBranch(f"Cannot create branch {branch!r} on origin (does it exist already?): {exc}") from exc
    except GitError as exc:
        raise ChangeConflict(f"Cannot write the branch {branch!r}: {exc}") from exc
    return sha


def branch_discard(*, branch: str, head: str) -> None:
    """Undo :func:`branch_push_new` when what the branch was for failed (best effort: logged)."""
    try:
        _repo().delete_branch(branch, expect=head)
    except GitError as exc:
        log.warning("could not delete branch %s after a failure: %s", branch, exc)


def _store_impact(change: ChangeRequest, state: BranchState, impact: dict) -> None:
    redeploy = list((change.impact or {}).get("redeploy", []))
    if redeploy:
        impact = impacts.with_redeploy(impact, redeploy)
    change.head_sha, change.base_sha, change.impact = state.head, state.base, impact
    change.branch_missing = False
    change.required_approvals = impacts.required_approvals(impact)
    ImpactedCI.objects.filter(change=change).delete()
    ImpactedCI.objects.bulk_create(
        ImpactedCI(change=change, path=c["path"], kind=c["kind"], environment=c["environment"],
                   machine=c["machine_path"], reason=c["reason"], via=c["via"][:1000],
                   deploy=c.get("deploy", True))
        for c in impact["cis"]
    )


# ====================================================================================================
# Actions
# ====================================================================================================


def change_create(*, acting_user, branch: str, title: str, description: str = "", type: str = "normal",
                  risk: str = "medium", planned_start: datetime | None = None, planned_end: datetime | None = None,
                  rollback_plan: str = "", watchers=(), redeploy: Sequence[str] = ()) -> ChangeRequest:
    """Open a draft CR for ``branch`` (which must exist on origin and differ from main).

    ``redeploy`` names CIs the change acts on without changing their files (restoring what the
    repository declares on a drifted machine): they are impacted, and the branch may then carry no
    file change at all.
    """
    if not permissions.can(acting_user, "create"):
        raise ChangeForbidden(permissions.denial("create"))
    if not title.strip():
        raise ChangeError("A change request needs a title.")
    if planned_start and planned_end and planned_end <= planned_start:
        raise ChangeError("The planned window must end after it starts.")
    repo = fetch()
    state = _branch_state(repo, branch)
    impact = impacts.compute_impact(repo, state.base, state.head)
    if not impact["files"] and not redeploy:
        raise BadBranch(f"Branch {branch!r} has no changes compared with {settings.CMDB_BRANCH}.")
    with transaction.atomic():
        change = ChangeRequest(
            impact={"redeploy": sorted(set(redeploy))},
            title=title.strip(), description=description, type=type, risk=risk, planned_start=planned_start,
            planned_end=planned_end, rollback_plan=rollback_plan, requester=acting_user, branch=branch,
        )
        change.save()
        _store_impact(change, state, impact)
        change.save()
        if watchers:
            change.watchers.set(watchers)
        _event(change, acting_user, "created", f"Opened from branch {branch}", commit=state.head)
    return change


def change_get_or_create(*, acting_user, branch: str, **fields) -> tuple[ChangeRequest, bool]:
    """The branch's open change request (``created`` false, nothing written), or a new one as
    :func:`change_create` opens it: what the API and the form do, so a CI pipeline may post on every push."""
    if not permissions.can(acting_user, "create"):
        raise ChangeForbidden(permissions.denial("create"))
    BranchLock.objects.get_or_create(branch=branch)
    with transaction.atomic():
        # A second post for the branch waits here until the first one's CR is committed, then finds it.
        BranchLock.objects.select_for_update().get(branch=branch)
        existing = ChangeRequest.objects.filter(branch=branch, state__in=ChangeRequest.OPEN_STATES).first()
        if existing is not None:
            return existing, False
        return change_create(acting_user=acting_user, branch=branch, **fields), True


EDITABLE = ("title", "description", "type", "risk", "planned_start", "planned_end", "rollback_plan")


def change_update(*, change: ChangeRequest, acting_user, **fields) -> ChangeRequest:
    unknown = set(fields) - set(EDITABLE) - {"watchers"}
    if unknown:
        raise ChangeError(f"Cannot edit {', '.join(sorted(unknown))}.")
    with transaction.atomic():
        change = _locked(change)
        _check("edit", change, acting_user)
        watchers = fields.pop("watchers", None)
        changed = {k: v for k, v in fields.items() if getattr(change, k) != v}
        for key, value in changed.items():
            setattr(change, key, value)
        if "title" in changed and not change.title.strip():
            raise ChangeError("A change request needs a title.")
        change.clean()
        change.save()
        if watchers is not None:
            change.watchers.set(watchers)
        _event(change, acting_user, "edited", ", ".join(sorted(changed)) or "watchers", commit=change.head_sha,
               fields=sorted(changed))
    return change


def change_submit(*, change: ChangeRequest, acting_user) -> ChangeRequest:
    refresh_change(change=change)
    with transaction.atomic():
        change = _locked(change)
        _check("submit", change, acting_user)
        if change.branch_missing:
            raise ChangeConflict(f"Branch {change.branch!r} is gone from origin; push it again or withdraw.")
        change.state = State.SUBMITTED
        change.save(update_fields=["state", "updated_at"])
        _event(change, acting_user, "submitted", commit=change.head_sha)
        transaction.on_commit(lambda: _tasks().mail_approvers.delay(change.pk))
    return change


def change_approve(*, change: ChangeRequest, acting_user, comment: str = "", head_sha: str = "") -> ChangeRequest:
    """Record an approval for the current branch head; enough approvals approve the CR."""
    return _vote(change, acting_user, Approval.Decision.APPROVE, comment, head_sha)


def change_reject(*, change: ChangeRequest, acting_user, comment: str, head_sha: str = "") -> ChangeRequest:
    if not comment.strip():
        raise ChangeError("A rejection needs a reason.")
    return _vote(change, acting_user, Approval.Decision.REJECT, comment, head_sha)


def _vote(change: ChangeRequest, user, decision: str, comment: str, head_sha: str) -> ChangeRequest:
    action = "approve" if decision == Approval.Decision.APPROVE else "reject"
    with transaction.atomic():
        change = _locked(change)
        _check(action, change, user)
        if change.branch_missing:
            raise ChangeConflict(f"Branch {change.branch!r} is gone from origin.")
        if head_sha and head_sha != change.head_sha:
            raise ChangeConflict(
                f"The branch moved to {change.head_sha[:10]} since you looked at {head_sha[:10]}; review it again."
            )
        if Approval.objects.filter(change=change, user=user, head_sha=change.head_sha, dismissed_at__isnull=True).exists():
            raise ChangeConflict("You have already voted on this version of the change.")
        try:
            with transaction.atomic():
                Approval.objects.create(change=change, user=user, decision=decision, comment=comment,
                                        head_sha=change.head_sha)
        except IntegrityError:
            raise ChangeConflict("You have already voted on this version of the change.") from None
        _event(change, user, f"vote-{decision}", comment, commit=change.head_sha)
        after_the_fact = change.state in AFTER_THE_FACT_STATES
        if decision == Approval.Decision.REJECT:
            if not after_the_fact:
                change.state = State.REJECTED
                _event(change, user, "rejected", comment, commit=change.head_sha)
        elif live_approvals(change) >= change.required_approvals:
            if after_the_fact:
                change.approved_after_the_fact = True
                _event(change, user, "approved-after-the-fact", commit=change.head_sha)
            else:
                change.state = State.APPROVED
                _event(change, user, "approved", commit=change.head_sha)
        change.save()
        transaction.on_commit(lambda: _tasks().mail_requester.delay(change.pk, f"{decision}d by {user.get_username()}", comment))
    return change


def live_approvals(change: ChangeRequest) -> int:
    """Approvals that count: given for the current head, not dismissed, one per approver."""
    return (
        Approval.objects.filter(change=change, decision=Approval.Decision.APPROVE, head_sha=change.head_sha,
                                dismissed_at__isnull=True)
        .values("user").distinct().count()
    )


def change_schedule(*, change: ChangeRequest, acting_user, planned_start: datetime, planned_end: datetime) -> ChangeRequest:
    if planned_end <= planned_start:
        raise ChangeError("The planned window must end after it starts.")
    with transaction.atomic():
        change = _locked(change)
        _check("schedule", change, acting_user)
        problem = change.schedule_window_problem(planned_start, planned_end)
        if problem:
            raise ChangeConflict(problem)
        change.planned_start, change.planned_end, change.state = planned_start, planned_end, State.SCHEDULED
        change.save()
        _event(change, acting_user, "scheduled", f"Planned window {span(planned_start, planned_end)}",
               commit=change.head_sha, planned_start=planned_start.isoformat(), planned_end=planned_end.isoformat())
    return change


def change_implement(*, change: ChangeRequest, acting_user, reason: str = "") -> ChangeRequest:
    """Release the branch to main: fast-forward or merge commit, pushed to origin with a lease.

    The CR row stays locked from the state check to the push, so two requests make one merge; a
    conflict, a moved branch or a refused push leaves main, the CR and the record untouched. Outside
    its window or in a freeze (``ChangeRequest.release_window_problem``) only an emergency change
    is released, with a ``reason``, and stays flagged.
    """
    with transaction.atomic():
        change = _locked(change)
        _check("implement", change, acting_user)
        problem = change.release_window_problem()
        if problem and change.type != ChangeRequest.Type.EMERGENCY:
            raise ChangeConflict(f"{change.reference} cannot be released now: it would be released {problem}.")
        if problem and not reason.strip():
            raise ChangeError(f"{change.reference} would be released {problem}: say why the emergency cannot wait.")
        repo = fetch()
        try:
            state = _branch_state(repo, change.branch)
        except BadBranch as exc:
            raise ChangeConflict(str(exc)) from exc
        emergency_unapproved = change.state in (State.DRAFT, State.SUBMITTED)
        if state.head != change.head_sha:
            raise ChangeConflict(
                f"Branch {change.branch!r} moved to {state.head[:10]} after review of {change.head_sha[:10]}; "
                "it must be reviewed again."
            )
        message = f"Merge {change.reference}: {change.title}\n\nBranch: {change.branch}\nApproved change request {change.reference}."
        try:
            new_main, fast_forward = repo.merge(state.main, state.head, message=message, author=_author(acting_user))
            repo.push(new_main, settings.CMDB_BRANCH, expect=state.main)
        except MergeConflict as exc:
            raise ChangeConflict(f"{exc}. Merge {settings.CMDB_BRANCH} into the branch, resolve, and push.") from exc
        except PushRejected as exc:
            raise ChangeConflict(f"{exc}. Nothing was changed; try again.") from exc
        except GitError as exc:
            raise ChangeConflict(str(exc)) from exc
        released = repo.rev_list(f"{state.main}..{new_main}")
        ReleasedCommit.objects.bulk_create(
            [ReleasedCommit(sha=sha, change=change) for sha in released], ignore_conflicts=True
        )
        # A sync racing this release may have judged these commits before this transaction commits.
        UnauthorizedCommit.objects.filter(sha__in=released, status=UnauthorizedCommit.Status.OPEN).delete()
        change.state, change.merged_sha, change.released_from = State.IMPLEMENTED, new_main, state.main
        change.implemented_without_approval = emergency_unapproved
        change.released_outside_window = reason.strip() if problem else ""
        change.save()
        how = "fast-forward" if fast_forward else "merge commit"
        _event(change, acting_user, "merged", f"Released to {settings.CMDB_BRANCH} ({how})", commit=new_main,
               commits=released, outside_window=problem or "", reason=change.released_outside_window)
        if problem:
            _event(change, acting_user, "released-outside-window", change.released_outside_window,
                   commit=new_main, problem=problem)
        if emergency_unapproved:
            _event(change, acting_user, "emergency-unapproved",
                   "Emergency change released before approval: flagged until approved.", commit=new_main)
        cmdb_services.sync_request(trigger=f"release {change.reference}", acting_user=acting_user)
        change_id = change.pk
        transaction.on_commit(lambda: signals.change_released.send(sender=ChangeRequest, change_id=change_id))
    return change


def change_close(*, change: ChangeRequest, acting_user, comment: str = "") -> ChangeRequest:
    return _simple(change, acting_user, "close", State.CLOSED, "closed", comment)


def change_withdraw(*, change: ChangeRequest, acting_user, comment: str = "") -> ChangeRequest:
    return _simple(change, acting_user, "withdraw", State.WITHDRAWN, "withdrawn", comment)


def _simple(change: ChangeRequest, user, action: str, target: str, verb: str, comment: str) -> ChangeRequest:
    with transaction.atomic():
        change = _locked(change)
        _check(action, change, user)
        change.state = target
        change.save(update_fields=["state", "updated_at"])
        _event(change, user, verb, comment, commit=change.merged_sha or change.head_sha)
        transaction.on_commit(lambda: _tasks().mail_requester.delay(change.pk, verb, comment))
    return change


def change_comment(*, change: ChangeRequest, acting_user, body: str) -> Comment:
    if not permissions.can(acting_user, "comment", change):
        raise ChangeForbidden(permissions.denial("comment"))
    if not body.strip():
        raise ChangeError("A comment cannot be empty.")
    with transaction.atomic():
        comment = Comment.objects.create(change=change, author=acting_user, body=body)
        _event(change, acting_user, "commented", body, commit=change.head_sha)
    return comment


def refresh_change(*, change: ChangeRequest, repo: ConfigRepo | None = None) -> ChangeRequest:
    """Re-read the branch (after a fetch): a moved head recomputes impact and dismisses stale votes,
    returning an approved or scheduled CR to submitted; a vanished branch is flagged."""
    if not change.is_open:
        return change
    repo = repo or _repo()
    with transaction.atomic():
        change = _locked(change)
        try:
            state = _branch_state(repo, change.branch)
        except BadBranch as exc:
            if not change.branch_missing:
                change.branch_missing = True
                change.save(update_fields=["branch_missing", "updated_at"])
                _event(change, None, "branch-missing", str(exc), commit=change.head_sha)
            return change
        if state.head == change.head_sha and not change.branch_missing:
            return change
        old = change.head_sha
        _store_impact(change, state, impacts.compute_impact(repo, state.base, state.head))
        dismissed = Approval.objects.filter(change=change, dismissed_at__isnull=True).exclude(head_sha=state.head)
        count = dismissed.update(dismissed_at=timezone.now(), dismissed_reason=f"branch moved to {state.head[:10]}")
        if change.state in (State.APPROVED, State.SCHEDULED):
            change.state = State.SUBMITTED
        change.save()
        _event(change, None, "branch-moved", f"{old[:10]} → {state.head[:10]}; {count} vote(s) dismissed",
               commit=state.head, previous=old, dismissed=count)
    return change


def refresh_open_changes() -> int:
    """Refresh every open CR against the last fetch (called after each sync)."""
    repo = _repo()
    changes = list(ChangeRequest.objects.filter(state__in=ChangeRequest.OPEN_STATES))
    for change in changes:
        refresh_change(change=change, repo=repo)
    return len(changes)


# ====================================================================================================
# Baselines and unauthorized changes
# ====================================================================================================


def baseline_create(*, acting_user, name: str, note: str = "", rev: str = "") -> Baseline:
    """Tag ``rev`` (default: main's head on origin) as a baseline and push the tag."""
    if not permissions.is_staff(acting_user):
        raise ChangeForbidden("Only staff may tag baselines.")
    repo = fetch()
    try:
        sha = repo.resolve(rev) if rev else repo.origin_head(settings.CMDB_BRANCH)
    except UnknownRevision as exc:
        raise ChangeError(str(exc)) from exc
    if Baseline.objects.filter(name=name).exists() or name in repo.tags():
        raise ChangeConflict(f"A baseline or tag named {name!r} exists already.")
    problem = repo.tag_name_problem(name)
    if problem:
        raise ChangeError(f"{name[:100]!r} cannot name a baseline: {problem}.")
    try:
        repo.create_tag(name, sha, message=note or f"Baseline {name}", author=_author(acting_user))
    except UnknownRevision:
        raise ChangeError(f"{name!r} is not a valid tag name.") from None
    except GitError as exc:
        raise ChangeConflict(str(exc)) from exc
    try:
        with transaction.atomic():
            baseline = Baseline.objects.create(name=name, sha=sha, note=note, created_by=acting_user)
            _event(None, acting_user, "baseline", f"Baseline {name}", commit=sha, name=name)
    except Exception:
        # Git is not transactional: a tag without its row would be a baseline nobody recorded.
        try:
            repo.delete_tag(name)
        except GitError:
            log.exception("baseline %s: the tag was pushed but its row failed, and removing the tag failed", name)
        raise
    return baseline
