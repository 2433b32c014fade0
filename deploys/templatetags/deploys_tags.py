"""Template helpers for jobs on other pages: ``{% load deploys_tags %}``.

``{% can_dry_run change as may_dry_run %}``, ``{% recent_dry_runs change as jobs %}`` and
``{% release_box change as release %}`` let the change request's page show the dry-run and deploy
buttons and the latest jobs without its view (change control) knowing about release.
"""

from __future__ import annotations

from django import template

from deploys import permissions, rollout, services
from deploys.models import Job
from fleet import planner

register = template.Library()


@register.simple_tag(takes_context=True)
def can_dry_run(context, change=None) -> bool:
    """Whether to offer the dry-run button: never for a change made only of documentation (no
    machine needs a deploy, so a dry run would only show drift the change has nothing to do with)."""
    request = context.get("request")
    if change is not None and (change.documentation_only or change.state in services.DRY_RUN_FINISHED_STATES):
        return False
    return bool(request is not None and permissions.can_dry_run(request.user, change))


@register.simple_tag
def recent_dry_runs(change, limit: int = 5) -> list[Job]:
    """The change request's latest jobs of every kind (dry runs, deploys, restores)."""
    return list(Job.objects.filter(change=change).select_related("requested_by")[:limit])


@register.simple_tag(takes_context=True)
def release_box(context, change) -> dict:
    """What the change request page offers once released: the plan to deploy, its conflicts, whether
    this user may deploy it and whether the portal deploys to its machines at all."""
    request = context.get("request")
    if request is None or not change.merged_sha:
        return {}
    plan = rollout.latest_plan(change)
    origins = {"change": 0, "conflict": 0, "drift": 0}
    if plan is not None:
        for items in plan.plans.values_list("items", flat=True):
            for origin, n in planner.count_origins(items).items():
                origins[origin] += n
    machines = change.machines()
    return {
        "plan": plan, "origins": origins,
        "may_deploy": permissions.can_deploy(request.user) and change.state in rollout.DEPLOYABLE_STATES,
        "enabled": [m for m in machines if rollout.deploy_enabled(m)],
        "machines": machines,
    }
