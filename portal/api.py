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
        response.data = {"detail": first_message(response.data) or "Invalid request.", "errors": response.data}
    elif response is not None and isinstance(response.data, list):
        response.data = {"detail": " ".join(str(x) for x in response.data)}
    return response


def first_message(errors, prefix: str = "") -> str:
    """The first message of a (possibly nested) DRF error structure, prefixed with where it is:
    ``machines.1: This field may not be blank.``"""
    if isinstance(errors, dict):
        for key, value in errors.items():
            where = prefix if key == "non_field_errors" else f"{prefix}.{key}" if prefix else str(key)
            found = first_message(value, where)
            if found:
                return found
        return ""
    if isinstance(errors, list):
        for index, value in enumerate(errors):
            nested = isinstance(value, (dict, list))
            found = first_message(value, (f"{prefix}.{index}" if prefix else str(index)) if nested else prefix)
            if found:
                return found
        return ""
    text = str(errors)
    return f"{prefix}: {text}" if prefix and text else text
