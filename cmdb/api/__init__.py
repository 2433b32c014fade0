"""The REST API of CM identification: configuration items, lint, search, sync and the push webhook.

Read from the index (the indexed commit) through the ORM, or from Git at another revision through
``cmdb.services``. ``register(router)`` puts the routes on the portal's one router;
``portal/api_urls.py`` mounts them under ``/api/``.

- ``items``: ``/api/environments/``, ``/api/machines/``, ``/api/applications/``, ``/api/commons/``
  and their detail routes by repository path (``/api/applications/production/web1/nginx/``);
- ``views``: ``/api/lint/``, ``/api/search/``, ``/api/sync/``;
- ``export``: ``/api/export/?rev=``, the offline export (a zip);
- ``webhook``: ``/api/hooks/push/`` (signed with ``CMDB_WEBHOOK_SECRET``, no login);
- ``serializers``: the JSON shapes, which are also the OpenAPI schema.
"""

from __future__ import annotations

from django.urls import path

from cmdb.api.export import DocsExportView
from cmdb.api.items import ApplicationViewSet, CommonViewSet, EnvironmentViewSet, MachineViewSet
from cmdb.api.views import LintWarningViewSet, SearchView, SyncView
from cmdb.api.webhook import PushWebhookView


def register(router) -> list:
    """Register the viewsets on ``router``; return the plain API views' URL patterns."""
    router.register("environments", EnvironmentViewSet, basename="environment")
    router.register("machines", MachineViewSet, basename="machine")
    router.register("applications", ApplicationViewSet, basename="application")
    router.register("commons", CommonViewSet, basename="common")
    router.register("lint", LintWarningViewSet, basename="lint")
    return [
        path("search/", SearchView.as_view(), name="search"),
        path("sync/", SyncView.as_view(), name="sync"),
        path("hooks/push/", PushWebhookView.as_view(), name="hook-push"),
        path("export/", DocsExportView.as_view(), name="docs-export"),
    ]
