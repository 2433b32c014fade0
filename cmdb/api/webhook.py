"""The push webhook: origin (GitHub or GitLab) says it was pushed to, and the portal syncs."""

from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import parse_qs

from django.conf import settings
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import ParseError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from cmdb import services
from cmdb.api.serializers import WebhookResponseSerializer
from portal.api import ErrorSerializer, accepted

WEBHOOK_MAX_BYTES = 25 * 1024 * 1024  # GitHub caps push payloads at 25 MB


def _signature_ok(request, body: bytes, secret: str) -> bool:
    github = request.headers.get("X-Hub-Signature-256", "")
    if github:
        if not github.startswith("sha256="):
            return False
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(github.removeprefix("sha256=").strip().lower().encode(), expected.encode())
    gitlab = request.headers.get("X-Gitlab-Token", "")
    if gitlab:
        return hmac.compare_digest(gitlab.encode(), secret.encode())
    return False


def _payload(request, body: bytes) -> dict:
    """The JSON payload (GitHub may also send it form-encoded as ``payload=``); ParseError if malformed."""
    try:
        text = body.decode("utf-8")
        if request.content_type == "application/x-www-form-urlencoded":
            text = parse_qs(text).get("payload", [""])[0]
        data = json.loads(text)
    except (UnicodeDecodeError, ValueError):
        raise ParseError("The body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ParseError("The body must be a JSON object.")
    return data


class PushWebhookView(APIView):
    """Origin tells the portal it was pushed to: sync now instead of waiting for the periodic sync.

    Authenticated by ``CMDB_WEBHOOK_SECRET`` only (no session, no token, no CSRF): GitHub's
    ``X-Hub-Signature-256`` HMAC of the raw body, or GitLab's ``X-Gitlab-Token``. Every push triggers
    a sync whatever the branch (the index may cover other branches later); the reply reports the ref.
    """

    authentication_classes: list = []
    permission_classes = [AllowAny]
    parser_classes: list = []  # the raw body is read (and signed) as it came

    @extend_schema(
        summary="Push webhook (GitHub / GitLab)",
        auth=[],
        request={"application/json": OpenApiTypes.OBJECT},
        parameters=[
            OpenApiParameter("X-Hub-Signature-256", OpenApiTypes.STR, OpenApiParameter.HEADER,
                             description="GitHub: sha256=<HMAC-SHA256 hex of the body with the secret>."),
            OpenApiParameter("X-Gitlab-Token", OpenApiTypes.STR, OpenApiParameter.HEADER,
                             description="GitLab: the secret itself."),
            OpenApiParameter("X-GitHub-Delivery", OpenApiTypes.STR, OpenApiParameter.HEADER,
                             description="GitHub's delivery id (GitLab: X-Gitlab-Event-UUID): a replay is not acted on."),
            OpenApiParameter("X-GitHub-Event", OpenApiTypes.STR, OpenApiParameter.HEADER,
                             description='"ping" is answered with pong; anything else triggers a sync.'),
        ],
        responses={
            200: OpenApiResponse(WebhookResponseSerializer, description="pong, or a replayed delivery (nothing done)"),
            202: OpenApiResponse(WebhookResponseSerializer, description="a sync was asked for"),
            400: OpenApiResponse(ErrorSerializer, description="malformed JSON"),
            403: OpenApiResponse(ErrorSerializer, description="missing or wrong signature"),
            413: OpenApiResponse(ErrorSerializer, description="body too large"),
            503: OpenApiResponse(ErrorSerializer, description="webhook disabled (no CMDB_WEBHOOK_SECRET)"),
        },
    )
    def post(self, request):
        secret = settings.CMDB_WEBHOOK_SECRET
        if not secret:
            return Response({"detail": "The push webhook is disabled: set CMDB_WEBHOOK_SECRET to enable it."},
                            status=status.HTTP_503_SERVICE_UNAVAILABLE)
        # Everything that can be refused without the body is refused before reading it: an
        # unauthenticated caller never makes the portal read megabytes.
        refused = Response({"detail": "Missing or wrong webhook signature."}, status=status.HTTP_403_FORBIDDEN)
        github = request.headers.get("X-Hub-Signature-256", "")
        gitlab = request.headers.get("X-Gitlab-Token", "")
        if not github and not (gitlab and hmac.compare_digest(gitlab.encode(), secret.encode())):
            return refused
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > WEBHOOK_MAX_BYTES:
            return Response({"detail": "The body is too large."}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        body = request._request.read(WEBHOOK_MAX_BYTES + 1)
        if len(body) > WEBHOOK_MAX_BYTES:
            return Response({"detail": "The body is too large."}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        if not _signature_ok(request, body, secret):
            return refused
        data = _payload(request, body)
        event = request.headers.get("X-GitHub-Event") or request.headers.get("X-Gitlab-Event")
        if event == "ping":
            return Response({"status": "pong", "event": event})
        # A signed delivery is acted on once. GitHub's signature covers the body only, so the body's
        # digest is remembered as well as the delivery id (a replay may come with a new id).
        keys = ["body:" + hashlib.sha256(body).hexdigest()]
        delivery = request.headers.get("X-GitHub-Delivery") or request.headers.get("X-Gitlab-Event-UUID")
        if delivery:
            keys.append("id:" + delivery.strip())
        if not services.webhook_delivery_record(keys=keys):
            return Response({"status": "duplicate", "event": event, "detail": "This delivery was received already."})
        ref = data.get("ref") if isinstance(data.get("ref"), str) else None
        branch = ref.removeprefix("refs/heads/") if ref and ref.startswith("refs/heads/") else None
        services.sync_request(trigger="webhook")
        # Location: the sync state, where the queued sync shows.
        return accepted(request, {"status": "queued", "event": event, "ref": ref, "branch": branch,
                                  "indexed_branch": settings.CMDB_BRANCH}, location=reverse("sync"))
