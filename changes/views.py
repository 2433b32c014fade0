"""Browser views of change control.

Thin: they validate forms, call ``changes.services`` and render. A refused action (``ChangeError``)
re-renders the page with the service's message and the error's HTTP status (403, 409, 400); a
successful one redirects back with a message. Pages cost a fixed number of queries whatever the number
of change requests (see tests/changes/test_views.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from changes import diffs, permissions, queries, reverts, services, unauthorized, verification
from changes.forms import (
    ActionCommentForm,
    ChangeCreateForm,
    ChangeEditForm,
    ChangeFilterForm,
    CommentForm,
    ImplementForm,
    RejectForm,
    ResolveUnauthorizedForm,
    RevertForm,
    ScheduleForm,
    UnauthorizedFilterForm,
    VerifyForm,
    VoteForm,
)
from changes.models import ChangeRequest, FreezePeriod, ImpactedCI, UnauthorizedCommit
from cmdb import browse, layout
from cmdb import services as cmdb_services
from cmdb.gitrepo import GitError
from cmdb.markdown import render_markdown
from cmdb.secrets import MASK
from portal.listing import form_error

CHANGES_PER_PAGE = 50
UNAUTHORIZED_PER_PAGE = 50
State = ChangeRequest.State

# The state-changing actions, in the order their buttons appear.
ACTIONS = ("submit", "approve", "reject", "schedule", "implement", "verify", "close", "withdraw", "revert")
ACTION_FORMS = {
    "approve": VoteForm,
    "reject": RejectForm,
    "schedule": ScheduleForm,
    "implement": ImplementForm,
    "verify": VerifyForm,
    "close": ActionCommentForm,
    "withdraw": ActionCommentForm,
    "revert": RevertForm,
}
DONE = {
    "submit": "{ref} was submitted for approval.",
    "approve": "Your approval of {ref} was recorded.",
    "reject": "{ref} was rejected.",
    "schedule": "{ref} was scheduled.",
    "implement": "{ref} was released to main.",
    "verify": "{ref} was verified.",
    "close": "{ref} was closed.",
    "withdraw": "{ref} was withdrawn.",
    "revert": "{ref} was opened as a draft to revert the release: review it, then submit it.",
}


# ====================================================================================================
# Helpers
# ====================================================================================================


def _precheck(action: str, change: ChangeRequest, user) -> None:
    """Refuse early (before reading the form) what the service would refuse: 403, then 409."""
    if not permissions.can(user, action, change):
        raise services.ChangeForbidden(permissions.denial(action))
    if action != "comment" and not services.allowed(action, change):
        raise services.IllegalTransition(f"Cannot {action} a change request that is {change.state}.")


def _change(pk: int) -> ChangeRequest:
    return get_object_or_404(ChangeRequest.objects.select_related("requester", "reverts"), pk=pk)


# ====================================================================================================
# List
# ====================================================================================================


@require_safe
def change_list(request: HttpRequest) -> HttpResponse:
    environments = list(
        ImpactedCI.objects.exclude(environment="").order_by("environment").values_list("environment", flat=True).distinct()
    )
    requesters = list(
        ChangeRequest.objects.order_by("requester__username").values_list("requester__username", flat=True).distinct()
    )
    form = ChangeFilterForm(request.GET or None, environments=environments, requesters=requesters)
    qs = ChangeRequest.objects.select_related("requester").defer("description", "rollback_plan", "impact")
    filtered = False
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        if data["state"] == "open":
            qs = qs.filter(state__in=ChangeRequest.OPEN_STATES)
        elif data["state"]:
            qs = qs.filter(state=data["state"])
        if data["type"]:
            qs = qs.filter(type=data["type"])
        if data["environment"]:
            qs = qs.filter(pk__in=ImpactedCI.objects.filter(environment=data["environment"]).values("change_id"))
        if data["requester"]:
            qs = qs.filter(requester__username=data["requester"])
        if data["branch"]:
            qs = qs.filter(branch__icontains=data["branch"])
        if data["awaiting"]:
            qs = qs.filter(pk__in=queries.awaiting_approval(request.user).values("pk"))
        filtered = any(data[k] for k in ("state", "type", "environment", "requester", "branch", "awaiting"))
        sort = data["sort"]
    else:
        sort = ChangeFilterForm.DEFAULT_SORT
    qs = qs.annotate(live_approvals=queries.live_approvals_annotation()).order_by(*form.order_by())
    page = Paginator(qs, CHANGES_PER_PAGE).get_page(request.GET.get("page"))
    rows = list(page.object_list)
    envs: dict[int, list[str]] = {}
    if rows:
        for change_id, env in (
            ImpactedCI.objects.filter(change_id__in=[r.pk for r in rows]).exclude(environment="")
            .order_by("environment").values_list("change_id", "environment").distinct()
        ):
            envs.setdefault(change_id, []).append(env)
    for r in rows:
        r.env_list = envs.get(r.pk, [])

    query = request.GET.copy()
    query.pop("page", None)
    headers = []
    for key, label in (("ref", "Ref"), ("title", "Title"), ("state", "State"), ("type", "Type"), ("risk", "Risk"),
                       (None, "Environment"), ("requester", "Requester"), ("branch", "Branch"),
                       ("window", "Window"), ("updated", "Updated")):
        if key is None:
            headers.append({"label": label, "url": None})
            continue
        current = sort.lstrip("-") == key
        desc = sort.startswith("-")
        query["sort"] = f"-{key}" if current and not desc else key
        headers.append({"label": label, "url": f"?{query.urlencode()}", "active": current, "desc": current and desc})
    return render(request, "changes/change_list.html", {
        "form": form,
        "page": page,
        "rows": rows,
        "headers": headers,
        "filtered": filtered,
        "can_create": permissions.can(request.user, "create"),
    })


# ====================================================================================================
# Create and edit
# ====================================================================================================


@require_http_methods(["GET", "HEAD", "POST"])
def change_create(request: HttpRequest) -> HttpResponse:
    if not permissions.can(request.user, "create"):
        raise PermissionDenied(permissions.denial("create"))
    if request.method != "POST":
        initial = {"branch": request.GET.get("branch", "")}
        form = ChangeCreateForm(initial=initial, branches=services.branch_names())
        return render(request, "changes/change_form.html", {"form": form, "creating": True})
    # The service fetches origin and checks the branch; the list of branches is read again only to
    # show the form once more.
    form = ChangeCreateForm(request.POST)
    error, status = "", 400
    if form.is_valid():
        try:
            change, created = services.change_get_or_create(acting_user=request.user, **form.cleaned_data)
        except services.ChangeError as exc:
            error, status = str(exc), exc.status
        else:
            if created:
                messages.success(request, f"{change.reference} was opened as a draft: review the impact, then submit it.")
            else:
                messages.info(request, f"Branch {change.branch} already has an open change request: {change.reference}.")
            return redirect(change)
    else:
        error = form_error(form)
    form.set_branches(services.branch_names())
    return render(request, "changes/change_form.html", {"form": form, "creating": True, "error": error}, status=status)


@require_http_methods(["GET", "HEAD", "POST"])
def change_edit(request: HttpRequest, pk: int) -> HttpResponse:
    change = _change(pk)
    try:
        _precheck("edit", change, request.user)
    except services.ChangeError as exc:
        return _detail_response(request, change, error=str(exc), status=exc.status)
    if request.method != "POST":
        return render(request, "changes/change_form.html", {"form": ChangeEditForm.for_change(change), "change": change})
    form = ChangeEditForm(request.POST)
    error, status = "", 400
    if form.is_valid():
        try:
            change = services.change_update(change=change, acting_user=request.user, **form.cleaned_data)
        except services.ChangeError as exc:
            error, status = str(exc), exc.status
        else:
            messages.success(request, f"{change.reference} was updated.")
            return redirect(change)
    else:
        error = form_error(form)
    return render(request, "changes/change_form.html", {"form": form, "change": change, "error": error}, status=status)


# ====================================================================================================
# Detail
# ====================================================================================================


@dataclass
class CIGroup:
    """The diffs of one configuration item."""

    path: str
    kind: str
    url: str
    diffs: list = field(default_factory=list)


def _diff_groups(change: ChangeRequest, can_view_secrets: bool) -> tuple[list[CIGroup], str]:
    """The branch's diff grouped by CI, highlighted and masked (secrets only for those allowed)."""
    try:
        # Unmasked here: present_diffs masks (secret files, key blocks) with the secret rule of base and
        # head, read once for every file.
        grouped = diffs.change_diff(change, can_view_secrets=True)
        flat = [f for g in grouped for f in g.files]
        if not flat:
            return [], ""
        views = browse.present_diffs(flat, revs=[change.base_sha, change.head_sha], can_view_secrets=can_view_secrets,
                                     file_rev=change.head_sha)
    except GitError as exc:
        return [], str(exc)
    groups: list[CIGroup] = []
    it = iter(zip(flat, views, strict=True))
    for g in grouped:
        ref = layout.ci_for_dir(g.ci_path)
        group = CIGroup(g.ci_path, ref.kind if ref else "", cmdb_services.portal_url("page", g.ci_path, change.head_sha))
        for _ in g.files:
            diff, view = next(it)
            # The service replaced a secret file's whole patch by the mask: say so on the card.
            if not can_view_secrets and MASK in diff.patch and "\n@@" not in diff.patch:
                view.is_secret = view.masked = True
            group.diffs.append(view)
        groups.append(group)
    return groups, ""


