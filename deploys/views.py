"""Browser pages of dry-run jobs, mounted at ``/jobs/``: the job page and its live-refreshed partial.

Refusals propagate to :class:`portal.middleware.RefusalMiddleware`."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from changes.models import ChangeRequest
from cmdb.browse import highlight_diff
from deploys import permissions, services
from deploys.models import Job
from fleet import planner


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
        "log": list(job.log_lines.all()),
        "can_cancel": not job.is_finished and permissions.can_cancel(user, job),
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
