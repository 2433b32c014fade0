"""The rebuild runbook tab of environments and machines (``/ci/<path>/-/runbook/``).

The tab sits behind ``/-/`` like the other CI tabs, so a CI called ``runbook`` keeps its own page.
The runbook itself is built by :mod:`cmdb.runbook`; this view only checks the path and frames it.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from cmdb import layout, runbook
from cmdb.views import (
    _breadcrumbs,
    _can_view_secrets,
    _ci_path,
    _not_found,
    _rev,
    _rev_context,
    ci_tabs,
    repo_view,
)


@require_safe
@repo_view
def ci_runbook(request: HttpRequest, path: str) -> HttpResponse:
    path = _ci_path(path)
    ref = layout.ci_for_dir(path)
    if ref is None or ref.kind not in (layout.ENVIRONMENT, layout.MACHINE):
        return _not_found(request, "Rebuild runbooks exist for environments and machines only.")
    can_secrets = _can_view_secrets(request)
    if ref.kind == layout.MACHINE:
        book = runbook.machine_runbook(path, _rev(request), can_view_secrets=can_secrets)
    else:
        book = runbook.environment_runbook(path, _rev(request), page=request.GET.get("page"),
                                           can_view_secrets=can_secrets)
    if book is None:
        return _not_found(request, f"There is no {ref.kind} {path!r} at this revision.")
    return render(request, "cmdb/ci_runbook.html", {
        "kind": ref.kind,
        "title": ref.name,
        "ci_path": path,
        "breadcrumbs": _breadcrumbs(path, book.rev),
        "tabs": ci_tabs(path, ref.kind, book.rev, "runbook"),
        "tab": "runbook",
        "book": book,
        "can_view_secrets": can_secrets,
        **_rev_context(request, book.sha, book.rev),
    })
