"""Browser UI of accounts, mounted at ``/account/``."""

from django.urls import path

from accounts import views
from cmdb import converters  # noqa: F401 (registers the id converter)

app_name = "accounts"

urlpatterns = [
    path("", views.profile, name="profile"),
    path("tokens/", views.token_list, name="token_list"),
    path("tokens/<id:pk>/revoke/", views.token_revoke, name="token_revoke"),
]
