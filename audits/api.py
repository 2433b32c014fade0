"""``/api/audits/``, ``/api/findings/`` (with acknowledge/adopt/restore actions), ``/api/manual-checks/``,
and the serializers of the audit figures that ``/api/status/`` (``portal.status_api``) extends.

Thin views over ``audits.services`` and ``audits.queries``: refusals keep the service's message and
status (403, 409, 400). Starting an audit answers 202 with the run; clients poll ``/api/audits/{id}/``.
"""

from __future__ import annotations

from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from django.urls import path
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from audits import queries, services
from audits.models import AuditRun, Finding, MachineResult, ManualCheck
from cmdb import converters  # noqa: F401 (registers the id converter)
from portal.api import error_responses


class AuditStartSerializer(serializers.Serializer):
    scope = serializers.CharField(required=False, allow_blank=True, max_length=1000, default="",
                                  help_text='"" (everything), an environment, or environment/machine')


class FindingSerializer(serializers.ModelSerializer):
    url = serializers.CharField(source="get_absolute_url", read_only=True)
    run = serializers.IntegerField(source="run_id")
    change = serializers.IntegerField(source="change_id", allow_null=True)
    handled_by = serializers.CharField(source="handled_by.get_username", allow_null=True, default=None)
    carried_from = serializers.IntegerField(source="carried_from_id", allow_null=True)

    class Meta:
        model = Finding
        fields = ["id", "url", "run", "machine_path", "environment", "app_path", "source_path", "target", "kind",
                  "secret", "declared", "live", "diff", "reason", "state", "note", "handled_by", "handled_at",
                  "change", "carried_from"]


class MachineResultSerializer(serializers.ModelSerializer):
    findings = FindingSerializer(many=True)

    class Meta:
        model = MachineResult
        fields = ["machine_path", "environment", "status", "reason", "files_total", "files_in_sync", "compliance",
                  "applications", "finished_at", "findings"]


class ManualCheckSerializer(serializers.ModelSerializer):
    run = serializers.IntegerField(source="run_id")
    checked_by = serializers.CharField(source="checked_by.get_username", allow_null=True, default=None)
    overdue = serializers.BooleanField(source="is_overdue")

    class Meta:
        model = ManualCheck
        fields = ["id", "run", "machine_path", "environment", "state", "note", "checked_by", "checked_at", "due",
                  "overdue"]


class AuditRunSerializer(serializers.ModelSerializer):
    url = serializers.CharField(source="get_absolute_url", read_only=True)
    requested_by = serializers.CharField(source="requested_by.get_username", allow_null=True, default=None)
    compliance = serializers.FloatField(allow_null=True)

    class Meta:
        model = AuditRun
        fields = ["id", "url", "scope", "state", "trigger", "requested_by", "main_sha", "machines_total",
                  "machines_done", "machines_missing", "created_at", "started_at", "finished_at", "error",
                  "compliance", "summary"]


class AuditRunDetailSerializer(AuditRunSerializer):
    machines = MachineResultSerializer(many=True, source="results")
    manual_checks = ManualCheckSerializer(many=True)

    class Meta(AuditRunSerializer.Meta):
        fields = [*AuditRunSerializer.Meta.fields, "machines", "manual_checks"]


class FindingActionSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)


class ManualCheckRecordSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=[ManualCheck.State.MATCHES, ManualCheck.State.DISCREPANCY])
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)


class EnvironmentAuditStatusSerializer(serializers.Serializer):
    environment = serializers.CharField()
    machines = serializers.IntegerField()
    statuses = serializers.DictField(child=serializers.IntegerField())
    files = serializers.IntegerField()
    in_sync = serializers.IntegerField()
    compliance = serializers.FloatField(allow_null=True)
    open_findings = serializers.IntegerField()
    overdue_checks = serializers.IntegerField()
    open_changes = serializers.IntegerField()
    last_audit_at = serializers.DateTimeField(allow_null=True)
    trend = serializers.ListField(child=serializers.DictField(), help_text="[{run, at, compliance}], oldest first")


class AuditStatusSerializer(serializers.Serializer):
    environments = EnvironmentAuditStatusSerializer(many=True)
    total = serializers.DictField()
    open_changes = serializers.IntegerField()
    unauthorized_commits = serializers.IntegerField()
    last_audit = AuditRunSerializer(allow_null=True)
    last_sync = serializers.SerializerMethodField()
    next_audit_at = serializers.DateTimeField(allow_null=True)

    def get_last_sync(self, obj) -> dict | None:
        run = obj["last_sync"]
        if run is None:
            return None
        return {"id": run.pk, "status": run.status, "started_at": run.started_at, "finished_at": run.finished_at,
                "sha": run.to_sha}


# --- views -------------------------------------------------------------------------------------------------
class AuditListView(ListAPIView):
    """Audit runs, newest first. POST (staff) starts one for a scope."""

    serializer_class = AuditRunSerializer
    queryset = AuditRun.objects.select_related("requested_by")

    @extend_schema(request=AuditStartSerializer, responses={202: AuditRunSerializer, **error_responses(400, 403, 409)})
    def post(self, request):
        body = AuditStartSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        run = services.audit_start(acting_user=request.user, scope=body.validated_data["scope"],
                                   trigger=AuditRun.Trigger.API)
        return Response(AuditRunSerializer(run).data, status=status.HTTP_202_ACCEPTED,
                        headers={"Location": f"/api/audits/{run.pk}/"})


