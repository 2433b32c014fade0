"""Browser pages of audits: runs, findings and what to do with them, manual checks, machine status.

Every page needs a login (the project's middleware); every action checks its permission in the
service; a refusal propagates to :class:`portal.middleware.RefusalMiddleware` (403, 409, 400). Reads come from stored rows (see ``audits.queries``).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Case, Count, IntegerField, Value, When
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from audits import forms, permissions, queries, services
from audits.matrix import audit_matrix
from audits.models import AuditRun, Finding, MachineResult, ManualCheck
from cmdb.browse import highlight_diff
from portal.errors import ServiceError

RUNS_PER_PAGE = 25
RESULTS_PER_PAGE = 100
ATTENTION_ORDER = ("drifted", "unreachable", "error", "manual", "compliant")
FINDINGS_PER_PAGE = 50
MACHINES_PER_PAGE = 50


@require_GET
def audit_list(request):
    runs = AuditRun.objects.select_related("requested_by").only(
        "id", "scope", "state", "trigger", "requested_by__username", "created_at", "finished_at", "summary",
        "machines_done", "machines_total",
    )
    page = Paginator(runs, RUNS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "audits/audit_list.html", {
        "page": page,
        "form": forms.AuditStartForm(),
        "can_start": permissions.can_start(request.user),
        "next_audit_at": queries.next_scheduled_audit(),
        "trend": [{"environment": name, "trend": trend} for name, trend in queries.compliance_trends().items()],
        "crontab": _crontab_text(),
        "time_zone": settings.TIME_ZONE,
    })


def _crontab_text() -> str:
    return " ".join(settings.CMDB_AUDIT_CRONTAB[k] for k in ("minute", "hour", "day_of_month", "month_of_year",
                                                             "day_of_week"))


@require_POST
def audit_start(request):
    form = forms.AuditStartForm(request.POST)
    if not form.is_valid():
        raise ServiceError("Invalid scope.")
    run = services.audit_start(acting_user=request.user, scope=form.cleaned_data["scope"],
                               trigger=AuditRun.Trigger.MANUAL)
    messages.success(request, f"Audit #{run.pk} of {run.scope_label} queued ({run.machines_total} machines).")
    return redirect(run)


@require_GET
def audit_detail(request, pk: int):
    run = get_object_or_404(AuditRun.objects.select_related("requested_by"), pk=pk)
    # A full audit has thousands of machines: paginated, the machines that need attention first,
    # filterable by status.
    counts = dict(run.results.order_by().values_list("status").annotate(n=Count("id")))
    status = request.GET.get("status") or ""
    if status not in MachineResult.Status.values:
        status = ""
    results = run.results.filter(status=status) if status else run.results.all()
    results = results.annotate(rank=Case(*(When(status=s, then=Value(i)) for i, s in enumerate(ATTENTION_ORDER)),
                                         default=Value(len(ATTENTION_ORDER)), output_field=IntegerField()))
    results = results.order_by("rank", "machine_path")
    page = Paginator(results, RESULTS_PER_PAGE).get_page(request.GET.get("page"))
    by_result: dict[int, list[Finding]] = {}
    for finding in Finding.objects.filter(result__in=list(page.object_list)).select_related("change", "handled_by"):
        by_result.setdefault(finding.result_id, []).append(finding)
    machines = [{"result": r, "findings": by_result.get(r.pk, [])} for r in page.object_list]
    matrix = audit_matrix(run.pk, list(page.object_list), by_result)
    template = "audits/_audit_body.html" if request.htmx else "audits/audit_detail.html"
    return render(request, template, {
        "run": run,
        "page": page,
        "status": status,
        "status_tabs": [(s, counts.get(s, 0)) for s in MachineResult.Status.values],
        "machines": machines,
        "matrix": matrix,
        "checks": list(run.manual_checks.select_related("checked_by")),
        "environments": sorted(run.summary.get("environments", {}).items()),
    })


@require_GET
def finding_list(request):
    form = forms.FindingFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    qs = queries.findings(state=filters.get("state", ""), environment=filters.get("environment", ""),
                          kind=filters.get("kind", ""), machine=filters.get("machine", ""),
                          application=filters.get("application", ""), run=filters.get("run"),
                          history=filters.get("history", False))
    page = Paginator(qs.select_related(None).only("id", "run_id", "machine_path", "target", "kind", "state", "secret", "change_id",
                             "app_path", "declared", "live"), FINDINGS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "audits/finding_list.html", {"page": page, "form": form})


@require_GET
def finding_detail(request, pk: int):
    finding = get_object_or_404(Finding.objects.select_related("run", "change", "handled_by", "carried_from"), pk=pk)
    user = request.user
    return render(request, "audits/finding_detail.html", {
        "finding": finding,
        "diff_html": highlight_diff(finding.diff) if finding.diff and not finding.secret else "",
        "can_acknowledge": finding.is_open and permissions.can_acknowledge(user),
        "can_open_change": finding.is_open and permissions.can_open_change(user),
        "adopt_refusal": finding.adopt_refusal,
        "form": forms.FindingActionForm(),
    })


@require_POST
def finding_act(request, pk: int):
    finding = get_object_or_404(Finding.objects.select_related("run"), pk=pk)
    form = forms.FindingActionForm(request.POST)
    if not form.is_valid():
        raise ServiceError("Choose an action.")
    action, note = form.cleaned_data["action"], form.cleaned_data["note"]
    act = services.FINDING_ACTIONS[action]
    finding = act(finding=finding, acting_user=request.user, note=note)
    if finding.change is not None:
        messages.success(request, f"Change request #{finding.change_id} opened for this finding.")
        return redirect(finding.change)
    messages.success(request, "Finding acknowledged.")
    return redirect(finding)


@require_GET
def check_list(request):
    overdue_only = request.GET.get("overdue") == "1"
    qs = queries.overdue_checks() if overdue_only else ManualCheck.objects.filter(state=ManualCheck.State.OPEN)
    environment = request.GET.get("environment", "").replace("\x00", "")[:255]  # PostgreSQL refuses NUL
    if environment:  # the home page's verdict links to one environment's overdue checks
        qs = qs.filter(environment=environment)
    checks = qs.select_related("run").order_by("due", "machine_path")
    page = Paginator(checks, MACHINES_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "audits/check_list.html", {
        "page": page, "overdue_only": overdue_only, "form": forms.ManualCheckForm(),
        "can_check": permissions.can_check(request.user),
    })


@require_POST
def check_record(request, pk: int):
    check = get_object_or_404(ManualCheck, pk=pk)
    form = forms.ManualCheckForm(request.POST)
    if not form.is_valid():
        raise ServiceError("Choose matches or discrepancy.")
    services.manual_check_record(check=check, acting_user=request.user, state=form.cleaned_data["state"],
                                 note=form.cleaned_data["note"])
    messages.success(request, f"Check of {check.machine_path} recorded.")
    return redirect("audits:check_list")


@require_GET
def machinestatus_list(request):
    form = forms.MachineFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    qs = queries.machine_statuses(environment=filters.get("environment", ""), status=filters.get("status", ""),
                                  q=filters.get("q", ""))
    page = Paginator(qs.select_related("last_result"), MACHINES_PER_PAGE).get_page(request.GET.get("page"))
    trends = queries.machine_trends([m.machine_path for m in page.object_list])
    rows = [{"status": m, "trend": trends.get(m.machine_path, [])} for m in page.object_list]
    return render(request, "audits/machinestatus_list.html", {"page": page, "rows": rows, "form": form})
