"""Browser UI of CM identification.

CI tabs follow the ``/-/`` convention (as GitLab does) so that a machine called ``history`` can never
be mistaken for a tab: ``/ci/<path>/`` is the overview, ``/ci/<path>/-/history/`` and
``/ci/<path>/-/compare/`` the other tabs; the root's tabs are ``/ci/-/history/`` and
``/ci/-/compare/`` (same URL names, reversed with ``path=""``). Environments and machines have
``/ci/<path>/-/runbook/``, their rebuild runbook.
"""

from django.urls import path

from cmdb import (
    converters,  # noqa: F401 (registers repopath and id)
    export_views,
    runbook_views,
    views,
)

app_name = "cmdb"


urlpatterns = [
    # Configuration items. The root's tab patterns carry path="" as a default, so
    # reverse("cmdb:ci_history", kwargs={"path": ""}) gives /ci/-/history/.
    path("ci/", views.ci_detail, {"path": ""}, name="root"),
    path("ci/-/history/", views.ci_history, {"path": ""}, name="ci_history"),
    path("ci/-/compare/", views.ci_compare, {"path": ""}, name="ci_compare"),
    path("ci/<repopath:path>/-/history/", views.ci_history, name="ci_history"),
    path("ci/<repopath:path>/-/compare/", views.ci_compare, name="ci_compare"),
    path("ci/<repopath:path>/-/runbook/", runbook_views.ci_runbook, name="ci_runbook"),
    path("ci/<repopath:path>/", views.ci_detail, name="ci_detail"),
    # Files
    path("files/<repopath:path>", views.artifact_detail, name="artifact_detail"),
    path("raw/<repopath:path>", views.raw, name="raw"),
    # History
    path("commits/<str:sha>/", views.commit_detail, name="commit_detail"),
    # The offline export (a zip)
    path("export/", export_views.docs_export, name="docs_export"),
    # Index
    path("lint/", views.lint_list, name="lint_list"),
    path("search/", views.search, name="search"),
    path("sync/", views.sync_start, name="sync_start"),
    path("sync/runs/", views.syncrun_list, name="syncrun_list"),
]
