"""The REST API of change control, over ``changes.services``.

``register(router)`` puts the routes on the portal's one router; ``portal/api_urls.py`` mounts them
under ``/api/``.

- ``/api/changes/``: list (filters), create from a branch, detail, PATCH (edit), and the actions
  ``submit``, ``approve``, ``reject``, ``schedule``, ``implement``, ``verify``, ``close``,
  ``withdraw``, ``revert`` (opens the change request undoing a release), ``comments`` (GET, POST) and
  ``diff`` (secrets masked without ``cmdb.view_secret``);
- ``/api/baselines/``: list, tag (staff);
- ``/api/unauthorized-commits/``: list, detail, ``acknowledge`` and ``link`` (staff);
- ``/api/change-windows/``: standing change windows, list and detail; add and remove (staff);
- ``/api/events/``: the append-only record, read-only.
"""

from __future__ import annotations

from changes.api.views import (
    BaselineViewSet,
    ChangeEventViewSet,
    ChangeRequestViewSet,
    UnauthorizedCommitViewSet,
)
from changes.api.windows import ChangeWindowViewSet


def register(router) -> list:
    """Register the viewsets on ``router``; return plain API views' URL patterns (none)."""
    router.register("changes", ChangeRequestViewSet, basename="change")
    router.register("baselines", BaselineViewSet, basename="baseline")
    router.register("unauthorized-commits", UnauthorizedCommitViewSet, basename="unauthorized-commit")
    router.register("change-windows", ChangeWindowViewSet, basename="change-window")
    router.register("events", ChangeEventViewSet, basename="event")
    return []
