"""The release panel of a machine's page (registered with cmdb.panels in DeploysConfig.ready)."""

from __future__ import annotations

from django.http import HttpRequest

from deploys.models import Job, MachinePlan


def _last_plan(path: str, kinds: tuple[str, ...]) -> MachinePlan | None:
    # A job's machine rows say which machines it really touched (its scope may be a whole environment).
    return (MachinePlan.objects.filter(machine_path=path, job__kind__in=kinds)
            # Plans carry every file action and jobs their machine lists: not read for one line.
            .select_related("job", "job__change")
            .defer("items", "reload", "reload_results", "job__machines", "job__machines_missing", "job__error",
                   "job__change__impact", "job__change__description", "job__change__verification")
            .order_by("-job__created_at", "-job_id").first())


def machine_panel(path: str, request: HttpRequest) -> tuple[str, dict]:
    """The last deploy (or restore) and the last dry run that reached this machine: two queries."""
    return "deploys/_machine_panel.html", {
        "deploy": _last_plan(path, (Job.Kind.DEPLOY, Job.Kind.RESTORE)),
        "dry_run": _last_plan(path, (Job.Kind.DRY_RUN,)),
    }
