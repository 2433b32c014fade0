"""Configuration items by kind (``/api/environments/`` …), looked up by repository path.

Lists cost a fixed number of queries whatever the page size (artifacts and warnings prefetched, the
last commit joined), once READMEs are rendered: ``readme_html`` comes from
``services.ci_readme_html``, which renders a README on first use and stores it with one UPDATE. A
listing of never-rendered items therefore pays one UPDATE per such item, once (the indexer renders
nothing eagerly); every later request is back to the fixed count. ``tests/cmdb/test_api.py`` pins it.

``?rev=`` reads a CI from Git at any revision through ``services.ci_snapshot``; lists support it at a
revision other than the indexed commit only with ``?path=`` (one CI), details always.
"""

from __future__ import annotations

from django import forms
from django.db.models import Q, QuerySet
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, status, viewsets
from rest_framework.exceptions import APIException, NotFound, ParseError
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response

from cmdb import layout, services
from cmdb.api.serializers import ConfigItemSerializer, commit_dict
from cmdb.gitrepo import GitError, UnknownRevision
from cmdb.models import ConfigItem
from portal.api import ErrorSerializer

SECRET_PERMISSION = "cmdb.view_secret"


class RepositoryUnavailableError(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The configuration repository cannot be read right now."
    default_code = "repository_unavailable"


def _resolve(rev: str) -> tuple[str, str | None]:
    """``services.resolve_rev`` for API callers: unknown revisions stay 404, other Git trouble is 503."""
    try:
        return services.resolve_rev(rev)
    except UnknownRevision:
        raise
    except GitError as exc:
        raise RepositoryUnavailableError(str(exc)) from exc


class _Render:
    """What every CI in one response needs: the request, the caller's secret permission, the sha."""

    def __init__(self, request, sha: str | None, rev: str | None = None):
        self.request = request
        self.sha = sha
        self.rev = rev
        self.can_view_secret = request.user.has_perm(SECRET_PERMISSION)

    def url(self, kind: str, path: str) -> str:
        return self.request.build_absolute_uri(services.portal_url(kind, path, self.rev))

    def artifact(self, a) -> dict:
        return {
            "path": a.path, "name": a.name, "size": a.size, "blob_sha": a.blob_sha, "mode": a.mode,
            "is_binary": a.is_binary, "is_secret": a.is_secret, "is_image": a.is_image, "is_symlink": a.is_symlink,
            "masked": a.is_secret and not self.can_view_secret, "url": self.url("file", a.path),
        }

    def item(self, ci: ConfigItem) -> dict:
        c = ci.last_commit
        return {
            "path": ci.path, "name": ci.name, "kind": ci.kind, "parent": _parent(ci.path), "revision": self.sha,
            "readme_markdown": ci.readme_markdown, "readme_html": services.ci_readme_html(ci),
            "artifacts": [self.artifact(a) for a in ci.artifacts.all()],
            "last_commit": commit_dict(c.sha, c.author_name, c.committed_at, c.summary) if c else None,
            "warnings": [
                {"code": w.code, "severity": w.severity, "path": w.path, "message": w.message} for w in ci.warnings.all()
            ],
            "url": self.url("page", ci.path),
        }

    def snapshot(self, snap: services.CISnapshot) -> dict:
        try:
            history = services.ci_history(snap.path, snap.sha, limit=1)
        except GitError:
            history = []
        c = history[0] if history else None
        return {
            "path": snap.path, "name": snap.name, "kind": snap.kind, "parent": _parent(snap.path), "revision": snap.sha,
            "readme_markdown": snap.readme_markdown, "readme_html": snap.readme_html,
            "artifacts": [self.artifact(a) for a in snap.artifacts],
            "last_commit": commit_dict(c.sha, c.author_name, c.committed_at, c.summary) if c else None,
            "warnings": None,
            "url": self.url("page", snap.path),
        }


def _parent(path: str) -> str | None:
    return None if not path else path.rpartition("/")[0]


def under(value: str) -> Q:
    value = value.strip("/")
    return Q(path=value) | Q(path__startswith=value + "/")


class EnvironmentFilter(filters.FilterSet):
    path = filters.CharFilter(field_name="path", help_text="Exact repository path.")
    name = filters.CharFilter(field_name="name", help_text="Exact folder name.")
    environment = filters.CharFilter(method="filter_environment", help_text="Environment name.")

    class Meta:
        model = ConfigItem
        fields = ["path", "name", "environment"]

    def filter_environment(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset & ConfigItem.objects.under(value.split("/")[0])


class ConfigItemFilter(EnvironmentFilter):
    machine = filters.CharFilter(
        method="filter_machine",
        help_text='Machine name (any environment; combine with environment=) or path ("production/web1").',
    )

    class Meta:
        model = ConfigItem
        fields = ["path", "name", "environment", "machine"]

    def filter_machine(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        value = value.strip("/")
        if "/" in value:
            return queryset & ConfigItem.objects.under(value)
        return queryset & ConfigItem.objects.in_machine(value)


def _matches_filters(path: str, params) -> bool:
    """The filters above, on one path (for the single CI of a listing at another revision)."""
    parts = path.split("/")
    if "name" in params and parts[-1] != params["name"]:
        return False
    env = params.get("environment")
    if env and parts[0] != env.split("/")[0]:
        return False
    machine = (params.get("machine") or "").strip("/")
    if machine:
        if "/" in machine:
            return path == machine or path.startswith(machine + "/")
        return len(parts) > 1 and parts[1] == machine
    return True


class ApiPagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request):
        # DRF falls back to the default on a bad value; the schema says an integer, so say 400 instead.
        raw = request.query_params.get(self.page_size_query_param)
        if raw is not None and not (raw.isascii() and raw.isdigit() and len(raw) <= 6 and int(raw) >= 1):
            raise exceptions.ValidationError({"page_size": f"an integer from 1 to {self.max_page_size}"})
        return super().get_page_size(request)


class IdFilter(filters.NumberFilter):
    """A row id: an integer that fits the database (a larger one is a 400, not an overflow)."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", 2**63 - 1)
        super().__init__(*args, **kwargs)


class StrictBooleanFilter(filters.TypedChoiceFilter):
    """``true`` or ``false`` only: django-filter's BooleanFilter reads any other word as "not given"."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("choices", [("true", "true"), ("false", "false")])
        kwargs.setdefault("coerce", lambda value: value == "true")
        super().__init__(*args, **kwargs)


REV_PARAMETER = OpenApiParameter(
    "rev", OpenApiTypes.STR, description="A commit, branch or tag; default the indexed commit. Unknown → 404."
)
REV_LIST_PARAMETER = OpenApiParameter(
    "rev", OpenApiTypes.STR,
    description="A commit, branch or tag; default the indexed commit. At another revision than the "
                "indexed one, only together with path= (400 otherwise). Unknown → 404.",
)
NOT_FOUND = OpenApiResponse(ErrorSerializer, description="No such CI, or unknown revision.")


class _ConfigItemViewSet(viewsets.GenericViewSet):
    """Configuration items of one kind, at the indexed commit or at any revision."""

    kind: str = ""
    serializer_class = ConfigItemSerializer
    filterset_class = ConfigItemFilter
    pagination_class = ApiPagination
    lookup_field = "path"
    lookup_value_regex = r"[^?#]+"
    queryset = ConfigItem.objects.none()  # for schema generation; see get_queryset

    def get_queryset(self) -> QuerySet:
        return (
            ConfigItem.objects.filter(kind=self.kind)
            .select_related("last_commit")
            .prefetch_related("artifacts", "warnings")
            .order_by("path")
        )

    def list(self, request, *args, **kwargs):
        rev = request.query_params.get("rev", "")
        if rev:
            sha, carry = _resolve(rev)
            if carry is not None:
                return self._list_at(request, rev)
        else:
            sha = services.indexed_sha()
        render = _Render(request, sha)
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(ConfigItemSerializer([render.item(ci) for ci in page], many=True).data)

    def _list_at(self, request, rev: str):
        raw = request.query_params.get("path")
        if not raw:
            raise ParseError(
                "Listing at a revision other than the indexed commit needs path= (one CI); "
                "use the detail route or leave out rev= to list the index."
            )
        path = layout.safe_repo_path(raw)
        found = self._snapshot(path, rev) if path is not None else None
        rows = [found] if found is not None and _matches_filters(found.path, request.query_params) else []
        render = _Render(request, rows[0].sha if rows else None, rev)
        page = self.paginate_queryset([render.snapshot(s) for s in rows])
        return self.get_paginated_response(ConfigItemSerializer(page, many=True).data)

    def _snapshot(self, path: str, rev: str | None) -> services.CISnapshot | None:
        ref = layout.ci_for_dir(path)
        if ref is None or ref.kind != self.kind:
            return None
        try:
            snap = services.ci_snapshot(path, rev)
        except UnknownRevision:
            raise
        except GitError as exc:
            raise RepositoryUnavailableError(str(exc)) from exc
        return snap if snap is not None and snap.kind == self.kind else None

    def retrieve(self, request, path: str = "", *args, **kwargs):
        clean = layout.safe_repo_path(path)
        if not clean:
            raise NotFound(f"No {self.kind} at {path!r}.")
        rev = request.query_params.get("rev", "")
        carry = _resolve(rev)[1] if rev else None
        if carry is None:
            ref = layout.ci_for_dir(clean)
            item = self.get_queryset().filter(path=clean).first() if ref and ref.kind == self.kind else None
            if item is None:
                raise NotFound(f"No {self.kind} at {clean!r}.")
            return Response(ConfigItemSerializer(_Render(request, services.indexed_sha()).item(item)).data)
        snap = self._snapshot(clean, rev)
        if snap is None:
            raise NotFound(f"No {self.kind} at {clean!r} in {rev!r}.")
        return Response(ConfigItemSerializer(_Render(request, snap.sha, rev).snapshot(snap)).data)


def _ci_viewset(kind: str, label: str, filterset=ConfigItemFilter, example: str = ""):
    list_doc = extend_schema(
        summary=f"List {label}",
        description=f"The {label} of the indexed commit, ordered by path (or one CI at another revision).",
        parameters=[REV_LIST_PARAMETER],
        responses={200: ConfigItemSerializer(many=True), 400: ErrorSerializer, 404: NOT_FOUND},
    )
    retrieve_doc = extend_schema(
        summary=f"One of the {label}",
        description=f"Looked up by repository path{example}; ?rev= reads it from Git at any revision.",
        parameters=[
            REV_PARAMETER,
            OpenApiParameter("path", OpenApiTypes.STR, OpenApiParameter.PATH, description="Repository path."),
        ],
        responses={200: ConfigItemSerializer, 404: NOT_FOUND},
    )
    cls = type(
        f"{kind.title()}ViewSet",
        (_ConfigItemViewSet,),
        {"kind": kind, "filterset_class": filterset, "__doc__": f"The {label} of the configuration repository."},
    )
    return extend_schema_view(list=list_doc, retrieve=retrieve_doc)(cls)


EnvironmentViewSet = _ci_viewset(layout.ENVIRONMENT, "environments", EnvironmentFilter, ' (the name: "production")')
MachineViewSet = _ci_viewset(layout.MACHINE, "machines", example=' ("production/web1")')
ApplicationViewSet = _ci_viewset(layout.APPLICATION, "applications", example=' ("production/web1/nginx")')
CommonViewSet = _ci_viewset(layout.COMMON_KIND, "_common folders", example=' ("production/_common")')