def _origin_head(change: ChangeRequest) -> str | None:
    """The branch head as of the portal's last fetch (no network), for the "moved" warning."""
    if not change.is_open or change.branch_missing:
        return None
    try:
        return cmdb_services.get_repo().origin_head(change.branch)
    except GitError:
        return None


def _action_forms(change: ChangeRequest, bound: dict | None = None) -> dict:
    window = {"planned_start": change.planned_start, "planned_end": change.planned_end}
    forms = {
        # Approve and reject share one form (two buttons); a refused vote comes back with its input.
        # The head_sha field is rendered from the change itself: the head this page shows.
        "review": VoteForm(auto_id="review_%s"),
        "schedule": ScheduleForm(initial=window, auto_id="schedule_%s"),
        "implement": ImplementForm(auto_id="implement_%s"),
        "verify": VerifyForm(auto_id="verify_%s"),
        "close": ActionCommentForm(auto_id="close_%s"),
        "withdraw": ActionCommentForm(auto_id="withdraw_%s"),
        "revert": RevertForm(auto_id="revert_%s"),
        "comment": CommentForm(auto_id="comment_%s"),
    }
    for action, form in (bound or {}).items():
        forms["review" if action in ("approve", "reject") else action] = form
    return forms


def _detail_context(request: HttpRequest, change: ChangeRequest, *, bound: dict | None = None, error: str = "") -> dict:
    user = request.user
    actions = services.available_actions(user, change)
    approvals = list(change.approvals.select_related("user"))
    my_vote = next((a for a in approvals if a.user_id == user.pk and a.is_live and a.head_sha == change.head_sha), None)
    can_secrets = user.has_perm("cmdb.view_secret")
    groups, diff_error = _diff_groups(change, can_secrets)
    origin_head = _origin_head(change)
    # CIs link to their page as the branch head has them (a CI the change adds exists only there).
    impacted = [
        {"ci": ci, "url": cmdb_services.portal_url("page", ci.path, change.head_sha or None)}
        for ci in change.impacted.all()
    ]
    files = change.impact.get("files", [])
    # Only a released change has reverts: the others spare the query.
    reverted_by = list(change.reverted_by.order_by("pk")) if change.state in reverts.REVERTIBLE else []
    return {
        "change": change,
        "actions": actions,
        "can": {a: True for a in actions},
        "has_state_actions": any(a in ACTIONS for a in actions),
        "forms": _action_forms(change, bound),
        "error": error,
        "description_html": render_markdown(change.description, base_dir="", resolver=None) if change.description else "",
        "watchers": list(change.watchers.all()),
        "impacted": impacted,
        "files": files,
        "diff_groups": groups,
        "diff_error": diff_error,
        "diff_count": sum(len(g.diffs) for g in groups),
        "can_view_secrets": can_secrets,
        "approvals": approvals,
        "live_approvals": services.live_approvals(change),
        "my_vote": my_vote,
        "dismissed_votes": sum(1 for a in approvals if not a.is_live),
        "reverted_by": reverted_by,
        "pending_revert": next((r for r in reverted_by if r.state in reverts.PENDING), None),
        "events": list(change.events.select_related("actor")),
        "comments": list(change.comments.select_related("author")),
        "conflicts": queries.conflicts_for(change),
        # Asked only of those who may release now: the button says what the release would break.
        "release_problem": change.release_window_problem() if "implement" in actions else None,
        "origin_head": origin_head,
        "head_moved": bool(origin_head and change.head_sha and origin_head != change.head_sha),
        "now": timezone.now(),
    }


