"""``/api/``: the portal's one DRF router, the OpenAPI schema and its docs.

Every app registers its viewsets on ``router`` and adds its plain API views to ``app_patterns``.
API views are exempt from ``LoginRequiredMiddleware`` (``api_view_patterns`` marks them; DRF's
``as_view`` does too, this keeps it true for any plain view added here), so a token client gets
DRF's 401/403 JSON instead of a redirect to the login page; DRF's permission classes
(IsAuthenticated by default) do the checking. The HTML docs (``/api/docs/``, ``/api/redoc/``) are
for people: they stay behind the login page, and load their assets from the sidecar's static files.
"""

from __future__ import annotations

from csp.decorators import csp_update
from django.contrib.auth.decorators import login_not_required, login_required
from django.http import JsonResponse
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter
from rest_framework.settings import api_settings

from accounts import api as accounts_api
from audits import api as audits_api
from changes import api as changes_api
from cmdb import api as cmdb_api
from deploys import api as deploys_api
from notifications import api as notifications_api
from portal import status_api
from portal.apidocs import redoc_bundle


class ApiRouter(DefaultRouter):
    # Detail lookups are repository paths ("production/web1/nginx"), which may contain dots:
    # no ".json"-style suffixes.
    include_format_suffixes = False


def api_view_patterns(patterns: list) -> list:
    """Mark every view of ``patterns`` (recursively) as not needing the login page."""
    for p in patterns:
        if hasattr(p, "url_patterns"):
            api_view_patterns(p.url_patterns)
        else:
            login_not_required(p.callback)
    return patterns


@csrf_exempt  # nothing is done here; a POST must get the JSON 404, not Django's HTML CSRF page
@login_not_required
def api_not_found(request, *args, **kwargs):
    return JsonResponse({"detail": "Not found."}, status=404)


DOCS_CSP = csp_update({"style-src": ["'unsafe-inline'"], "worker-src": ["blob:"]})

router = ApiRouter()
app_patterns: list = []
app_patterns += cmdb_api.register(router)
app_patterns += changes_api.register(router)
app_patterns += deploys_api.urlpatterns()
app_patterns += audits_api.urlpatterns()
app_patterns += accounts_api.urlpatterns()
app_patterns += status_api.urlpatterns()
app_patterns += notifications_api.register(router)

urlpatterns = [
    *api_view_patterns(app_patterns),
    path("", include(api_view_patterns(router.urls))),
    # The schema answers token clients too; the docs pages are for people logged in to the portal.
    path(
        "schema/",
        login_not_required(SpectacularAPIView.as_view(permission_classes=api_settings.DEFAULT_PERMISSION_CLASSES)),
        name="api-schema",
    ),
    # Swagger UI's split view loads its start-up script from a URL, not inline; both UIs style their
    # elements inline, so these two pages (only) allow inline styles and Redoc's blob: worker.
    path("docs/", login_required(DOCS_CSP(SpectacularSwaggerSplitView.as_view(
        url_name="api-schema", template_name="cmdb/api/swagger_ui.html"))), name="api-docs"),
    path(
        "redoc/",
        login_required(DOCS_CSP(SpectacularRedocView.as_view(url_name="api-schema",
                                                             template_name="cmdb/api/redoc.html"))),
        name="api-redoc",
    ),
    path("redoc/redoc.standalone.js", login_required(redoc_bundle), name="api-redoc-bundle"),
    # Keep last: anything else under /api/ is a JSON 404, never an HTML page.
    re_path(r"^.*$", api_not_found),
]
