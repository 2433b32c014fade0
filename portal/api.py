"""API plumbing shared by every app: one JSON error shape."""

from __future__ import annotations

from django.http import Http404
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from cmdb.gitrepo import UnknownRevision


def exception_handler(exc, context):
    """Every API error is JSON ``{"detail": "<message>"}``; unknown revisions are 404."""
    if isinstance(exc, UnknownRevision):
        return Response({"detail": str(exc)}, status=404)
    if isinstance(exc, Http404):
        return Response({"detail": str(exc) or "Not found."}, status=404)
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict) and "detail" not in response.data:
        response.data = {"detail": "Invalid request.", "errors": response.data}
    elif response is not None and isinstance(response.data, list):
        response.data = {"detail": " ".join(str(x) for x in response.data)}
    return response