def _detail_response(request: HttpRequest, change: ChangeRequest, *, status: int = 200, **kwargs) -> HttpResponse:
    return render(request, "changes/change_detail.html", _detail_context(request, change, **kwargs), status=status)


@require_safe
def change_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _detail_response(request, _change(pk))


@require_POST
def change_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    change = _change(pk)
    user = request.user
    form_class = ACTION_FORMS.get(action)
    auto_id = "review_%s" if action in ("approve", "reject") else f"{action}_%s"
    form = form_class(request.POST, auto_id=auto_id) if form_class else None
    bound = {action: form} if form is not None else None
    try:
        _precheck(action, change, user)
        if form is not None and not form.is_valid():
            return _detail_response(request, change, bound=bound, error=form_error(form), status=400)
        data = form.cleaned_data if form is not None else {}
        if action == "submit":
            change = services.change_submit(change=change, acting_user=user)
        elif action == "approve":
            change = services.change_approve(change=change, acting_user=user, comment=data["comment"],
                                             head_sha=data["head_sha"])
        elif action == "reject":
            change = services.change_reject(change=change, acting_user=user, comment=data["comment"],
                                            head_sha=data["head_sha"])
        elif action == "schedule":
            change = services.change_schedule(change=change, acting_user=user, planned_start=data["planned_start"],
                                              planned_end=data["planned_end"])
        elif action == "verify":
            change = verification.change_verify(change=change, acting_user=user, comment=data["comment"],
                                            override=data["override"])
        elif action == "implement":
            change = services.change_implement(change=change, acting_user=user, reason=data["reason"])
        elif action == "revert":
            change = reverts.change_revert(change=change, acting_user=user, type=data["type"], reason=data["reason"])
        else:
            change = getattr(services, f"change_{action}")(change=change, acting_user=user, comment=data["comment"])
    except services.ChangeError as exc:
        return _detail_response(request, _change(pk), bound=bound, error=str(exc), status=exc.status)
    text = DONE[action].format(ref=change.reference)
    if action == "approve" and change.state == State.APPROVED:
        text += f" {change.reference} is now approved."
    messages.success(request, text)
    return redirect(change)


