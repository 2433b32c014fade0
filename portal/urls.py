from django.contrib import admin
from django.urls import include, path

from portal import metrics, views
from portal.auth import SignInView

urlpatterns = [
    path("", views.home, name="home"),
    path("metrics", metrics.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("accounts/login/", SignInView.as_view(), name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/", include("portal.api_urls")),
    path("changes/", include("changes.urls")),
    path("jobs/", include("deploys.urls")),
    path("audits/", include("audits.urls")),
    path("account/", include("accounts.urls")),
    path("oidc/", include("portal.auth_oidc")),  # 404 unless CMDB_OIDC_CLIENT_ID is set
    path("notifications/", include("notifications.urls")),
    path("", include("cmdb.urls")),
]
