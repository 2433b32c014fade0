"""``GET /api/export/?rev=``: the offline export as a zip (see :mod:`cmdb.export`)."""

from __future__ import annotations

import json

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from cmdb.export import ExportError, ExportThrottle, export_response
from cmdb.gitrepo import GitError, UnknownRevision
from portal.api import error_responses
from portal.errors import ServiceError


class ZipRenderer(BaseRenderer):
    """Lets a client ask for ``Accept: application/zip``; errors still go out as JSON bytes."""

    media_type = "application/zip"
    format = "zip"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return json.dumps(data).encode() if data is not None else b""


class ExportUnavailable(ServiceError):
    status = 503


class DocsExportView(APIView):
    """Every README rendered, the runbook of every machine and environment, every file with size and
    SHA-256 (secrets named only), as static HTML in one zip that opens from disk."""

    renderer_classes = [JSONRenderer, ZipRenderer]
    throttle_classes = [*api_settings.DEFAULT_THROTTLE_CLASSES, ExportThrottle]

    @extend_schema(
        summary="Offline export of the documentation at a revision (zip)",
        parameters=[OpenApiParameter("rev", str, description="Branch, tag (baseline) or commit; default: the indexed commit.")],
        responses={
            (200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY, description="cm-docs-<sha>.zip"),
            **error_responses(400, 401, 429, 503),
        },
    )
    def get(self, request):
        rev = (request.query_params.get("rev") or "").strip() or None
        try:
            return export_response(rev)
        except UnknownRevision as exc:
            raise ServiceError(f"Unknown revision: {exc}") from exc
        except (GitError, ExportError) as exc:
            raise ExportUnavailable(str(exc)) from exc
