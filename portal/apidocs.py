"""The API docs pages' own assets: nothing they show is fetched from outside the portal.

Redoc's bundle (drf-spectacular-sidecar) always draws its vendor's logo from ``cdn.redoc.ly``; the
Content-Security-Policy refused the image, but the page still asked for it. ``redoc_bundle`` serves the
same bundle with that address replaced by the portal's own icon, so no request leaves the portal.
"""

from __future__ import annotations

from functools import lru_cache

from django.contrib.staticfiles import finders
from django.http import HttpRequest, HttpResponse
from django.templatetags.static import static
from django.views.decorators.http import require_safe

REDOC_BUNDLE = "drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js"
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@lru_cache(maxsize=1)
def _patched_redoc(logo: str) -> bytes:
    path = finders.find(REDOC_BUNDLE)
    if not path:
        raise FileNotFoundError(REDOC_BUNDLE)
    with open(path, "rb") as fh:
        return fh.read().replace(REDOC_LOGO.encode(), logo.encode())


@require_safe
def redoc_bundle(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(_patched_redoc(static("img/favicon.svg")), content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = "private, max-age=86400"
    return response
