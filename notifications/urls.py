"""Browser UI of notifications, mounted at ``/notifications/`` (staff only)."""

from django.urls import path

from cmdb import converters  # noqa: F401 (registers the id converter)
from notifications import views

app_name = "notifications"

urlpatterns = [
    path("", views.target_list, name="target_list"),
    path("new/", views.target_create, name="target_create"),
    path("<id:pk>/", views.target_detail, name="target_detail"),
    path("<id:pk>/edit/", views.target_edit, name="target_edit"),
    path("<id:pk>/delete/", views.target_delete, name="target_delete"),
    path("<id:pk>/test/", views.target_test, name="target_test"),
    path("deliveries/<id:pk>/", views.delivery_detail, name="delivery_detail"),
]
