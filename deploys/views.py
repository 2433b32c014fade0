"""Browser pages of dry-run jobs, mounted at ``/jobs/``: the job page and its live-refreshed partial.

Refusals propagate to :class:`portal.middleware.RefusalMiddleware`."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from changes.models import ChangeRequest
from cmdb.browse import highlight_diff
from deploys import forms, permissions, queries, rollout, services
from deploys.models import Job
from fleet import planner
from portal.listing import form_error

JOBS_PER_PAGE = 50


def _poll_interval(job: Job, plans: list) -> str:
    """How soon the page asks again: quickly while a new job has nothing to show yet, so the first
    machine's plan appears well within a second of the click; then every 2 s, which is cheap for long jobs."""
    if not plans and (timezone.now() - job.created_at).total_seconds() < 10:
        return "300ms"
    return "2s"


def _context(request, job: Job) -> dict:
    plans = []
    for plan in job.plans.all():
        groups: dict[str, list[dict]] = {"conflict": [], "change": [], "drift": [], "other": []}
        for item in plan.items:
            shown = dict(item)
            shown["diff_html"] = highlight_diff(item["diff"]) if item.get("diff") else ""
            shown["base_diff_html"] = highlight_diff(item["base_diff"]) if item.get("base_diff") else ""
            groups[item.get("origin") if item.get("origin") in planner.ORIGINS else "other"].append(shown)
        plans.append({"plan": plan, "groups": groups, "counts": planner.summarize(plan.items),
                      "origins": planner.count_origins(plan.items)})
    user = request.user
    return {
        "job": job,
        "plans": plans,
        "poll": _poll_interval(job, plans),
        "log": list(job.log_lines.all()),
        "can_cancel": not job.is_finished and permissions.can_cancel(user, job),
        "can_restore": (job.kind == Job.Kind.DEPLOY and job.state in (Job.State.FAILED, Job.State.HALTED,
                                                                     Job.State.INTERRUPTED)
                        and permissions.can_deploy(user)),
    }


def _job(pk: int) -> Job:
    return get_object_or_404(Job.objects.select_related("change", "requested_by"), pk=pk)


@require_GET
def job_detail(request, pk: int):
    job = _job(pk)
    template = "deploys/_job_body.html" if request.htmx else "deploys/job_detail.html"
    return render(request, template, _context(request, job))


@require_POST
def job_cancel(request, pk: int):
    job = _job(pk)
    services.dryrun_cancel(job=job, acting_user=request.user)
    messages.success(request, f"Dry run {job.pk} cancelled.")
    return redirect(job)


@require_POST
def change_dry_run(request, pk: int):
    """Start a dry run of a change request (the button on its page) and show the job."""
    change = get_object_or_404(ChangeRequest, pk=pk)
    job = services.dryrun_start(acting_user=request.user, change=change)
    return redirect(job)


@require_POST
def change_deploy(request, pk: int):
    """Deploy a released change request's reviewed plan (the button of its page) and show the job."""
    change = get_object_or_404(ChangeRequest, pk=pk)
    form = forms.DeployForm(request.POST)
    if not form.is_valid():
        raise services.DeployError(form_error(form))
    plan = get_object_or_404(Job, pk=form.cleaned_data["plan"]) if form.cleaned_data.get("plan") else None
    job = rollout.deploy_start(acting_user=request.user, change=change, plan_job=plan,
                               confirm_conflicts=form.cleaned_data["confirm_conflicts"])
    return redirect(job)


@require_POST
def job_restore(request, pk: int):
    job = rollout.restore_start(acting_user=request.user, deploy=_job(pk))
    return redirect(job)


@require_GET
def job_list(request):
    """Every job, newest first: dry runs, deploys and restores, filterable and paginated."""
    form = forms.JobFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    page = Paginator(queries.jobs(**filters), JOBS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "deploys/job_list.html", {"page": page, "form": form})
