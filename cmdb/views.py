"""Browser views of CM identification.

Thin: they validate the request, call ``cmdb.services`` (Git and the index) or a fixed number of ORM
queries, and hand plain rows to the templates. Every page costs a fixed number of queries whatever
the size of the repository (see tests/cmdb/test_browse.py).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from functools import wraps
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Case, IntegerField, Value, When
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.utils.http import content_disposition_header, url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST, require_safe

from cmdb import browse, layout, panels, runbook, services, versions
from cmdb import search as fts
from cmdb.forms import CompareForm, LintFilterForm, RevisionForm, SearchForm
from cmdb.gitrepo import GitError, UnknownRevision
from cmdb.models import ConfigItem, LintWarning, SyncRun
from cmdb.secrets import mask_text
from portal.listing import with_query

HISTORY_PER_PAGE = 50
LINT_PER_PAGE = 100
CHILDREN_PER_PAGE = 100
SYNC_RUNS_PER_PAGE = 50
RAW_CSP = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox"


# ====================================================================================================
# Helpers
# ====================================================================================================


def _message(request: HttpRequest, title: str, text: str, *, status: int, hint: str = "") -> HttpResponse:
    return render(request, "cmdb/message.html", {"title": title, "text": text, "hint": hint}, status=status)


def _not_found(request: HttpRequest, text: str) -> HttpResponse:
    return _message(request, "Not found", text, status=404)


def _asked_revs(request: HttpRequest, kwargs: dict) -> bool:
    return bool("sha" in kwargs or any(request.GET.get(k) for k in ("rev", "from", "to")))


def repo_view(view):
    """Turn Git trouble into friendly pages: unknown revisions are 404, a missing index is explained."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except UnknownRevision as exc:
            if not _asked_revs(request, kwargs) and services.indexed_sha() is None:
                return _not_indexed(request)
            return _message(request, "Unknown revision", str(exc), status=404,
                            hint="Use a branch, a tag or a commit of the configuration repository.")
        except GitError as exc:
            if services.indexed_sha() is None:
                return _not_indexed(request, str(exc))
            return _message(request, "Repository unavailable", str(exc), status=503,
                            hint="The portal cannot read its clone of the configuration repository right now.")

    return wrapper


def _not_indexed(request: HttpRequest, error: str = "") -> HttpResponse:
    return render(request, "cmdb/not_indexed.html", {"error": error})


def _rev(request: HttpRequest) -> str | None:
    return (request.GET.get("rev") or "").strip() or None


def _repo_path(raw: str | None) -> str:
    """A repository path from a URL, or 404 for anything absolute, escaping or with a NUL."""
    if raw is None or raw.startswith("/"):
        raise Http404("Not a repository path.")
    clean = layout.safe_repo_path(raw)
    if clean is None:
        raise Http404("Not a repository path.")
    return clean


def _ci_path(raw: str) -> str:
    path = _repo_path(raw)
    if "-" in path.split("/"):  # "/-/" separates a CI from its tab
        raise Http404("Not a configuration item.")
    return path


def _tab_url(name: str, path: str, rev: str | None) -> str:
    if name == "overview":
        return services.portal_url("page", path, rev)
    return with_query(reverse(f"cmdb:ci_{name}", kwargs={"path": path}), rev=rev)


def _can_view_secrets(request: HttpRequest) -> bool:
    return request.user.has_perm("cmdb.view_secret")


@dataclass
class Crumb:
    label: str
    url: str
    kind: str


def _breadcrumbs(ci_path: str, rev: str | None) -> list[Crumb]:
    """Root › environment › machine › application (or _common) for a CI path."""
    crumbs = [Crumb("Repository", services.portal_url("page", "", rev), layout.ROOT)]
    parts = ci_path.split("/") if ci_path else []
    for i in range(1, len(parts) + 1):
        sub = "/".join(parts[:i])
        ref = layout.ci_for_dir(sub)
        crumbs.append(Crumb(parts[i - 1], services.portal_url("page", sub, rev), ref.kind if ref else ""))
    return crumbs


