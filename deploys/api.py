"""``/api/dry-runs/``, ``/api/jobs/{id}/``, ``/api/jobs/{id}/cancel/``, ``/api/changes/{id}/dry-run/``.

Thin views over ``deploys.services``: refusals propagate to ``portal.api.exception_handler``, which
keeps the service's message and status (403, 409, 400).
Starting answers 202 with the job; the work runs in Celery workers, so clients poll the job.
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from changes.models import ChangeRequest
from cmdb import converters  # noqa: F401 (registers the id converter)
from cmdb.api.items import ApiPagination
from deploys import forms, permissions, queries, rollout, services
from deploys.models import Job, MachinePlan
from portal.api import AbsoluteURLField, accepted, error_responses


class DryRunRequestSerializer(serializers.Serializer):
    revision = serializers.CharField(max_length=255, help_text="Commit sha, tag or branch")
    machines = serializers.ListField(
        child=serializers.CharField(max_length=1000), required=False, allow_empty=False,
        help_text="Machine paths (environment/machine); default: every machine declared at the revision",
    )


class ChangeDryRunRequestSerializer(serializers.Serializer):
    machines = serializers.ListField(
        child=serializers.CharField(max_length=1000), required=False, allow_empty=False,
        help_text="Machine paths; default: the machines the change request impacts",
    )


class FileActionSerializer(serializers.Serializer):
    target = serializers.CharField()
    action = serializers.ChoiceField(choices=["create", "update", "delete", "unchanged", "unreadable", "documented"])
    changes = serializers.ListField(child=serializers.CharField(), required=False)
    diff = serializers.CharField(required=False, allow_blank=True)
    secret = serializers.BooleanField(required=False)
    app_path = serializers.CharField(required=False, allow_blank=True)
    reason = serializers.CharField(required=False, allow_blank=True)
    declared_mode = serializers.CharField(required=False, allow_blank=True)
    live_mode = serializers.CharField(required=False, allow_blank=True)
    origin = serializers.ChoiceField(choices=["change", "drift", "conflict", ""], required=False, allow_blank=True,
                                     help_text="change: the revision changes it; drift: the machine differs and the "
                                               "revision does not touch it; conflict: both (a hand edit a deploy "
                                               "would overwrite)")
    base_diff = serializers.CharField(required=False, allow_blank=True, help_text="conflicts: main -> live")
    live_exists = serializers.BooleanField(required=False)
    live_sha256 = serializers.CharField(required=False, allow_blank=True)


class MachinePlanSerializer(serializers.Serializer):
    machine_path = serializers.CharField()
    status = serializers.ChoiceField(choices=MachinePlan.Status.choices)
    reason = serializers.CharField(allow_blank=True)
    items = FileActionSerializer(many=True)
    reload = serializers.ListField(child=serializers.CharField())
    reload_results = serializers.ListField(child=serializers.DictField(), required=False,
                                           help_text="Deploys: command, ran, exit_status, output")
    finished_at = serializers.DateTimeField()


class LogLineSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    level = serializers.CharField()
    message = serializers.CharField()


class JobSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=Job.Kind.choices)
    plan_job = serializers.IntegerField(allow_null=True, source="plan_job_id",
                                        help_text="Deploy: the dry run it applies; restore: the deploy it undoes")
    confirm_conflicts = serializers.BooleanField()
    url = AbsoluteURLField(help_text="The job's page in the portal")
    change = serializers.IntegerField(allow_null=True, source="change_id")
    revision = serializers.CharField()
    rev_label = serializers.CharField()
    for_head_sha = serializers.CharField(allow_blank=True)
    baseline_sha = serializers.CharField(allow_blank=True)
    requested_by = serializers.CharField(source="requested_by.username")
    state = serializers.ChoiceField(choices=Job.State.choices)
    machines = serializers.ListField(child=serializers.CharField())
    machines_total = serializers.IntegerField()
    machines_done = serializers.IntegerField()
    machines_missing = serializers.ListField(child=serializers.CharField(),
                                             help_text="Machines without a plan (an incomplete job)")
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    progress_at = serializers.DateTimeField(allow_null=True, help_text="When a plan was last stored")
    finished_at = serializers.DateTimeField(allow_null=True)
    error = serializers.CharField(allow_blank=True)
    plans = MachinePlanSerializer(many=True, source="plans.all")
    log = LogLineSerializer(many=True, source="log_lines.all")


class JobSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = AbsoluteURLField()
    kind = serializers.ChoiceField(choices=Job.Kind.choices)
    state = serializers.ChoiceField(choices=Job.State.choices)
    change = serializers.IntegerField(allow_null=True, source="change_id")
    plan_job = serializers.IntegerField(allow_null=True, source="plan_job_id")
    revision = serializers.CharField()
    rev_label = serializers.CharField()
    requested_by = serializers.CharField(source="requested_by.username")
    machines_total = serializers.IntegerField()
    machines_done = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    error = serializers.CharField(allow_blank=True)


def _job_data(request, job: Job) -> dict:
    job = Job.objects.select_related("requested_by").prefetch_related("plans", "log_lines").get(pk=job.pk)
    return JobSerializer(job, context={"request": request}).data


def _queued(request, job: Job) -> Response:
    return accepted(request, _job_data(request, job), location=reverse("api-job-detail", kwargs={"pk": job.pk}))


class _Base(APIView):
    @staticmethod
    def validated(serializer_class, request) -> dict:
        serializer = serializer_class(data=request.data)
        serializer.is_valid(raise_exception=True)  # portal.api words the first message as "detail"
        return dict(serializer.validated_data)

    @staticmethod
    def allowed(user, change: ChangeRequest | None = None) -> None:
        # Before validation: a caller who may not start dry runs learns nothing from the payload check.
        if not permissions.can_dry_run(user, change):
            raise services.DeployForbidden(permissions.DRY_RUN_DENIAL)


class DryRunStartView(_Base):
    @extend_schema(operation_id="dry_runs_create", request=DryRunRequestSerializer,
                   responses={202: JobSerializer, **error_responses(400, 403, 409)}, tags=["dry runs"])
    def post(self, request):
        """Queue a dry run of a revision (sha, tag or branch) on some or all machines."""
        self.allowed(request.user)
        data = self.validated(DryRunRequestSerializer, request)
        job = services.dryrun_start(acting_user=request.user, revision=data["revision"], machines=data.get("machines"))
        return _queued(request, job)


class ChangeDryRunView(_Base):
    @extend_schema(operation_id="changes_dry_run_create", request=ChangeDryRunRequestSerializer,
                   responses={202: JobSerializer, **error_responses(400, 403, 404, 409)}, tags=["dry runs"])
    def post(self, request, pk: int):
        """Queue a dry run of a change request's branch head on the machines it impacts."""
        change = get_object_or_404(ChangeRequest, pk=pk)
        self.allowed(request.user, change)
        data = self.validated(ChangeDryRunRequestSerializer, request)
        job = services.dryrun_start(acting_user=request.user, change=change, machines=data.get("machines"))
        return _queued(request, job)


