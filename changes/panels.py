"""The open-changes panel of a machine's page (registered with cmdb.panels in ChangesConfig.ready)."""

from __future__ import annotations

from django.db.models import Q
from django.http import HttpRequest

from changes.models import ChangeRequest, ImpactedCI

CHANGES_SHOWN = 20


def machine_panel(path: str, request: HttpRequest) -> tuple[str, dict]:
    """Open change requests whose impact includes the machine or one of its applications (one query)."""
    touching = ImpactedCI.objects.filter(Q(machine=path) | Q(path=path) | Q(path__startswith=f"{path}/"))
    rows = list(ChangeRequest.objects.filter(state__in=ChangeRequest.OPEN_STATES,
                                             pk__in=touching.values("change_id"))
                .select_related("requester").only("id", "title", "state", "type", "risk", "branch",
                                                  "planned_start", "planned_end", "created_at",
                                                  "requester__username")
                .order_by("-created_at", "-id")[:CHANGES_SHOWN + 1])
    return "changes/_machine_panel.html", {
        "changes": rows[:CHANGES_SHOWN], "more_changes": len(rows) > CHANGES_SHOWN, "machine_path": path,
    }