class AuditDetailView(APIView):
    @extend_schema(responses={200: AuditRunDetailSerializer, **error_responses(404)},
                   description="A run with, per machine, its status, compliance and findings; and its manual checks.")
    def get(self, request, pk: int):
        run = get_object_or_404(AuditRun.objects.select_related("requested_by").prefetch_related(
            "results__findings__handled_by", Prefetch("manual_checks", ManualCheck.objects.select_related("checked_by"))
        ), pk=pk)
        return Response(AuditRunDetailSerializer(run).data)


_FINDING_FILTERS = [
    OpenApiParameter("state", str, enum=[c for c, _ in Finding.State.choices]),
    OpenApiParameter("environment", str),
    OpenApiParameter("kind", str, enum=[c for c, _ in Finding.Kind.choices]),
    OpenApiParameter("machine", str, description="environment/machine"),
    OpenApiParameter("run", int, description="Findings of this audit run"),
    OpenApiParameter("history", bool, description="Include findings of earlier audits (default: each machine's latest)"),
]


class FindingListView(ListAPIView):
    """Findings of each machine's latest audit (or of ``?run=``, or all with ``?history=true``)."""

    serializer_class = FindingSerializer

    @extend_schema(parameters=_FINDING_FILTERS)
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        p = self.request.query_params
        state, kind = p.get("state", ""), p.get("kind", "")
        if state and state not in Finding.State.values:
            raise exceptions.ValidationError({"state": f"one of {', '.join(Finding.State.values)}"})
        if kind and kind not in Finding.Kind.values:
            raise exceptions.ValidationError({"kind": f"one of {', '.join(Finding.Kind.values)}"})
        run = p.get("run")
        if run is not None and not converters.is_id(run):
            raise exceptions.ValidationError({"run": "an audit run id"})
        return queries.findings(state=state, environment=p.get("environment", ""), kind=kind,
                                machine=p.get("machine", ""), run=int(run) if run else None,
                                history=p.get("history", "").lower() in ("1", "true", "yes"))


class FindingDetailView(APIView):
    @extend_schema(responses={200: FindingSerializer, **error_responses(404)})
    def get(self, request, pk: int):
        finding = get_object_or_404(Finding.objects.select_related("handled_by"), pk=pk)
        return Response(FindingSerializer(finding).data)


def _finding_action(name: str, doc: str):
    act = services.FINDING_ACTIONS[name]

    class FindingActionView(APIView):
        @extend_schema(request=FindingActionSerializer, description=doc, operation_id=f"findings_{name}",
                       responses={200: FindingSerializer, **error_responses(400, 403, 404, 409)})
        def post(self, request, pk: int):
            finding = get_object_or_404(Finding.objects.select_related("run"), pk=pk)
            body = FindingActionSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            done = act(finding=finding, acting_user=request.user, note=body.validated_data["note"])
            return Response(FindingSerializer(done).data)

    FindingActionView.__name__ = f"Finding{name.title()}View"
    return FindingActionView


class ManualCheckListView(ListAPIView):
    """Open manual checks (``?overdue=true``: only overdue ones)."""

    serializer_class = ManualCheckSerializer

    def get_queryset(self):
        overdue = self.request.query_params.get("overdue", "").lower() in ("1", "true", "yes")
        qs = queries.overdue_checks() if overdue else ManualCheck.objects.filter(state=ManualCheck.State.OPEN)
        return qs.select_related("checked_by").order_by("due", "machine_path")


class ManualCheckRecordView(APIView):
    @extend_schema(request=ManualCheckRecordSerializer, responses={200: ManualCheckSerializer, **error_responses(400, 403, 409)})
    def post(self, request, pk: int):
        check = get_object_or_404(ManualCheck, pk=pk)
        body = ManualCheckRecordSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        done = services.manual_check_record(check=check, acting_user=request.user, **body.validated_data)
        return Response(ManualCheckSerializer(done).data)


def urlpatterns() -> list:
    return [
        path("audits/", AuditListView.as_view(), name="api-audit-list"),
        path("audits/<id:pk>/", AuditDetailView.as_view(), name="api-audit-detail"),
        path("findings/", FindingListView.as_view(), name="api-finding-list"),
        path("findings/<id:pk>/", FindingDetailView.as_view(), name="api-finding-detail"),
        path("findings/<id:pk>/acknowledge/",
             _finding_action("acknowledge", "Accept the drift with a note (approvers, staff).").as_view(),
             name="api-finding-acknowledge"),
        path("findings/<id:pk>/adopt/",
             _finding_action("adopt", "Apply the live edits (or mode) onto main in a new branch and open a change "
                                      "request with it; 409 with the conflicting lines when main changed the same "
                                      "lines since the audit (requesters, approvers, staff).").as_view(),
             name="api-finding-adopt"),
        path("findings/<id:pk>/restore/",
             _finding_action("restore", "Open a change request recording the intent to re-deploy the declared "
                                        "file (requesters, approvers, staff).").as_view(),
             name="api-finding-restore"),
        path("manual-checks/", ManualCheckListView.as_view(), name="api-manualcheck-list"),
        path("manual-checks/<id:pk>/", ManualCheckRecordView.as_view(), name="api-manualcheck-record"),
    ]
