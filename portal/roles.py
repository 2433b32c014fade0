"""The portal's roles: the groups created by cmdb's first migration, read once per request.

``viewers`` read, ``requesters`` propose changes, ``approvers`` vote, release and deploy, staff
administer. Each app's ``permissions.py`` states its rules in these terms.
"""

from __future__ import annotations

REQUESTERS, APPROVERS, VIEWERS = "requesters", "approvers", "viewers"


def groups(user) -> set[str]:
    """The user's group names, cached on the user object (one query per request)."""
    cached = getattr(user, "_cm_groups", None)
    if cached is None:
        cached = set(user.groups.values_list("name", flat=True)) if user.is_authenticated else set()
        user._cm_groups = cached
    return cached


def is_staff(user) -> bool:
    return user.is_authenticated and user.is_staff


def is_requester(user) -> bool:
    return user.is_authenticated and (user.is_staff or bool(groups(user) & {REQUESTERS, APPROVERS}))


def is_approver(user) -> bool:
    return user.is_authenticated and (user.is_staff or APPROVERS in groups(user))
