from django.contrib import admin
from django.urls import include, path

from portal import views

urlpatterns = [
    path("", views.home, name="home"),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/", include("portal.api_urls")),
    path("changes/", include("changes.urls")),
    path("jobs/", include("deploys.urls")),
    path("audits/", include("audits.urls")),
    path("notifications/", include("notifications.urls")),
    path("", include("cmdb.urls")),
]
