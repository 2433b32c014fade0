"""The one family of refusals: every service error extends :class:`ServiceError`.

A service refuses an action by raising a subclass with a message fit for users and an HTTP status.
The API answers ``{"detail": message}`` with that status (:func:`portal.api.exception_handler`);
the browser gets the refusal page with the same status (:class:`portal.middleware.RefusalMiddleware`),
or, on a form, the form again with the message so that nothing typed is lost.
"""

from __future__ import annotations


class ServiceError(Exception):
    """A refused action; ``str()`` is the message shown to users."""

    status = 400


class Forbidden(ServiceError):
    """The user's role does not allow the action."""

    status = 403


class NotFound(ServiceError):
    status = 404


class Conflict(ServiceError):
    """The object is not in a state that allows the action, or another action won the race."""

    status = 409
