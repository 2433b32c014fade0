"""Who may do what with notifications: targets hold secrets and reach outside systems, so staff only."""

from __future__ import annotations

from portal.roles import is_staff

DENIAL = "Only staff may configure notifications and read their delivery log."


def can_manage(user) -> bool:
    return is_staff(user)
