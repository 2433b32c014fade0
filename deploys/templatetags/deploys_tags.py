"""Template helpers for dry runs on other pages: ``{% load deploys_tags %}``.

``{% can_dry_run change as may_dry_run %}`` and ``{% recent_dry_runs change as jobs %}`` let a page
(the change request's) show the dry-run button and the latest jobs without touching its view.
"""

from __future__ import annotations

from django import template

from deploys import permissions
from deploys.models import Job

register = template.Library()


@register.simple_tag(takes_context=True)
def can_dry_run(context, change=None) -> bool:
    """Whether to offer the dry-run button: never for a change made only of documentation (no
    machine needs a deploy, so a dry run would only show drift the change has nothing to do with)."""
    request = context.get("request")
    if change is not None and change.documentation_only:
        return False
    return bool(request is not None and permissions.can_dry_run(request.user, change))


@register.simple_tag
def recent_dry_runs(change, limit: int = 5) -> list[Job]:
    return list(Job.objects.filter(change=change).select_related("requested_by")[:limit])
