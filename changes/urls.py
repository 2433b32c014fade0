"""Browser UI of change control, mounted at ``/changes/``.

State-changing actions are POSTs to ``<pk>/<action>/`` (one URL name, ``change_action``); an action
name outside ``views.ACTIONS`` is a 404.
"""

from django.urls import path, re_path

from changes import baseline_views, views, window_views
from cmdb import converters  # noqa: F401 (registers the id converter)
from cmdb.converters import ID_REGEX

app_name = "changes"

urlpatterns = [
    path("", views.change_list, name="change_list"),
    path("new/", views.change_create, name="change_create"),
    path("<id:pk>/", views.change_detail, name="change_detail"),
    path("<id:pk>/edit/", views.change_edit, name="change_edit"),
    path("<id:pk>/comment/", views.change_comment, name="change_comment"),
    re_path(rf"^(?P<pk>{ID_REGEX})/(?P<action>{'|'.join(views.ACTIONS)})/$", views.change_action, name="change_action"),
    path("baselines/", baseline_views.baseline_list, name="baseline_list"),
    path("baselines/new/", baseline_views.baseline_create, name="baseline_create"),
    path("baselines/compare/", baseline_views.baseline_compare, name="baseline_compare"),
    path("unauthorized/", views.unauthorized_list, name="unauthorized_list"),
    path("unauthorized/<id:pk>/resolve/", views.unauthorized_resolve, name="unauthorized_resolve"),
    path("freezes/", views.freeze_list, name="freeze_list"),
    path("windows/", window_views.window_list, name="window_list"),
    path("windows/new/", window_views.window_create, name="window_create"),
    path("windows/<id:pk>/delete/", window_views.window_delete, name="window_delete"),
]
