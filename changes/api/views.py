"""Change requests, baselines, unauthorized commits and the record, over ``changes.services``.

Thin, like the browser views: validate the body, call the service, answer with the updated object.
Refusals keep the service's message and status (``ChangeError.status``): ChangeForbidden 403,
IllegalTransition and ChangeConflict 409, BadBranch and other ChangeErrors 400. Who may do what and
from which state is checked before the body is validated (403, then 409, then 400), as in the UI.

Lists cost a fixed number of queries whatever the number of rows, and a change's detail whatever
its votes, comments and record (``tests/changes/test_api.py`` pins both): related users are joined,
live votes counted by an annotation, environments and related rows prefetched.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models import Prefetch, QuerySet
from django.http import Http404
from django.urls import reverse
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from changes import diffs, permissions, queries, reverts, services, unauthorized, verification
from changes.api import serializers as s
from changes.models import (
    Approval,
    Baseline,
    ChangeEvent,
    ChangeRequest,
    Comment,
    ImpactedCI,
    UnauthorizedCommit,
)
from cmdb import services as cmdb_services
from cmdb.api.items import (
    SECRET_PERMISSION,
    ApiPagination,
    IdFilter,
    RepositoryUnavailableError,
    StrictBooleanFilter,
)
from cmdb.converters import ID_REGEX
from cmdb.gitrepo import GitError
from cmdb.markdown import render_markdown
from cmdb.secrets import MASK
from portal.api import absolute, created, error_responses

State = ChangeRequest.State

# ====================================================================================================
# Errors
# ====================================================================================================


def _validated(serializer_class, request, **kwargs) -> dict:
    serializer = serializer_class(data=request.data, **kwargs)
    serializer.is_valid(raise_exception=True)  # portal.api words the first message as "detail"
    return dict(serializer.validated_data)


def _precheck(action: str, change: ChangeRequest, user) -> None:
    """Refuse what the service would refuse before reading the body: 403, then 409."""
    if not permissions.can(user, action, change):
        raise services.ChangeForbidden(permissions.denial(action))
    if action != "comment" and not services.allowed(action, change):
        raise services.IllegalTransition(f"Cannot {action} a change request that is {change.state}.")


def _staff_only(user, message: str) -> None:
    if not permissions.is_staff(user):
        raise services.ChangeForbidden(message)


def _errors(*codes: int) -> dict:
    return error_responses(*codes)


# ====================================================================================================
# Shapes (plain dicts for the output serializers)
# ====================================================================================================


def _username(user) -> str | None:
    return user.get_username() if user is not None else None


def _flags(change: ChangeRequest) -> dict:
    return {
        "needs_after_the_fact_approval": change.needs_after_the_fact_approval,
        "implemented_without_approval": change.implemented_without_approval,
        "approved_after_the_fact": change.approved_after_the_fact,
        "released_outside_window": change.released_outside_window,
    }


def _summary(request, change: ChangeRequest, environments: list[str]) -> dict:
    return {
        "id": change.pk, "reference": change.reference, "title": change.title, "state": change.state,
        "type": change.type, "risk": change.risk, "branch": change.branch,
        "requester": change.requester.get_username(),
        "planned_start": change.planned_start, "planned_end": change.planned_end, "head_sha": change.head_sha,
        "required_approvals": change.required_approvals,
        "live_approvals": change.live_approvals,  # type: ignore[attr-defined]  # annotated by the querysets
        "environments": environments, "flags": _flags(change),
        "created_at": change.created_at, "updated_at": change.updated_at,
        "url": absolute(request, change.get_absolute_url()),
    }


def _event(event: ChangeEvent) -> dict:
    return {
        "id": event.pk, "change": event.change_id, "actor": _username(event.actor), "at": event.at,
        "action": event.action, "message": event.message, "commit_sha": event.commit_sha, "data": event.data,
    }


def _comment(comment: Comment) -> dict:
    return {"id": comment.pk, "author": comment.author.get_username(), "body": comment.body,
            "created_at": comment.created_at}


def _approval(vote: Approval) -> dict:
    return {
        "user": vote.user.get_username(), "decision": vote.decision, "comment": vote.comment,
        "head_sha": vote.head_sha, "created_at": vote.created_at, "dismissed_at": vote.dismissed_at,
        "dismissed_reason": vote.dismissed_reason, "live": vote.is_live,
    }


def _impact(request, change: ChangeRequest) -> dict:
    files = [{"path": f["path"], "status": f["status"], "ci": f.get("ci"), "documentation": f.get("documentation", False)}
             for f in change.impact.get("files", [])]
    cis = [
        {"path": c["path"], "kind": c["kind"], "environment": c.get("environment", ""),
         "machine_path": c.get("machine_path", ""), "reason": c["reason"], "via": c.get("via", ""),
         "deploy": c.get("deploy", True), "url": absolute(request, cmdb_services.portal_url("page", c["path"]))}
        for c in change.impact.get("cis", [])
    ]
    return {"files": files, "cis": cis, "documentation_only": change.documentation_only,
            "machines": change.machines()}


def _conflicts(change: ChangeRequest) -> dict:
    found = queries.conflicts_for(change)
    return {
        "same_ci": [c.pk for c in found["same_ci"]],
        "overlapping_windows": [c.pk for c in found["overlapping_windows"]],
        "freezes": [{"id": f.pk, "reason": f.reason, "start": f.start, "end": f.end, "environment": f.environment}
                    for f in found["freezes"]],
    }


def _detail(request, change: ChangeRequest) -> dict:
    """Everything about one change request; ``change`` comes from ``_detail_queryset``."""
    return {
        **_summary(request, change, change.environments()),
        "description": change.description,
        "description_html": render_markdown(change.description) if change.description else "",
        "rollback_plan": change.rollback_plan,
        "watchers": sorted(u.get_username() for u in change.watchers.all()),
        "base_sha": change.base_sha, "branch_missing": change.branch_missing, "merged_sha": change.merged_sha,
        "released_from": change.released_from, "verification": change.verification,
        # Only a released change has reverts: the others spare the query.
        "reverts": change.reverts_id, "reverted_by": list(change.reverted_by.order_by("pk").values_list("pk", flat=True))
        if change.state in reverts.REVERTIBLE else [],
        "impact": _impact(request, change),
        "approvals": [_approval(v) for v in change.approvals.all()],
        "timeline": [_event(e) for e in change.events.all()],
        "comments": [_comment(c) for c in change.comments.all()],
        "conflicts": _conflicts(change),
        "actions": services.available_actions(request.user, change),
    }


def _unauthorized(request, commit: UnauthorizedCommit) -> dict:
    return {
        "id": commit.pk, "sha": commit.sha, "summary": commit.summary, "author": commit.author,
        "committed_at": commit.committed_at, "detected_at": commit.detected_at, "status": commit.status,
        "change": commit.change_id, "resolved_by": _username(commit.resolved_by), "resolved_at": commit.resolved_at,
        "reason": commit.reason, "url": absolute(request, reverse("cmdb:commit_detail", kwargs={"sha": commit.sha})),
    }


def _baseline(baseline: Baseline) -> dict:
    return {"id": baseline.pk, "name": baseline.name, "sha": baseline.sha, "note": baseline.note,
            "created_by": baseline.created_by.get_username(), "created_at": baseline.created_at}


# ====================================================================================================
# Change requests
# ====================================================================================================


def _list_queryset() -> QuerySet[ChangeRequest]:
    """One query for the rows (requester joined, live votes counted) and one for their environments."""
    environments = ImpactedCI.objects.exclude(environment="").only("id", "change_id", "environment").order_by()
    return (
        ChangeRequest.objects.select_related("requester")
        .defer("description", "rollback_plan", "impact")
        .annotate(live_approvals=queries.live_approvals_annotation())
        .prefetch_related(Prefetch("impacted", queryset=environments, to_attr="environment_rows"))
        .order_by("-created_at", "-pk")
    )


def _detail_queryset() -> QuerySet[ChangeRequest]:
    return (
        ChangeRequest.objects.select_related("requester")
        .annotate(live_approvals=queries.live_approvals_annotation())
        .prefetch_related(
            Prefetch("approvals", queryset=Approval.objects.select_related("user")),
            Prefetch("events", queryset=ChangeEvent.objects.select_related("actor")),
            Prefetch("comments", queryset=Comment.objects.select_related("author")),
            Prefetch("watchers", queryset=get_user_model().objects.only("id", "username")),
        )
    )


class ChangeFilter(filters.FilterSet):
    state = filters.ChoiceFilter(
        choices=[("open", "open"), *ChangeRequest.State.choices], method="filter_state",
        help_text="A state, or open (draft, submitted, approved or scheduled).",
    )
    type = filters.ChoiceFilter(choices=ChangeRequest.Type.choices)
    risk = filters.ChoiceFilter(choices=ChangeRequest.Risk.choices)
    environment = filters.CharFilter(method="filter_environment", help_text="An environment the change touches.")
    requester = filters.CharFilter(field_name="requester__username", help_text="Username of the requester.")
    branch = filters.CharFilter(field_name="branch", help_text="Exact branch name.")
    awaiting = StrictBooleanFilter(
        method="filter_awaiting", help_text="true: the change requests waiting for the caller's vote."
    )

    class Meta:
        model = ChangeRequest
        fields = ["state", "type", "risk", "environment", "requester", "branch", "awaiting"]

    def filter_state(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        if value == "open":
            return queryset.filter(state__in=ChangeRequest.OPEN_STATES)
        return queryset.filter(state=value)

    def filter_environment(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(pk__in=ImpactedCI.objects.filter(environment=value).values("change_id"))

    def filter_awaiting(self, queryset: QuerySet, name: str, value: bool) -> QuerySet:
        awaiting = queries.awaiting_approval(self.request.user).values("pk")
        return queryset.filter(pk__in=awaiting) if value else queryset.exclude(pk__in=awaiting)


CHANGE_RESPONSES = {200: s.ChangeDetailSerializer, **_errors(400, 403, 404, 409)}


@extend_schema_view(
    list=extend_schema(
        summary="List change requests",
        description="Newest first, paginated; filter by state, type, risk, environment, requester, branch.",
        responses={200: s.ChangeSummarySerializer(many=True), **_errors(400)},
    ),
    retrieve=extend_schema(
        summary="One change request",
        description="State, window, branch and heads, impact, votes, timeline, comments, conflicts and the "
                    "actions the caller may take now.",
        responses={200: s.ChangeDetailSerializer, **_errors(404)},
    ),
    create=extend_schema(
        summary="Open a change request from a branch",
        description="The branch must be pushed to origin and differ from main; the CR starts as a draft with "
                    "its impact computed from the merge base (201, `Location` its address). A branch has one open "
                    "change request (draft, submitted, approved or scheduled): when it has one already, the answer "
                    "is that one (200, same id, nothing written), so a CI pipeline may post on every push.",
        request=s.ChangeCreateSerializer,
        responses={200: OpenApiResponse(s.ChangeDetailSerializer, description="The branch's open change request"),
                   201: OpenApiResponse(s.ChangeDetailSerializer, description="Opened"), **_errors(400, 403, 409)},
    ),
    partial_update=extend_schema(
        summary="Edit a change request",
        description="Title, description, type, risk, window, rollback plan, watchers: the requester or staff, "
                    "while draft, submitted or rejected.",
        request=s.ChangeUpdateSerializer,
        responses=CHANGE_RESPONSES,
    ),
)
class ChangeRequestViewSet(viewsets.GenericViewSet):
    """Change requests: a branch of the configuration repository on its way to main."""

    queryset = ChangeRequest.objects.all()
    serializer_class = s.ChangeSummarySerializer
    filterset_class = ChangeFilter
    pagination_class = ApiPagination
    lookup_value_regex = ID_REGEX

    def get_queryset(self) -> QuerySet[ChangeRequest]:
        return _list_queryset() if self.action == "list" else ChangeRequest.objects.all()

    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        # The filters are the list's: a detail or an action is addressed by its id alone.
        return super().filter_queryset(queryset) if self.action == "list" else queryset

    def _body(self, pk) -> dict:
        change = _detail_queryset().filter(pk=pk).first()
        if change is None:
            raise Http404("No such change request.")
        return s.ChangeDetailSerializer(_detail(self.request, change)).data

    def list(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        rows = [_summary(request, c, sorted({r.environment for r in c.environment_rows})) for c in page]
        return self.get_paginated_response(s.ChangeSummarySerializer(rows, many=True).data)

    def retrieve(self, request, pk=None):
        return Response(self._body(pk))

    def create(self, request):
        if not permissions.can(request.user, "create"):
            raise services.ChangeForbidden(permissions.denial("create"))
        data = _validated(s.ChangeCreateSerializer, request)
        change, is_new = services.change_get_or_create(acting_user=request.user, **data)
        body = self._body(change.pk)
        return created(request, body, location=reverse("change-detail", args=[change.pk])) if is_new else Response(body)

    def partial_update(self, request, pk=None):
        change = self.get_object()
        _precheck("edit", change, request.user)
        data = _validated(s.ChangeUpdateSerializer, request, instance=change, partial=True)
        services.change_update(change=change, acting_user=request.user, **data)
        return Response(self._body(change.pk))

    def _transition(self, action_name: str, serializer_class, run) -> Response:
        change = self.get_object()
        user = self.request.user
        _precheck(action_name, change, user)
        data = _validated(serializer_class, self.request) if serializer_class is not None else {}
        run(change=change, acting_user=user, **data)
        return Response(self._body(change.pk))

    @extend_schema(summary="Submit for approval", description="From draft or rejected; approvers are mailed.",
                   request=None, responses=CHANGE_RESPONSES)
    @action(detail=True, methods=["post"])
    def submit(self, request, pk=None):
        return self._transition("submit", None, services.change_submit)

    @extend_schema(
        summary="Approve",
        description="An approver other than the requester; counts once per branch head. Enough approvals "
                    "approve the CR. Give head_sha to be refused (409) if the branch moved since you reviewed it.",
        request=s.ApproveSerializer, responses=CHANGE_RESPONSES,
    )
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        return self._transition("approve", s.ApproveSerializer, services.change_approve)

    @extend_schema(summary="Reject", description="An approver other than the requester, with a reason.",
                   request=s.RejectSerializer, responses=CHANGE_RESPONSES)
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        return self._transition("reject", s.RejectSerializer, services.change_reject)

    @extend_schema(summary="Schedule", description="Plan the window of an approved CR; refused (409) inside a "
                   "freeze period or outside the standing windows of an impacted environment, unless the "
                   "change is an emergency.",
                   request=s.ScheduleSerializer, responses=CHANGE_RESPONSES)
    @action(detail=True, methods=["post"])
    def schedule(self, request, pk=None):
        return self._transition("schedule", s.ScheduleSerializer, services.change_schedule)

    @extend_schema(
        summary="Implement (release to main)",
        description="Merge the reviewed branch head into main and push it to origin (approvers and staff). "
                    "A merge conflict, a branch that moved since review or a refused push is a 409 and changes "
                    "nothing. Outside the planned window, the standing windows or inside a freeze: 409, except "
                    "an emergency change with a reason (400 without), which stays flagged.",
        request=s.ImplementSerializer, responses=CHANGE_RESPONSES,
    )
    @action(detail=True, methods=["post"])
    def implement(self, request, pk=None):
        return self._transition("implement", s.ImplementSerializer, services.change_implement)

    @extend_schema(summary="Verify", description="The released change works: needs a passed verification, "
                   "or override=true with the reason as comment.", request=s.VerifySerializer,
                   responses=CHANGE_RESPONSES)
    @action(detail=True, methods=["post"])
    def verify(self, request, pk=None):
        return self._transition("verify", s.VerifySerializer, verification.change_verify)

    @extend_schema(summary="Close", description="From verified, rejected or withdrawn.", request=s.NoteSerializer,
                   responses=CHANGE_RESPONSES)
    @action(detail=True, methods=["post"])
    def close(self, request, pk=None):
        return self._transition("close", s.NoteSerializer, services.change_close)

    @extend_schema(summary="Withdraw", description="The requester or staff, before release.",
                   request=s.NoteSerializer, responses=CHANGE_RESPONSES)
    @action(detail=True, methods=["post"])
    def withdraw(self, request, pk=None):
        return self._transition("withdraw", s.NoteSerializer, services.change_withdraw)

    @extend_schema(
        summary="Revert the release (open a change request)",
        description="Requesters, approvers and staff, on an implemented, verified or closed change: a new draft "
                    "change request whose branch undoes the release on top of main (201, its detail). 409 when the "
                    "change is not released, a revert of it is pending, its release is no longer on main, or main "
                    "changed the same lines since (the paths named); nothing is left behind.",
        request=s.RevertSerializer, responses={201: s.ChangeDetailSerializer, **_errors(400, 403, 404, 409)},
    )
    @action(detail=True, methods=["post"])
    def revert(self, request, pk=None):
        change = self.get_object()
        _precheck("revert", change, request.user)
        data = _validated(s.RevertSerializer, request)
        revert = reverts.change_revert(change=change, acting_user=request.user, **data)
        return created(request, self._body(revert.pk), location=reverse("change-detail", kwargs={"pk": revert.pk}))

    @extend_schema(methods=["GET"], summary="Comments", description="Oldest first.",
                   responses={200: s.CommentSerializer(many=True), **_errors(404)})
    @extend_schema(methods=["POST"], summary="Comment", description="Requesters, approvers and staff.",
                   request=s.CommentInputSerializer, responses={201: s.CommentSerializer, **_errors(400, 403, 404)})
    @action(detail=True, methods=["get", "post"], filter_backends=[], pagination_class=None)
    def comments(self, request, pk=None):
        change = self.get_object()
        if request.method == "POST":
            _precheck("comment", change, request.user)
            data = _validated(s.CommentInputSerializer, request)
            comment = services.change_comment(change=change, acting_user=request.user, body=data["body"])
            # Comments have no address of their own: Location is the change request's comments.
            return created(request, s.CommentSerializer(_comment(comment)).data,
                           location=reverse("change-comments", kwargs={"pk": change.pk}))
        rows = Comment.objects.filter(change=change).select_related("author")
        return Response(s.CommentSerializer([_comment(c) for c in rows], many=True).data)

    @extend_schema(
        summary="Diff per CI",
        description="The branch against its merge base with main, grouped by CI. Secret files and private keys "
                    "are masked unless the caller has cmdb.view_secret.",
        responses={200: s.ChangeDiffSerializer, **_errors(404, 503)},
    )
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def diff(self, request, pk=None):
        change = self.get_object()
        can_view = request.user.has_perm(SECRET_PERMISSION)
        try:
            groups = diffs.change_diff(change, can_view_secrets=can_view)
        except GitError as exc:
            raise RepositoryUnavailableError(str(exc)) from exc
        cis = [
            {"path": g.ci_path, "url": absolute(request, cmdb_services.portal_url("page", g.ci_path)), "files": [
                {"path": f.path, "old_path": f.old_path, "status": f.status, "is_binary": f.is_binary,
                 "masked": not can_view and MASK in f.patch, "patch": f.patch}
                for f in g.files
            ]}
            for g in groups
        ]
        return Response(s.ChangeDiffSerializer({
            "change": change.pk, "base_sha": change.base_sha, "head_sha": change.head_sha,
            "secrets_masked": not can_view, "cis": cis,
        }).data)


# ====================================================================================================
# Baselines
# ====================================================================================================


@extend_schema_view(
    list=extend_schema(summary="List baselines", description="Newest first.",
                       responses={200: s.BaselineSerializer(many=True)}),
    create=extend_schema(
        summary="Tag a baseline (staff)",
        description="An annotated tag on a revision (default: main on origin), pushed to origin.",
        request=s.BaselineInputSerializer,
        responses={201: s.BaselineSerializer, **_errors(400, 403, 409)},
    ),
)
class BaselineViewSet(viewsets.GenericViewSet):
    """Named, tagged states of main."""

    queryset = Baseline.objects.select_related("created_by").order_by("-created_at", "-pk")
    serializer_class = s.BaselineSerializer
    pagination_class = ApiPagination

    def list(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(s.BaselineSerializer([_baseline(b) for b in page], many=True).data)

    def create(self, request):
        _staff_only(request.user, "Only staff may tag baselines.")
        data = _validated(s.BaselineInputSerializer, request)
        baseline = services.baseline_create(acting_user=request.user, **data)
        # Baselines have no detail route: Location is the list, newest first, where it now leads.
        return created(request, s.BaselineSerializer(_baseline(baseline)).data, location=reverse("baseline-list"))


# ====================================================================================================
# Unauthorized commits
# ====================================================================================================


class UnauthorizedFilter(filters.FilterSet):
    status = filters.ChoiceFilter(choices=UnauthorizedCommit.Status.choices)

    class Meta:
        model = UnauthorizedCommit
        fields = ["status"]


UNAUTHORIZED_RESPONSES = {200: s.UnauthorizedCommitSerializer, **_errors(400, 403, 404, 409)}


@extend_schema_view(
    list=extend_schema(summary="Commits that reached main without a release",
                       description="Newest first; ?status=open for those still to resolve.",
                       responses={200: s.UnauthorizedCommitSerializer(many=True), **_errors(400)}),
    retrieve=extend_schema(summary="One unauthorized commit", responses={200: s.UnauthorizedCommitSerializer,
                                                                         **_errors(404)}),
)
class UnauthorizedCommitViewSet(viewsets.GenericViewSet):
    """Commits flagged because they reached main other than through a release; staff resolve them."""

    queryset = UnauthorizedCommit.objects.select_related("resolved_by").order_by("-committed_at", "-pk")
    serializer_class = s.UnauthorizedCommitSerializer
    filterset_class = UnauthorizedFilter
    pagination_class = ApiPagination
    lookup_value_regex = ID_REGEX

    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        return super().filter_queryset(queryset) if self.action == "list" else queryset

    def list(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        rows = [_unauthorized(request, c) for c in page]
        return self.get_paginated_response(s.UnauthorizedCommitSerializer(rows, many=True).data)

    def retrieve(self, request, pk=None):
        return Response(s.UnauthorizedCommitSerializer(_unauthorized(request, self.get_object())).data)

    def _resolve(self, serializer_class, run) -> Response:
        commit = self.get_object()
        _staff_only(self.request.user, "Only staff may resolve unauthorized changes.")
        data = _validated(serializer_class, self.request)
        commit = run(commit=commit, acting_user=self.request.user, **data)
        commit = self.get_queryset().get(pk=commit.pk)
        return Response(s.UnauthorizedCommitSerializer(_unauthorized(self.request, commit)).data)

    @extend_schema(summary="Acknowledge (staff)", description="Accept the commit as it is, with a reason.",
                   request=s.AcknowledgeSerializer, responses=UNAUTHORIZED_RESPONSES)
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk=None):
        return self._resolve(s.AcknowledgeSerializer, unauthorized.unauthorized_acknowledge)

    @extend_schema(summary="Link to a change request (staff)",
                   description="The commit belongs to a change request (recorded on that CR's timeline).",
                   request=s.LinkSerializer, responses=UNAUTHORIZED_RESPONSES)
    @action(detail=True, methods=["post"])
    def link(self, request, pk=None):
        return self._resolve(s.LinkSerializer, unauthorized.unauthorized_link)


# ====================================================================================================
# The record
# ====================================================================================================


class EventFilter(filters.FilterSet):
    change = IdFilter(field_name="change", help_text="Id of a change request.")
    action = filters.CharFilter(field_name="action", help_text='e.g. "merged", "vote-approve".')
    actor = filters.CharFilter(field_name="actor__username", help_text="Username.")

    class Meta:
        model = ChangeEvent
        fields = ["change", "action", "actor"]


@extend_schema_view(
    list=extend_schema(summary="The change record",
                       description="Every action on change requests, baselines and unauthorized commits, oldest "
                                   "first. Append-only: there is no write endpoint.",
                       responses={200: s.EventSerializer(many=True), **_errors(400)}),
    retrieve=extend_schema(summary="One record entry", responses={200: s.EventSerializer, **_errors(404)}),
)
class ChangeEventViewSet(viewsets.GenericViewSet):
    """The append-only record (read-only here: no POST, PUT, PATCH or DELETE)."""

    queryset = ChangeEvent.objects.select_related("actor").order_by("at", "id")
    serializer_class = s.EventSerializer
    filterset_class = EventFilter
    pagination_class = ApiPagination
    lookup_value_regex = ID_REGEX

    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        return super().filter_queryset(queryset) if self.action == "list" else queryset

    def list(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(s.EventSerializer([_event(e) for e in page], many=True).data)

    def retrieve(self, request, pk=None):
        return Response(s.EventSerializer(_event(self.get_object())).data)
