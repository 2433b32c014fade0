"""Who may do what with dry runs (roles: :mod:`portal.roles`)."""

from __future__ import annotations

from portal.roles import is_approver, is_requester

DRY_RUN_DENIAL = "Only requesters, approvers and staff may start dry runs."


def can_dry_run(user, change=None) -> bool:
    """Anyone who may propose or approve a change may ask what it would do (it never writes)."""
    return is_requester(user) or is_approver(user)


def can_cancel(user, job) -> bool:
    return user.is_authenticated and (user.is_staff or job.requested_by_id == user.pk or is_approver(user))


def can_deploy(user) -> bool:
    """Deploys write to machines: approvers and staff (the environment's policy may forbid the
    requester deploying their own change request, checked by the service)."""
    return is_approver(user)
