"""Lint warnings, full-text search and the sync state of the index."""

from __future__ import annotations

from django.conf import settings
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, viewsets
from rest_framework.exceptions import ParseError
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from cmdb import search, services
from cmdb.api.items import ApiPagination, under
from cmdb.api.serializers import (
    LintWarningSerializer,
    SearchResponseSerializer,
    StatusSerializer,
    SyncStateSerializer,
    commit_dict,
)
from cmdb.models import ConfigItem, LintWarning, SyncRun, SyncState
from cmdb.secrets import mask_text
from portal.api import ErrorSerializer, accepted

SEARCH_MAX_LIMIT = 200


class LintWarningFilter(filters.FilterSet):
    code = filters.ChoiceFilter(choices=LintWarning.Code.choices)
    severity = filters.ChoiceFilter(choices=LintWarning.Severity.choices)
    path__startswith = filters.CharFilter(field_name="path", lookup_expr="startswith", help_text="Path prefix.")
    environment = filters.CharFilter(method="filter_environment", help_text="Environment name.")

    class Meta:
        model = LintWarning
        fields = ["code", "severity", "path__startswith", "environment"]

    def filter_environment(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(under(value.split("/")[0]))


@extend_schema_view(list=extend_schema(summary="Lint warnings of the indexed commit", responses={
    200: LintWarningSerializer(many=True), 400: ErrorSerializer,
}))
class LintWarningViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Everything in the repository that is not as the layout convention wants it."""

    queryset = LintWarning.objects.select_related("ci").order_by("path", "code", "pk")
    serializer_class = LintWarningSerializer
    filterset_class = LintWarningFilter
    pagination_class = ApiPagination


def _snippet_html(raw: str) -> str:
    return escape(raw).replace("\x02", "<mark>").replace("\x03", "</mark>")


class SearchView(APIView):
    """Ranked full-text search over CI names, paths and READMEs (indexed commit)."""

    @extend_schema(
        summary="Search configuration items",
        parameters=[
            OpenApiParameter("q", OpenApiTypes.STR, required=True, description="Words; each must match (as a prefix)."),
            OpenApiParameter("kind", OpenApiTypes.STR, enum=list(ConfigItem.Kind.values), description="Only this kind."),
            OpenApiParameter("limit", OpenApiTypes.INT, description=f"At most this many hits (1–{SEARCH_MAX_LIMIT}, default 50)."),
        ],
        responses={200: SearchResponseSerializer, 400: ErrorSerializer},
    )
    def get(self, request):
        q = (request.query_params.get("q") or "").strip()
        if not q:
            raise ParseError("The q parameter (what to search for) is required.")
        try:
            limit = int(request.query_params.get("limit", 50))
        except ValueError:
            raise ParseError("limit must be an integer.") from None
        if not 1 <= limit <= SEARCH_MAX_LIMIT:
            raise ParseError(f"limit must be between 1 and {SEARCH_MAX_LIMIT}.")
        kind = request.query_params.get("kind")
        if kind and kind not in ConfigItem.Kind.values:
            raise ParseError(f"kind must be one of {', '.join(ConfigItem.Kind.values)}.")
        hits = search.search(q, limit=limit)
        cis = ConfigItem.objects.only("path", "name", "kind").in_bulk([h.ci_id for h in hits])
        results = []
        for hit in hits:
            ci = cis.get(hit.ci_id)
            if ci is None or (kind and ci.kind != kind):
                continue  # a stale row, or another kind
            text = mask_text(hit.snippet)
            results.append({
                "path": ci.path, "name": ci.name, "kind": ci.kind, "rank": hit.rank,
                "snippet": _snippet_html(text), "snippet_text": text.replace("\x02", "").replace("\x03", ""),
                "url": request.build_absolute_uri(services.portal_url("page", ci.path)),
            })
        return Response(SearchResponseSerializer({"query": q, "count": len(results), "results": results}).data)


class IsStaffOrReadOnly(BasePermission):
    message = "Only staff can start a sync."

    def has_permission(self, request, view) -> bool:
        return request.method in SAFE_METHODS or bool(request.user and request.user.is_staff)


class SyncView(APIView):
    """The state of the index and the last syncs; staff can ask for a sync."""

    permission_classes = [*api_settings.DEFAULT_PERMISSION_CLASSES, IsStaffOrReadOnly]

    @extend_schema(summary="Sync state and the last 10 syncs", responses={200: SyncStateSerializer})
    def get(self, request):
        state = SyncState.objects.select_related("indexed_commit").filter(pk=1).first() or SyncState(
            branch=settings.CMDB_BRANCH
        )
        c = state.indexed_commit
        running = state.running_since is not None and timezone.now() - state.running_since < services.STALE_SYNC
        data = {
            "branch": state.branch,
            "indexed_commit": commit_dict(c.sha, c.author_name, c.committed_at, c.summary) if c else None,
            "indexed_at": state.indexed_at,
            "running": running,
            "running_since": state.running_since,
            "pending": state.pending,
            "last_error": state.last_error,
            "last_error_at": state.last_error_at,
            "runs": SyncRun.objects.select_related("requested_by").order_by("-started_at", "-pk")[:10],
        }
        return Response(SyncStateSerializer(data).data)

    @extend_schema(
        summary="Ask for a sync (staff)",
        description="Fetch origin and re-index in the background. Requests made while a sync runs are coalesced.",
        request=None,
        responses={202: StatusSerializer, 401: ErrorSerializer, 403: ErrorSerializer},
    )
    def post(self, request):
        services.sync_request(trigger="api", acting_user=request.user)
        return accepted(request, {"status": "queued"}, location=reverse("sync"))
