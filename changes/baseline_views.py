"""Browser pages of baselines: the list, tagging main, comparing two baselines or revisions per CI."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_safe

from changes import permissions, services
from changes.forms import (
    BaselineForm,
    CompareForm,
)
from changes.models import Baseline, ChangeRequest
from cmdb import layout, versions
from cmdb import services as cmdb_services
from cmdb.gitrepo import GitError, UnknownRevision
from portal.listing import form_error, with_query

CHANGES_PER_PAGE = 50
UNAUTHORIZED_PER_PAGE = 50
State = ChangeRequest.State

# ====================================================================================================
# Baselines
# ====================================================================================================


@dataclass
class BaselineRow:
    """A portal baseline or a tag made outside the portal (``outside``), as the list shows it."""

    name: str
    sha: str
    note: str
    by: str
    when: datetime | None
    outside: bool
    compare_url: str | None = None


def _baseline_rows() -> list[BaselineRow]:
    """Portal baselines merged with origin's tags matching CMDB_BASELINE_TAG_PATTERN, newest first."""
    rows = [BaselineRow(b.name, b.sha, b.note, b.created_by.get_username(), b.created_at, False)
            for b in Baseline.objects.select_related("created_by")]
    ours = {r.name for r in rows}
    rows += [BaselineRow(t.name, t.sha, t.message, t.tagger, t.tagged_at, True)
             for t in versions.baseline_tags() if t.name not in ours]
    rows.sort(key=lambda r: (r.when is not None, r.when or datetime.min.replace(tzinfo=UTC)), reverse=True)
    # Each row compares with the baseline before it.
    for row, older in zip(rows, rows[1:], strict=False):
        row.compare_url = with_query(reverse("changes:baseline_compare"), **{"from": older.name, "to": row.name})
    return rows


def _compare_choices(rows: list[BaselineRow]) -> list[versions.RevChoice]:
    listed = versions.rev_choices()
    known = {c.value for c in listed}
    return [*(versions.RevChoice(r.name, "baseline") for r in rows if r.name not in known), *listed]


@require_safe
def baseline_list(request: HttpRequest) -> HttpResponse:
    rows = _baseline_rows()
    names = [r.name for r in rows]
    return render(request, "changes/baseline_list.html", {
        "rows": rows,
        "choices": _compare_choices(rows),
        "compare_form": CompareForm(initial={"from_rev": names[1] if len(names) > 1 else "",
                                             "to_rev": names[0] if names else ""}),
        "branch": _main(),
        "pattern": settings.CMDB_BASELINE_TAG_PATTERN,
    })


def _main() -> str:
    return settings.CMDB_BRANCH


@require_http_methods(["GET", "HEAD", "POST"])
def baseline_create(request: HttpRequest) -> HttpResponse:
    if not permissions.is_staff(request.user):
        raise PermissionDenied("Only staff may tag baselines.")
    if request.method != "POST":
        return render(request, "changes/baseline_form.html", {"form": BaselineForm(), "choices": versions.rev_choices()})
    form = BaselineForm(request.POST)
    error, status = "", 400
    if form.is_valid():
        try:
            baseline = services.baseline_create(acting_user=request.user, **form.cleaned_data)
        except services.ChangeError as exc:
            error, status = str(exc), exc.status
        else:
            messages.success(request, f"Baseline {baseline.name} tags {baseline.sha[:10]} and was pushed to origin.")
            return redirect("changes:baseline_list")
    else:
        error = form_error(form)
    return render(request, "changes/baseline_form.html", {"form": form, "error": error, "choices": versions.rev_choices()},
                  status=status)


@dataclass
class ChangedCI:
    path: str
    kind: str
    url: str
    compare_url: str
    files: list = field(default_factory=list)


def _resolve_baseline(repo, value: str) -> tuple[str, str]:
    """(sha, revision to carry in links) for a baseline name or any revision of the repository."""
    baseline = Baseline.objects.filter(name=value).only("sha").first()
    try:
        sha = repo.resolve(value)
    except UnknownRevision:
        if baseline is None:
            raise
        return baseline.sha, baseline.sha  # the tag is not in the clone (yet): the recorded commit
    return sha, value


@require_safe
def baseline_compare(request: HttpRequest) -> HttpResponse:
    form = CompareForm(request.GET if ("from" in request.GET or "to" in request.GET) else None)
    context: dict = {"compare_form": form, "choices": _compare_choices(_baseline_rows()), "branch": _main(),
                     "cis": None}
    if not form.is_bound:
        return render(request, "changes/baseline_compare.html", context)
    if not form.is_valid():
        context["error"] = "Give two baselines (or revisions) to compare."
        return render(request, "changes/baseline_compare.html", context, status=400)
    repo = cmdb_services.get_repo()
    try:
        from_sha, from_rev = _resolve_baseline(repo, form.cleaned_data["from_rev"])
        to_sha, to_rev = _resolve_baseline(repo, form.cleaned_data["to_rev"])
        changed = repo.changed_paths(from_sha, to_sha)
    except UnknownRevision as exc:
        context["error"] = str(exc)
        return render(request, "changes/baseline_compare.html", context, status=404)
    except GitError as exc:
        context["error"] = f"The repository cannot be read: {exc}"
        return render(request, "changes/baseline_compare.html", context, status=503)
    cis: dict[str, ChangedCI] = {}
    for path in changed:
        owner = layout.owning_ci(path.path)
        if owner is None:  # tooling folders (.github…) are not configuration items
            continue
        ci = cis.get(owner.path)
        if ci is None:
            ci = cis[owner.path] = ChangedCI(owner.path, owner.kind, "", "")
        ci.files.append({"status": path.status, "path": path.path, "relative": layout.relative_to_ci(path.path, owner.path)})
    for ci in cis.values():
        # A CI whose every file was deleted is shown as it was at "from".
        gone = all(f["status"] == "D" for f in ci.files)
        rev = from_rev if gone else to_rev
        ci.url = cmdb_services.portal_url("page", ci.path, rev)
        ci.compare_url = with_query(reverse("cmdb:ci_compare", kwargs={"path": ci.path}),
                                     **{"from": from_rev, "to": to_rev, "rev": rev})
    context.update({
        "from_rev": form.cleaned_data["from_rev"], "to_rev": form.cleaned_data["to_rev"],
        "from_sha": from_sha, "to_sha": to_sha,
        "cis": sorted(cis.values(), key=lambda c: c.path),
        "file_count": len(changed),
    })
    return render(request, "changes/baseline_compare.html", context)


