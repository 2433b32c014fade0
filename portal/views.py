"""The home page: status accounting, "does everything still work?", from stored figures.

The composition root may read every app: identification (the index), change control, release and
audits. The page opens with the verdict (:mod:`portal.status`); every figure comes from a fixed
number of queries (pinned in tests/portal/test_home.py).
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_safe

from changes import queries as change_queries
from changes.templatetags.changes_tags import STATES
from cmdb import browse, indexer, layout, services
from cmdb.forms import SearchForm
from cmdb.gitrepo import GitError
from cmdb.models import ConfigItem, LintWarning, SyncRun, SyncState
from portal.listing import with_query
from portal.status import status_verdict

RECENT_COMMITS = 10
KIND_ORDER = [layout.ENVIRONMENT, layout.MACHINE, layout.APPLICATION, layout.COMMON_KIND]
KIND_LABELS = {
    layout.ROOT: "Repository",
    layout.ENVIRONMENT: "Environments",
    layout.MACHINE: "Machines",
    layout.APPLICATION: "Applications",
    layout.COMMON_KIND: "Common folders",
}


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    # Figures stored by the last sync (one row), not aggregated over the whole index per request.
    state = SyncState.objects.filter(pk=1).only("stats").first()
    stats = (state.stats if state else None) or indexer.compute_stats()
    by_kind = stats["kinds"]
    counts = [
        {"kind": kind, "label": KIND_LABELS[kind], "n": by_kind.get(kind, 0)} for kind in KIND_ORDER
    ]
    lint = stats["lint"]
    labels = dict(LintWarning.Code.choices)
    lint_url = reverse("cmdb:lint_list")
    lint_rows = [
        {"code": r["code"], "label": labels.get(r["code"], r["code"]), "severity": r["severity"], "n": r["n"],
         "url": with_query(lint_url, code=r["code"], severity=r["severity"])}
        for r in lint
    ]
    counts.append({"kind": "artifact", "label": "Artifacts", "n": stats["artifacts"]})
    counts.append({"kind": "warning", "label": "Warnings", "n": sum(r["n"] for r in lint), "url": lint_url})
    last_run = SyncRun.objects.select_related("requested_by").first()
    per_env = stats["environments"]
    envs = (
        ConfigItem.objects.filter(kind=layout.ENVIRONMENT)
        .only("path", "name", "readme_markdown", "readme_html", "warning_count", "artifact_count")
        .order_by("name")
    )
    env_cards = [
        {"name": e.name, "url": e.get_absolute_url(), "machines": per_env.get(e.path, {}).get("machines", 0),
         "applications": per_env.get(e.path, {}).get("applications", 0),
         "warnings": e.warning_count, "excerpt": browse.excerpt(e.readme_markdown, rendered=e.readme_html)}
        for e in envs
    ]
    commit_error = ""
    try:
        commits = [browse.commit_row(c) for c in services.recent_commits(RECENT_COMMITS)]
    except GitError as exc:
        commits, commit_error = [], str(exc)
    return render(request, "portal/home.html", {
        "status": status_verdict(environments=[e["name"] for e in env_cards]),
        "change_control": _change_control_card(request.user),
        "counts": counts,
        "lint_rows": lint_rows,
        "last_run": last_run,
        "env_cards": env_cards,
        "commits": commits,
        "commit_error": commit_error,
        "search_form": SearchForm(),
    })


AWAITING_SHOWN = 5
UNAUTHORIZED_SHOWN = 5


def _change_control_card(user) -> dict:
    """The home page's change-control card: open CRs per state, the user's pending votes, unauthorized
    commits on main. Four queries (five for approvers), whatever the number of change requests."""
    list_url = reverse("changes:change_list")
    by_state = change_queries.open_counts()
    awaiting = list(change_queries.awaiting_approval(user).select_related("requester").order_by("pk")[: AWAITING_SHOWN + 1])
    unauthorized = change_queries.open_unauthorized()
    return {
        "states": [
            {"state": state, "label": STATES[state][0], "n": n, "url": with_query(list_url, state=state)}
            for state, n in by_state.items()
        ],
        "open_total": sum(by_state.values()),
        "open_url": with_query(list_url, state="open"),
        "awaiting": awaiting[:AWAITING_SHOWN],
        "awaiting_more": len(awaiting) > AWAITING_SHOWN,
        "awaiting_url": with_query(list_url, awaiting="on"),
        "unauthorized": list(unauthorized[:UNAUTHORIZED_SHOWN]),
        "unauthorized_count": unauthorized.count(),
    }
