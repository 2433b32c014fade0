"""Rollback: a change request whose branch undoes the release of another (``change_revert``).

A workflow of ``changes.services`` kept in its own module for size, under the same rules: permission
and state checked with the original's row locked, the new change request and the original's
"revert-opened" record entry written in one transaction. Git is not transactional: the branch pushed
for the revert is deleted again when anything after the push fails, so a refusal leaves nothing.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from changes import permissions, services
from changes.models import ChangeRequest
from cmdb.gitrepo import ConfigRepo, GitError, MergeConflict, PushRejected

State = ChangeRequest.State
Type = ChangeRequest.Type

REVERTIBLE = ChangeRequest.AFTER_THE_FACT_STATES  # released: implemented, verified, closed
# A revert in one of these states still stands for the original: a second one would race it. A
# rejected revert may be resubmitted, so it counts until withdrawn.
PENDING = (*ChangeRequest.OPEN_STATES, State.REJECTED)
REVERT_TYPES = (Type.NORMAL, Type.EMERGENCY)
_BRANCH_TRIES = 20


def pending_revert(change: ChangeRequest) -> ChangeRequest | None:
    """The revert of ``change`` still on its way (it blocks another), if any."""
    return change.reverted_by.filter(state__in=PENDING).order_by("pk").first()


def change_revert(*, change: ChangeRequest, acting_user, type: str = Type.NORMAL, reason: str = "") -> ChangeRequest:
    """Open a draft change request whose branch, ``revert/CR-<n>-<k>`` on origin, is one commit on
    top of main undoing the release of ``change``; it then needs approval and release like any other.

    Refused (nothing left behind: no branch, no change request) for viewers (403); a change not
    released (409); a revert of it already pending (409, named); a release no longer on main, or main
    changed the same lines since (409, with the paths); an unknown type, or an emergency without a
    reason (400).
    """
    pushed: tuple[str, str] | None = None
    try:
        with transaction.atomic():
            original = services._locked(change)
            _refuse(original, acting_user, type, reason)
            repo = services.fetch()
            main = repo.origin_head(settings.CMDB_BRANCH)
            undo = _revert_commit(repo, original, main, acting_user, reason)
            branch = _push_new_branch(repo, original, undo.sha)
            pushed = (branch, undo.sha)
            revert = services.change_create(
                acting_user=acting_user, branch=branch, title=f"Revert {original.reference}: {original.title}"[:200],
                description=_description(original, undo.head, undo.base, main, reason), type=type,
                risk=original.risk, rollback_plan=_rollback_plan(original), watchers=_watchers(original, acting_user),
            )
            revert.reverts = original
            revert.save(update_fields=["reverts", "updated_at"])
            services.record_event(
                change=original, actor=acting_user, action="revert-opened", commit=undo.sha,
                message=f"{revert.reference} opened to revert this release ({type}){': ' + reason if reason else ''}",
                revert=revert.pk, branch=branch, release_head=undo.head, release_base=undo.base,
            )
    except BaseException:
        if pushed is not None:
            services.branch_discard(branch=pushed[0], head=pushed[1])
        raise
    return revert


def _refuse(original: ChangeRequest, user, type: str, reason: str) -> None:
    """403, then 409, then 400: the order of every action (the body is read last)."""
    if not permissions.can(user, "revert", original):
        raise services.ChangeForbidden(permissions.denial("revert"))
    if original.state not in REVERTIBLE:
        raise services.IllegalTransition(
            f"{original.reference} is {original.state}: only a released change (implemented, verified or closed) "
            "can be reverted."
        )
    pending = pending_revert(original)
    if pending is not None:
        raise services.ChangeConflict(
            f"{pending.reference} ({pending.state}) already reverts {original.reference}: "
            "carry on with it, or withdraw it first."
        )
    if type not in REVERT_TYPES:
        raise services.ChangeError("A revert is a normal or an emergency change.")
    if type == Type.EMERGENCY and not reason.strip():
        raise services.ChangeError("An emergency revert needs a reason.")


def _revert_commit(repo: ConfigRepo, original: ChangeRequest, main: str, user, reason: str):
    release = list(original.released_commits.values_list("sha", flat=True))
    ref, trunk = original.reference, settings.CMDB_BRANCH
    if not original.merged_sha or not release:
        raise services.ChangeConflict(f"{ref} has no recorded release to revert.")
    if not repo.is_ancestor(original.merged_sha, main):
        raise services.ChangeConflict(
            f"The release of {ref} ({original.merged_sha[:10]}) is no longer on {trunk}: there is nothing to revert."
        )
    message = f"Revert {ref}: {original.title}\n\nUndoes the release of {ref} ({original.merged_sha}).\n"
    if reason.strip():
        message += f"\nReason: {reason.strip()}\n"
    try:
        undo = repo.revert(main, release, message=message, author=services._author(user))
    except MergeConflict as exc:
        raise services.ChangeConflict(
            f"{trunk} changed the same lines since {ref} was released, in: {', '.join(exc.paths)}. "
            "Revert it by hand on a branch, then open a change request for that branch."
        ) from exc
    except GitError as exc:
        raise services.ChangeConflict(f"Cannot revert {ref}: {exc}") from exc
    if not undo.paths:
        raise services.ChangeConflict(f"{trunk} no longer has any change of {ref}: there is nothing to revert.")
    return undo


def _push_new_branch(repo: ConfigRepo, original: ChangeRequest, sha: str) -> str:
    """Push ``sha`` as the first free ``revert/CR-<n>-<k>`` (created only if absent on origin)."""
    taken = set(repo.branches())
    names = (f"revert/{original.reference}-{k}" for k in range(1, 1000))
    for branch in [n for n in names if n not in taken][:_BRANCH_TRIES]:
        try:
            repo.push(sha, branch, expect="")
        except PushRejected:
            continue  # someone pushed that name since the fetch
        except GitError as exc:
            raise services.ChangeConflict(f"Cannot push the revert branch: {exc}") from exc
        return branch
    raise services.ChangeConflict(f"Origin refused every revert branch name for {original.reference}.")


def _description(original: ChangeRequest, head: str, base: str, main: str, reason: str) -> str:
    text = (
        f"Reverts the release of [{original.reference}]({original.get_absolute_url()}): {original.title}.\n\n"
        f"The branch is one commit on {settings.CMDB_BRANCH} at `{main[:10]}` undoing the release, "
        f"`{base[:10]}..{head[:10]}` (released as `{original.merged_sha[:10]}`)."
    )
    if reason.strip():
        text += f"\n\n**Reason:** {reason.strip()}"
    if original.rollback_plan.strip():
        text += f"\n\n**Rollback plan of {original.reference}:**\n\n{original.rollback_plan.strip()}"
    return text


def _rollback_plan(original: ChangeRequest) -> str:
    return (f"Release {original.reference}'s change again: once this revert is released, revert it "
            f"(the Revert button on its page), which re-applies {original.reference}.")


def _watchers(original: ChangeRequest, user) -> list:
    watchers = {w.pk: w for w in original.watchers.all()}
    if original.requester_id != user.pk:
        watchers[original.requester_id] = original.requester
    return list(watchers.values())