def _rev_context(request: HttpRequest, sha: str, carry: str | None) -> dict:
    asked = _rev(request)
    return {
        "sha": sha,
        "short_sha": sha[:10],
        "rev": carry,  # carried in every link; None at the indexed commit
        "asked_rev": asked,
        "at_indexed": carry is None,
        "rev_form": RevisionForm(initial={"rev": asked or ""}),
        "rev_choices": versions.rev_choices(),
        "indexed_url": request.path,
    }


def _page_number(request: HttpRequest) -> int:
    try:
        return max(1, min(int(request.GET.get("page") or 1), 10_000))
    except ValueError:
        return 1


# ====================================================================================================
# Configuration items
# ====================================================================================================


def ci_tabs(path: str, kind: str, rev: str | None, active: str) -> list[dict]:
    """A CI's tabs; environments and machines have a rebuild runbook too."""
    tabs = [("overview", "Overview", "bi-card-text"), ("history", "History", "bi-clock-history"),
            ("compare", "Compare", "bi-file-diff")]
    if kind in (layout.ENVIRONMENT, layout.MACHINE):
        tabs.append(("runbook", "Rebuild runbook", "bi-journal-check"))
    return [{"name": name, "label": label, "icon": icon, "url": _tab_url(name, path, rev), "active": name == active}
            for name, label, icon in tabs]


def _ci_frame(request: HttpRequest, snap: services.CISnapshot, tab: str) -> dict:
    """The header shared by a CI's tabs: breadcrumbs, revision, tabs."""
    tabs = ci_tabs(snap.path, snap.kind, snap.rev, tab)
    item = snap.item
    last = item.last_commit if item is not None else None
    return {
        "snap": snap,
        "kind": snap.kind,
        "title": snap.name if snap.path else "Repository root",
        "ci_path": snap.path,
        "breadcrumbs": _breadcrumbs(snap.path, snap.rev),
        "tabs": tabs,
        "tab": tab,
        "last_commit": browse.commit_row(last, snap.path) if last else None,
        **_rev_context(request, snap.sha, snap.rev),
    }


def _snapshot(request: HttpRequest, path: str) -> services.CISnapshot | None:
    return services.ci_snapshot(path, _rev(request))


@dataclass
class ChildRow:
    name: str
    path: str
    kind: str
    url: str
    artifact_count: int | None
    warning_count: int | None


@dataclass
class ArtifactRow:
    path: str
    relative_path: str
    size: int
    url: str
    raw_url: str | None
    is_secret: bool
    is_binary: bool | None
    is_image: bool
    is_symlink: bool
    symlink_target: str


@require_safe
@repo_view
def ci_detail(request: HttpRequest, path: str) -> HttpResponse:
    path = _ci_path(path)
    snap = _snapshot(request, path)
    if snap is None:
        return _not_found(request, f"There is no configuration item {path or '/'!r} at this revision.")
    can_secrets = _can_view_secrets(request)
    rev = snap.rev

    def child_row(c: services.ChildInfo) -> ChildRow:
        return ChildRow(c.name, c.path, c.kind, services.portal_url("page", c.path, rev), c.artifact_count,
                        c.warning_count)

    # An environment may hold a thousand machines: filter and paginate on the server, and build
    # rows (URLs) only for the page shown.
    child_filter = request.GET.get("children", "").strip()
    kids = [c for c in snap.children if c.kind != layout.COMMON_KIND]
    if child_filter:
        kids = [c for c in kids if child_filter.lower() in c.name.lower()]
    children_page = Paginator(kids, CHILDREN_PER_PAGE).get_page(request.GET.get("page"))
    children = [child_row(c) for c in children_page.object_list]
    commons = [child_row(c) for c in snap.children if c.kind == layout.COMMON_KIND]

    artifacts = [
        ArtifactRow(
            path=a.path,
            relative_path=layout.relative_to_ci(a.path, path),
            size=a.size,
            url=services.portal_url("file", a.path, rev),
            raw_url=None if (a.is_secret and not can_secrets) else services.portal_url("raw", a.path, rev),
            is_secret=a.is_secret,
            is_binary=a.is_binary,
            is_image=a.is_image,
            is_symlink=a.is_symlink,
            symlink_target=getattr(a, "symlink_target", ""),
        )
        for a in snap.artifacts
    ]

    warnings: list[LintWarning] = []
    siblings: dict[str, dict | None] = {"previous": None, "next": None}
    item = snap.item
    if item is not None:
        warnings = list(LintWarning.objects.filter(ci_id=item.pk).only("path", "code", "severity", "message"))
        if item.parent_id is not None and item.kind != layout.COMMON_KIND:
            same = ConfigItem.objects.filter(parent_id=item.parent_id, kind=item.kind).only("path", "name")
            for key, qs in (("previous", same.filter(name__lt=item.name).order_by("-name")),
                            ("next", same.filter(name__gt=item.name).order_by("name"))):
                sib = qs.first()
                if sib is not None:
                    siblings[key] = {"name": sib.name, "url": services.portal_url("page", sib.path, rev)}

    child_kind = {layout.ROOT: "Environments", layout.ENVIRONMENT: "Machines", layout.MACHINE: "Applications"}
    return render(request, "cmdb/ci_detail.html", {
        **_ci_frame(request, snap, "overview"),
        "readme_html": browse.readme_for(snap.readme_html, can_view_secrets=can_secrets),
        "has_readme": snap.has_readme,
        "children": children,
        "children_page": children_page,
        "children_filter": child_filter,
        "children_label": child_kind.get(snap.kind, "Folders"),
        "commons": commons,
        "artifacts": artifacts,
        "warnings": warnings,
        "siblings": siblings,
        "can_view_secrets": can_secrets,
        "declared": runbook.application_declared(path, snap.sha, rev) if snap.kind == layout.APPLICATION else None,
        "panels": panels.render_panels(snap.kind, snap.path, request),
    })


