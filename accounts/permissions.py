"""Who may see and revoke which tokens (roles: :mod:`portal.roles`)."""

from __future__ import annotations


def can_manage_token(user, token) -> bool:
    """Your own tokens; staff any, so a leaked token can be revoked without its owner."""
    return user.is_authenticated and (token.user_id == user.pk or user.is_staff)


def can_create_token_for(user, owner) -> bool:
    """Everyone makes their own; staff may make one for a service account (e.g. ``ci-bot``)."""
    return user.is_authenticated and (owner.pk == user.pk or user.is_staff)