@require_POST
def change_comment(request: HttpRequest, pk: int) -> HttpResponse:
    change = _change(pk)
    form = CommentForm(request.POST, auto_id="comment_%s")
    try:
        _precheck("comment", change, request.user)
        if not form.is_valid():
            return _detail_response(request, change, bound={"comment": form}, error=form_error(form), status=400)
        services.change_comment(change=change, acting_user=request.user, body=form.cleaned_data["body"])
    except services.ChangeError as exc:
        return _detail_response(request, change, bound={"comment": form}, error=str(exc), status=exc.status)
    messages.success(request, "Your comment was added.")
    return redirect(f"{change.get_absolute_url()}#comments")


# ====================================================================================================
# Unauthorized commits
# ====================================================================================================


def _unauthorized_response(request: HttpRequest, *, error: str = "", bound: tuple[int, ResolveUnauthorizedForm] | None = None,
                           status: int = 200) -> HttpResponse:
    filter_form = UnauthorizedFilterForm(request.GET or {"status": UnauthorizedCommit.Status.OPEN})
    qs = UnauthorizedCommit.objects.select_related("change", "resolved_by").order_by("-committed_at", "-pk")
    status_filter = filter_form.cleaned_data["status"] if filter_form.is_valid() else UnauthorizedCommit.Status.OPEN
    if status_filter:
        qs = qs.filter(status=status_filter)
    page = Paginator(qs, UNAUTHORIZED_PER_PAGE).get_page(request.GET.get("page"))
    rows = []
    for commit in page.object_list:
        form = bound[1] if bound and bound[0] == commit.pk else ResolveUnauthorizedForm(auto_id=f"resolve{commit.pk}_%s")
        rows.append({"c": commit, "form": form, "url": reverse("cmdb:commit_detail", kwargs={"sha": commit.sha})})
    return render(request, "changes/unauthorized_list.html", {
        "filter_form": filter_form,
        "status_filter": status_filter,
        "page": page,
        "rows": rows,
        "error": error,
        "error_pk": bound[0] if bound else None,
        "can_resolve": permissions.is_staff(request.user),
    }, status=status)


@require_safe
def unauthorized_list(request: HttpRequest) -> HttpResponse:
    return _unauthorized_response(request)


@require_POST
def unauthorized_resolve(request: HttpRequest, pk: int) -> HttpResponse:
    commit = get_object_or_404(UnauthorizedCommit, pk=pk)
    form = ResolveUnauthorizedForm(request.POST, auto_id=f"resolve{commit.pk}_%s")
    try:
        if not permissions.is_staff(request.user):
            raise services.ChangeForbidden("Only staff may resolve unauthorized changes.")
        if not form.is_valid():
            return _unauthorized_response(request, error=form_error(form), bound=(commit.pk, form), status=400)
        data = form.cleaned_data
        if data["resolution"] == ResolveUnauthorizedForm.LINK:
            unauthorized.unauthorized_link(commit=commit, change=data["change"], acting_user=request.user,
                                       reason=data["reason"])
            text = f"Commit {commit.sha[:10]} is linked to {data['change'].reference}."
        else:
            unauthorized.unauthorized_acknowledge(commit=commit, acting_user=request.user, reason=data["reason"])
            text = f"Commit {commit.sha[:10]} is acknowledged."
    except services.ChangeError as exc:
        return _unauthorized_response(request, error=str(exc), bound=(commit.pk, form), status=exc.status)
    messages.success(request, text)
    return redirect("changes:unauthorized_list")


# ====================================================================================================
# Freeze periods
# ====================================================================================================


@require_safe
def freeze_list(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    freezes = list(FreezePeriod.objects.order_by("start"))
    current = [f for f in freezes if f.end > now]
    past = [f for f in reversed(freezes) if f.end <= now]
    return render(request, "changes/freeze_list.html", {
        "current": current,
        "past": past,
        "now": now,
        "can_manage": permissions.is_staff(request.user),
    })