@require_safe
@repo_view
def ci_history(request: HttpRequest, path: str) -> HttpResponse:
    path = _ci_path(path)
    snap = _snapshot(request, path)
    if snap is None:
        return _not_found(request, f"There is no configuration item {path or '/'!r} at this revision.")
    page = _page_number(request)
    infos = services.ci_history(path, snap.sha, limit=HISTORY_PER_PAGE + 1, skip=(page - 1) * HISTORY_PER_PAGE)
    commits = [browse.commit_row(c, path) for c in infos[:HISTORY_PER_PAGE]]
    here = _tab_url("history", path, snap.rev)
    sep = "&" if "?" in here else "?"
    return render(request, "cmdb/ci_history.html", {
        **_ci_frame(request, snap, "history"),
        "commits": commits,
        "compare_url": reverse("cmdb:ci_compare", kwargs={"path": path}),
        "page": page,
        "newer_url": (f"{here}{sep}page={page - 1}" if page > 2 else here) if page > 1 else None,
        "older_url": f"{here}{sep}page={page + 1}" if len(infos) > HISTORY_PER_PAGE else None,
    })


@require_safe
@repo_view
def ci_compare(request: HttpRequest, path: str) -> HttpResponse:
    path = _ci_path(path)
    snap = _snapshot(request, path)
    if snap is None:
        return _not_found(request, f"There is no configuration item {path or '/'!r} at this revision.")
    form = CompareForm(request.GET if ("from" in request.GET or "to" in request.GET) else None)
    asked_from = asked_to = ""
    if form.is_bound:
        if not form.is_valid():  # e.g. longer than any ref: unknown, like any other unknown revision
            raise UnknownRevision("Unknown revision.")
        asked_from, asked_to = form.cleaned_data["from_rev"], form.cleaned_data["to_rev"]
    to_rev = asked_to or snap.sha
    from_rev: str | None = asked_from or None
    diff_to = to_rev
    has_range = from_rev is not None
    if not has_range:
        # By default: this CI's previous version against its latest (up to "to"); a CI with one
        # version is compared with the commit before it, where it did not exist.
        latest = services.ci_history(path, to_rev, limit=2)
        if latest:
            diff_to, has_range = latest[0].sha, True
            from_rev = latest[1].sha if len(latest) > 1 else (latest[0].parents[0] if latest[0].parents else None)
    diffs = services.ci_diff(path, from_rev, diff_to) if has_range else []
    views = browse.present_diffs(diffs, revs=[from_rev, diff_to], can_view_secrets=_can_view_secrets(request),
                                 file_rev=diff_to)
    if not form.is_bound:
        form = CompareForm(initial={"from_rev": from_rev or "", "to_rev": diff_to})
    return render(request, "cmdb/ci_compare.html", {
        **_ci_frame(request, snap, "compare"),
        "form": form,
        "from_label": asked_from or (from_rev[:10] if from_rev else "(nothing)"),
        "to_label": asked_to or diff_to[:10],
        "diffs": views,
        "file_rev": diff_to,
    })


