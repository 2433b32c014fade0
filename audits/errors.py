"""The refusals of audits (one family with every app's: :mod:`portal.errors`)."""

from __future__ import annotations

from portal.errors import ServiceError


class AuditError(ServiceError):
    """Base of audit errors; ``str()`` is the message shown to users."""

    status = 400


class AuditForbidden(AuditError):
    status = 403


class AuditConflict(AuditError):
    """Another run of the scope is active, the finding was handled meanwhile, or what it saw moved since."""

    status = 409
