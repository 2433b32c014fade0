"""Commits that reached main without a released change request: flagged after each sync, then
linked to a change or acknowledged by staff (each decision recorded)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from changes import permissions
from changes.models import ChangeRequest, ReleasedCommit, UnauthorizedCommit
from changes.services import ChangeError, ChangeForbidden, IllegalTransition, _event, _repo
from cmdb.gitrepo import GitError


def unauthorized_scan(*, previous: str | None, current: str) -> int:
    """Flag commits that reached main between two syncs without coming from a released CR."""
    if not previous or previous == current:
        return 0
    repo = _repo()
    try:
        # After a force-push this is what is new relative to the old head, which is what to judge.
        shas = repo.rev_list(f"{previous}..{current}")
    except GitError:
        return 0
    with transaction.atomic():
        # Read inside the transaction: on SQLite it holds the write lock, so no release commits between.
        released = set(ReleasedCommit.objects.filter(sha__in=shas).values_list("sha", flat=True))
        known = set(UnauthorizedCommit.objects.filter(sha__in=shas).values_list("sha", flat=True))
        new = [sha for sha in shas if sha not in released and sha not in known]
        for sha in new:
            info = repo.commit(sha)
            UnauthorizedCommit.objects.create(sha=sha, summary=info.summary[:500], author=info.author_name[:200],
                                              committed_at=info.committed_at)
            _event(None, None, "unauthorized-commit", info.summary, commit=sha)
    return len(new)


def unauthorized_link(*, commit: UnauthorizedCommit, change: ChangeRequest, acting_user, reason: str = "") -> UnauthorizedCommit:
    return _resolve_unauthorized(commit, acting_user, UnauthorizedCommit.Status.LINKED, reason, change)


def unauthorized_acknowledge(*, commit: UnauthorizedCommit, acting_user, reason: str) -> UnauthorizedCommit:
    if not reason.strip():
        raise ChangeError("Acknowledging an unauthorized change needs a reason.")
    return _resolve_unauthorized(commit, acting_user, UnauthorizedCommit.Status.ACKNOWLEDGED, reason, None)


def _resolve_unauthorized(commit, user, status, reason, change) -> UnauthorizedCommit:
    if not permissions.is_staff(user):
        raise ChangeForbidden("Only staff may resolve unauthorized changes.")
    with transaction.atomic():
        commit = UnauthorizedCommit.objects.select_for_update().get(pk=commit.pk)
        if commit.status != UnauthorizedCommit.Status.OPEN:
            raise IllegalTransition(f"This commit is already {commit.status}.")
        commit.status, commit.change, commit.reason = status, change, reason
        commit.resolved_by, commit.resolved_at = user, timezone.now()
        commit.save()
        _event(change, user, f"unauthorized-{status}", reason, commit=commit.sha)
    return commit