# ====================================================================================================
# Files
# ====================================================================================================


def _file_crumbs(path: str, rev: str | None) -> tuple[list[Crumb], str]:
    owner = layout.owning_ci(path)
    ci_path = owner.path if owner else ""
    return _breadcrumbs(ci_path, rev), layout.relative_to_ci(path, ci_path)


@require_safe
@repo_view
def artifact_detail(request: HttpRequest, path: str) -> HttpResponse:
    path = _repo_path(path)
    rev = _rev(request)
    blob = services.blob_at(path, rev) if path else None
    if blob is None:
        if layout.ci_for_dir(path) is not None:
            return redirect(services.portal_url("page", path, rev))
        return _not_found(request, f"There is no file {path!r} at this revision.")
    can_secrets = _can_view_secrets(request)
    view = browse.file_view(blob, can_view_secrets=can_secrets)
    crumbs, relative = _file_crumbs(path, blob.rev)
    history = [browse.commit_row(c, path) for c in services.ci_history(path, blob.sha, limit=10)]
    may_download = not (blob.is_secret and not can_secrets)
    return render(request, "cmdb/artifact_detail.html", {
        "blob": blob,
        "view": view,
        "name": posixpath.basename(path),
        "path": path,
        "relative_path": relative,
        "breadcrumbs": crumbs,
        "size": blob.entry.size or len(blob.content),
        "raw_url": services.portal_url("raw", path, blob.rev) if may_download else None,
        "download_url": with_query(reverse("cmdb:raw", kwargs={"path": path}), rev=blob.rev, download=1)
        if may_download else None,
        "history": history,
        "ci_url": crumbs[-1].url,
        **_rev_context(request, blob.sha, blob.rev),
    })


@require_safe
def raw(request: HttpRequest, path: str) -> HttpResponse:
    path = _repo_path(path)
    if not path:
        raise Http404("No file.")
    try:
        blob = services.blob_at(path, _rev(request))
    except GitError as exc:  # unknown revision, or nothing indexed yet
        raise Http404(str(exc)) from None
    if blob is None:
        raise Http404("No such file at this revision.")
    if blob.is_secret and not _can_view_secrets(request):
        raise PermissionDenied("This file is a secret.")
    content_type, inline = browse.raw_content_type(path, blob)
    response = HttpResponse(blob.content, content_type=content_type)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = RAW_CSP
    response["Cache-Control"] = "no-store" if blob.is_secret else "private, max-age=60"
    if request.GET.get("download") or not inline:
        response["Content-Disposition"] = content_disposition_header(True, posixpath.basename(path)) or "attachment"
    return response


# ====================================================================================================
# Commits
# ====================================================================================================


@require_safe
@repo_view
def commit_detail(request: HttpRequest, sha: str) -> HttpResponse:
    raw_path = request.GET.get("path")
    path = _repo_path(raw_path) if raw_path else ""
    info = services.commit_info(sha)
    diffs = services.ci_diff(path, None, info.sha)
    parent = info.parents[0] if info.parents else None
    views = browse.present_diffs(diffs, revs=[parent, info.sha], can_view_secrets=_can_view_secrets(request),
                                 file_rev=info.sha)
    context: dict[str, Any] = {
        "commit": browse.commit_row(info, path),
        "parents": [
            {"short_sha": p[:10], "url": with_query(reverse("cmdb:commit_detail", kwargs={"sha": p}), path=path)}
            for p in info.parents
        ],
        "path": path,
        "path_url": services.path_url_at(path, info.sha) if path else None,
        "all_url": reverse("cmdb:commit_detail", kwargs={"sha": info.sha}),
        "browse_url": services.portal_url("page", "", info.sha),
        "diffs": views,
        "file_rev": info.sha,
    }
    # The history tab loads a commit's diffs into the page with htmx: then only the diffs are sent.
    partial = bool(getattr(request, "htmx", False))
    if not partial:
        context["refs"] = versions.commit_refs(info.sha)
    response = render(request, "cmdb/_diffs.html" if partial else "cmdb/commit_detail.html", context)
    patch_vary_headers(response, ("HX-Request",))
    return response