class JobDetailView(_Base):
    @extend_schema(operation_id="jobs_retrieve", responses={200: JobSerializer, **error_responses(404)},
                   tags=["dry runs"])
    def get(self, request, pk: int):
        """A dry run: state, progress, the plan of every machine done so far, and its log."""
        return Response(_job_data(request, get_object_or_404(Job, pk=pk)))


class DeployRequestSerializer(serializers.Serializer):
    plan = serializers.IntegerField(required=False, min_value=1, max_value=10**18,
                                    help_text="The dry run of the release to apply (default: the newest)")
    confirm_conflicts = serializers.BooleanField(default=False,
                                                 help_text="Also overwrite files edited by hand that the change touches")


class ChangeDeployView(_Base):
    @extend_schema(operation_id="changes_deploy_create", request=DeployRequestSerializer,
                   responses={202: JobSerializer, **error_responses(400, 403, 404, 409)}, tags=["deploys"])
    def post(self, request, pk: int):
        """Deploy a released change request: apply the reviewed plan of a dry run of its release."""
        change = get_object_or_404(ChangeRequest, pk=pk)
        if not permissions.can_deploy(request.user):
            raise services.DeployForbidden("Only approvers and staff may deploy.")
        data = self.validated(DeployRequestSerializer, request)
        plan = get_object_or_404(Job, pk=data["plan"]) if data.get("plan") else None
        job = rollout.deploy_start(acting_user=request.user, change=change, plan_job=plan,
                                   confirm_conflicts=data["confirm_conflicts"])
        return _queued(request, job)


class JobRestoreView(_Base):
    @extend_schema(operation_id="jobs_restore", request=None,
                   responses={202: JobSerializer, **error_responses(403, 404, 409)}, tags=["deploys"])
    def post(self, request, pk: int):
        """Put back the files a failed, halted or interrupted deploy wrote, from its backups."""
        job = rollout.restore_start(acting_user=request.user, deploy=get_object_or_404(Job, pk=pk))
        return _queued(request, job)


class JobCancelView(_Base):
    @extend_schema(operation_id="jobs_cancel", request=None,
                   responses={200: JobSerializer, **error_responses(403, 404, 409)}, tags=["dry runs"])
    def post(self, request, pk: int):
        """Cancel a queued or running dry run (the requester, approvers and staff)."""
        job = services.dryrun_cancel(job=get_object_or_404(Job, pk=pk), acting_user=request.user)
        return Response(_job_data(request, job))


class JobListView(ListAPIView):
    """Jobs (dry runs, deploys, restores), newest first; ``GET /api/jobs/{id}/`` for the plans and log."""

    serializer_class = JobSummarySerializer
    pagination_class = ApiPagination

    @extend_schema(operation_id="jobs_list", tags=["dry runs"], parameters=[
        OpenApiParameter("kind", str, enum=Job.Kind.values), OpenApiParameter("state", str, enum=Job.State.values),
        OpenApiParameter("change", int), OpenApiParameter("environment", str),
        OpenApiParameter("machine", str, description="environment/machine")])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        form = forms.JobFilterForm(self.request.query_params)
        if not form.is_valid():
            raise exceptions.ValidationError(form.errors)
        return queries.jobs(**form.cleaned_data)


def urlpatterns() -> list:
    """The plain API views (added to ``portal.api_urls.app_patterns``, before the router's URLs)."""
    return [
        path("dry-runs/", DryRunStartView.as_view(), name="api-dry-run-start"),
        path("changes/<id:pk>/dry-run/", ChangeDryRunView.as_view(), name="api-change-dry-run"),
        path("jobs/", JobListView.as_view(), name="api-job-list"),
        path("jobs/<id:pk>/", JobDetailView.as_view(), name="api-job-detail"),
        path("jobs/<id:pk>/cancel/", JobCancelView.as_view(), name="api-job-cancel"),
        path("jobs/<id:pk>/restore/", JobRestoreView.as_view(), name="api-job-restore"),
        path("changes/<id:pk>/deploy/", ChangeDeployView.as_view(), name="api-change-deploy"),
    ]
