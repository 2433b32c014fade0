"""API plumbing shared by every app: one JSON error shape, one exception handler.

Views let errors propagate: a service's refusal (:class:`portal.errors.ServiceError`) becomes
``{"detail": message}`` with its status, a model's ``ValidationError`` and a serializer's errors
become 400 ``{"detail": first message, "errors": {...}}``, an unknown revision 404.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework import status as http_status
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

from cmdb.gitrepo import UnknownRevision
from portal.errors import ServiceError


class ErrorSerializer(serializers.Serializer):
    """Every error answer of the API (the schema's one ``Error`` component)."""

    detail = serializers.CharField()


ERROR_DESCRIPTIONS = {
    400: "Invalid input, or refused by the rules (the message says why).",
    401: "Not logged in, or no valid token.",
    403: "Not allowed for your role.",
    404: "No such object.",
    409: "Not possible in the current state, or Git refused (the message says why).",
    413: "The body is too large.",
    429: "Too many requests: try again after the Retry-After header's seconds.",
    503: "A service the portal needs cannot be reached.",
}


def error_responses(*codes: int) -> dict[int, OpenApiResponse]:
    """``extend_schema(responses=...)`` entries for error statuses, all with :class:`ErrorSerializer`."""
    return {code: OpenApiResponse(ErrorSerializer, description=ERROR_DESCRIPTIONS[code]) for code in codes}


def absolute(request, url: str) -> str:
    """Every URL the API answers with is absolute: clients follow it as it is."""
    return request.build_absolute_uri(url)


class AbsoluteURLField(serializers.URLField):
    """A read-only link to the portal, absolute when the serializer's context holds the request
    (clients follow it as it is); by default the object's ``get_absolute_url``."""

    def __init__(self, **kwargs):
        kwargs.setdefault("source", "get_absolute_url")
        kwargs["read_only"] = True
        super().__init__(**kwargs)

    def to_representation(self, value) -> str:
        request = self.context.get("request")
        return absolute(request, value) if request is not None else str(value)


def accepted(request, data, *, location: str, status: int = http_status.HTTP_202_ACCEPTED) -> Response:
    """A 201 (created) or 202 (queued) answer: ``Location`` is the absolute URL of the resource, where
    a client reads it (202: polls it)."""
    return Response(data, status=status, headers={"Location": absolute(request, location)})


def created(request, data, *, location: str) -> Response:
    return accepted(request, data, location=location, status=http_status.HTTP_201_CREATED)


def exception_handler(exc, context):
    """Every API error is JSON ``{"detail": "<message>"}``; unknown revisions are 404."""
    if isinstance(exc, ServiceError):
        return Response({"detail": str(exc)}, status=exc.status)
    if isinstance(exc, DjangoValidationError):
        errors = exc.message_dict if hasattr(exc, "error_dict") else {api_settings.NON_FIELD_ERRORS_KEY: exc.messages}
        return Response({"detail": first_message(errors) or "Invalid request.", "errors": errors}, status=400)
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
