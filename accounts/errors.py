"""Refusals of the accounts app (see :mod:`portal.errors`)."""

from portal.errors import ServiceError


class TokenError(ServiceError):
    """A token request that cannot be honoured (bad expiry, not yours, already revoked)."""
