"""Read-only queries of release: the jobs list (page and API) with its filters."""

from __future__ import annotations

from django.db.models import QuerySet

from deploys.models import Job, MachinePlan


def jobs(*, kind: str = "", state: str = "", change: int | None = None, environment: str = "",
         machine: str = "") -> QuerySet[Job]:
    """Jobs newest first. ``environment``/``machine`` match the machines a job was asked to look at
    (a job's machine list is JSON, so the match goes through its per-machine rows and the list)."""
    qs = Job.objects.select_related("requested_by", "change").defer("machines", "machines_missing")
    if kind:
        qs = qs.filter(kind=kind)
    if state:
        qs = qs.filter(state=state)
    if change:
        qs = qs.filter(change_id=change)
    if machine:
        machine = machine.strip().strip("/")
        qs = qs.filter(pk__in=MachinePlan.objects.filter(machine_path=machine).values("job_id"))
    elif environment:
        env = environment.strip().strip("/")
        qs = qs.filter(pk__in=MachinePlan.objects.filter(machine_path__startswith=env + "/").values("job_id"))
    return qs.order_by("-created_at", "-id")
