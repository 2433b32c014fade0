"""``/export/?rev=``: the offline export as a download, for viewers and up (see :mod:`cmdb.export`)."""

from __future__ import annotations

from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.views.decorators.http import require_safe

from cmdb.export import ExportError, ExportThrottle, export_response
from cmdb.gitrepo import GitError, UnknownRevision
from cmdb.views import _message, _rev


@require_safe
def docs_export(request: HttpRequest) -> HttpResponseBase:
    throttle = ExportThrottle()
    if not throttle.allow_request(request, None):
        wait = int(throttle.wait() or 60)
        response = _message(request, "Too many exports",
                            f"Each person may make a few offline exports per hour; try again in {wait} s.", status=429)
        response["Retry-After"] = str(wait)
        return response
    try:
        return export_response(_rev(request))
    except UnknownRevision as exc:
        return _message(request, "Unknown revision", str(exc), status=400,
                        hint="Use a branch, a tag (a baseline) or a commit of the configuration repository.")
    except (GitError, ExportError) as exc:
        return _message(request, "Export unavailable", str(exc), status=503)
