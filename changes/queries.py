"""Read-only queries of the change-control UI (list filters, the home card). Each is one query.

Nothing here changes a row or decides a permission: ``changes.services`` and ``changes.permissions`` do.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet

from changes import permissions
from changes.models import Approval, ChangeRequest, FreezePeriod, UnauthorizedCommit

State = ChangeRequest.State


def awaiting_approval(user) -> QuerySet[ChangeRequest]:
    """Change requests this user may vote on now and has not voted on for their current head.

    Submitted CRs, and emergency CRs released before approval (they still need their votes); never
    the user's own, never one whose branch is gone (a vote on it would be refused).
    """
    if not permissions.is_approver(user):
        return ChangeRequest.objects.none()
    voted = Approval.objects.filter(change=OuterRef("pk"), user=user, head_sha=OuterRef("head_sha"),
                                    dismissed_at__isnull=True)
    return (
        ChangeRequest.objects.filter(
            Q(state=State.SUBMITTED)
            | Q(state__in=ChangeRequest.AFTER_THE_FACT_STATES, implemented_without_approval=True, approved_after_the_fact=False)
        )
        .filter(branch_missing=False)
        .exclude(requester=user)
        .exclude(Exists(voted))
    )


def open_counts() -> dict[str, int]:
    """Open change requests per state (every open state present, zero when none)."""
    counts = dict(
        ChangeRequest.objects.filter(state__in=ChangeRequest.OPEN_STATES).order_by()
        .values_list("state").annotate(n=Count("id"))
    )
    return {state: counts.get(state, 0) for state in ChangeRequest.OPEN_STATES}


def open_unauthorized() -> QuerySet[UnauthorizedCommit]:
    return UnauthorizedCommit.objects.filter(status=UnauthorizedCommit.Status.OPEN).order_by("-committed_at", "-pk")


def live_approvals_annotation() -> Count:
    """Approvals that count for the current head (as ``services.live_approvals``), for list queries."""
    return Count(
        "approvals__user",
        distinct=True,
        filter=Q(approvals__decision=Approval.Decision.APPROVE, approvals__dismissed_at__isnull=True,
                 approvals__head_sha=F("head_sha")),
    )


def freezes_overlapping(start: datetime, end: datetime, environments: list[str]):
    return FreezePeriod.of_environments(environments).filter(start__lt=end, end__gt=start)


def conflicts_for(change: ChangeRequest) -> dict[str, list]:
    """Other open CRs touching the same CIs, and overlapping windows on the same machines."""
    paths = list(change.impacted.values_list("path", flat=True))
    same_ci = (
        ChangeRequest.objects.filter(state__in=ChangeRequest.OPEN_STATES, impacted__path__in=paths)
        .exclude(pk=change.pk).distinct().order_by("pk")
    )
    overlapping: list[ChangeRequest] = []
    if change.planned_start and change.planned_end:
        machines = [m for m in change.impacted.values_list("machine", flat=True).distinct() if m]
        overlapping = list(
            ChangeRequest.objects.filter(
                state__in=ChangeRequest.OPEN_STATES, impacted__machine__in=machines,
                planned_start__lt=change.planned_end, planned_end__gt=change.planned_start,
            ).exclude(pk=change.pk).distinct().order_by("pk")
        )
    freezes = []
    if change.planned_start and change.planned_end and change.type != ChangeRequest.Type.EMERGENCY:
        freezes = list(freezes_overlapping(change.planned_start, change.planned_end, change.environments()))
    return {"same_ci": list(same_ci), "overlapping_windows": overlapping, "freezes": freezes}
