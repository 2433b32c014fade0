"""Who may do what with change requests. One table, used by services, views, templates and the API.

Roles are :mod:`portal.roles`; staff may do everything except approve their own change requests.
"""

from __future__ import annotations

from changes.models import ChangeRequest
from portal.roles import APPROVERS, REQUESTERS, VIEWERS, is_approver, is_requester, is_staff

__all__ = ["APPROVERS", "REQUESTERS", "VIEWERS", "can", "denial", "is_approver", "is_requester", "is_staff"]


def _owner_or_staff(user, change: ChangeRequest) -> bool:
    return user.is_staff or change.requester_id == user.pk


# action -> rule(user, change). Rules say nothing about states: the state machine checks those.
RULES = {
    "create": lambda user, change: is_requester(user),
    "edit": _owner_or_staff,
    "submit": _owner_or_staff,
    "withdraw": _owner_or_staff,
    "approve": lambda user, change: is_approver(user) and change.requester_id != user.pk,
    "reject": lambda user, change: is_approver(user) and change.requester_id != user.pk,
    "schedule": lambda user, change: _owner_or_staff(user, change) or is_approver(user),
    "implement": lambda user, change: is_approver(user),
    "verify": lambda user, change: _owner_or_staff(user, change) or is_approver(user),
    "close": lambda user, change: _owner_or_staff(user, change) or is_approver(user),
    "comment": lambda user, change: is_requester(user) or is_approver(user),
    "dry_run": lambda user, change: is_requester(user) or is_approver(user),
    "revert": lambda user, change: is_requester(user),
}

MESSAGES = {
    "approve": "Only approvers other than the requester may approve a change request.",
    "reject": "Only approvers other than the requester may reject a change request.",
    "implement": "Only approvers and staff may release a change to main.",
    "create": "Only requesters, approvers and staff may open change requests.",
    "revert": "Only requesters, approvers and staff may open a change request reverting a release.",
    "comment": "Viewers cannot comment; ask for the requesters group.",
}


def can(user, action: str, change: ChangeRequest | None = None) -> bool:
    if not user.is_authenticated:
        return False
    return bool(RULES[action](user, change))


def denial(action: str) -> str:
    return MESSAGES.get(action, f"You may not {action.replace('_', ' ')} this change request.")