# ====================================================================================================
# Lint, search
# ====================================================================================================

_SEVERITY_RANK = Case(
    When(severity=LintWarning.Severity.ERROR, then=Value(0)),
    When(severity=LintWarning.Severity.WARNING, then=Value(1)),
    default=Value(2),
    output_field=IntegerField(),
)


@require_safe
def lint_list(request: HttpRequest) -> HttpResponse:
    form = LintFilterForm(request.GET or None)
    qs = LintWarning.objects.select_related("ci").only(
        "path", "code", "severity", "message", "ci__path", "ci__kind", "ci__name"
    )
    sort = "severity"
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        if data["code"]:
            qs = qs.filter(code=data["code"])
        if data["severity"]:
            qs = qs.filter(severity=data["severity"])
        if data["path"]:
            qs = qs.filter(path__startswith=data["path"].strip("/"))
        sort = data["sort"]
    qs = qs.annotate(severity_rank=_SEVERITY_RANK).order_by(*form.order_by())
    page = Paginator(qs, LINT_PER_PAGE).get_page(request.GET.get("page"))
    rows = [
        {"w": w, "ci_url": w.ci.get_absolute_url() if w.ci_id else None, "ci_path": w.ci.path if w.ci_id else "",
         "file_url": services.portal_url("file", w.path) if w.ci_id and w.path != w.ci.path else None}
        for w in page.object_list
    ]
    query = request.GET.copy()
    query.pop("page", None)
    headers = []
    for key, label in (("severity", "Severity"), ("code", "Code"), ("path", "Path"), ("ci", "Configuration item"),
                       ("message", "Message")):
        current = sort.lstrip("-") == key
        desc = sort.startswith("-")
        query["sort"] = f"-{key}" if current and not desc else key
        headers.append({"label": label, "url": f"?{query.urlencode()}", "active": current,
                        "desc": current and desc})
    return render(request, "cmdb/lint_list.html", {
        "form": form,
        "page": page,
        "rows": rows,
        "headers": headers,
        "filtered": form.is_bound and any(request.GET.get(k) for k in ("code", "severity", "path")),
    })


@dataclass
class SearchRow:
    item: ConfigItem
    url: str
    snippet: str
    rank: float


@require_safe
def search(request: HttpRequest) -> HttpResponse:
    form = SearchForm(request.GET or None)
    rows: list[SearchRow] = []
    query = ""
    if form.is_bound and form.is_valid():
        query = form.cleaned_data["q"]
    if query:
        hits = fts.search(query)
        items = ConfigItem.objects.only("path", "name", "kind", "artifact_count", "warning_count").in_bulk(
            [h.ci_id for h in hits]
        )
        for hit in hits:
            item = items.get(hit.ci_id)
            if item is not None:
                # READMEs are never secret files, but a key pasted into one is still masked.
                snippet = browse.snippet_html(mask_text(hit.snippet))
                rows.append(SearchRow(item, item.get_absolute_url(), snippet, hit.rank))
    tags = [{"tag": t, "url": reverse("cmdb:commit_detail", kwargs={"sha": t.sha})} for t in versions.search_tags(query)]
    return render(request, "cmdb/search.html", {"form": form, "query": query, "rows": rows, "tags": tags})


# ====================================================================================================
# Sync
# ====================================================================================================


@require_POST
def sync_start(request: HttpRequest) -> HttpResponse:
    if not request.user.is_staff:
        raise PermissionDenied("Only staff can start a sync.")
    services.sync_request(trigger="button", acting_user=request.user)
    messages.success(request, "Sync requested: the index is brought up to date with origin in the background.")
    target = request.POST.get("next") or ""
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                           require_https=request.is_secure()):
        target = reverse("cmdb:syncrun_list")
    return redirect(target)


@require_safe
def syncrun_list(request: HttpRequest) -> HttpResponse:
    qs = SyncRun.objects.select_related("requested_by").order_by("-started_at", "-pk")
    page = Paginator(qs, SYNC_RUNS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "cmdb/syncrun_list.html", {"page": page})
