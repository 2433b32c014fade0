"""Who may do what in audits (roles: :mod:`portal.roles`)."""

from __future__ import annotations

from portal.roles import is_approver, is_requester, is_staff


def can_start(user) -> bool:
    """Audits look at every machine: staff only (the monthly schedule needs no user)."""
    return is_staff(user)


def can_acknowledge(user) -> bool:
    return is_approver(user)


def can_open_change(user) -> bool:
    """Adopt and restore open a change request: the same people who may open one."""
    return is_requester(user)


def can_check(user) -> bool:
    return is_requester(user)


OPEN_CHANGE_DENIAL = "Only requesters, approvers and staff may open change requests."
