"""Browser UI of jobs (dry runs, deploys, restores), mounted at ``/jobs/``."""

from django.urls import path

from cmdb import converters  # noqa: F401 (registers the id converter)
from deploys import views

app_name = "jobs"

urlpatterns = [
    path("", views.job_list, name="job_list"),
    path("<id:pk>/", views.job_detail, name="job_detail"),
    path("<id:pk>/restore/", views.job_restore, name="job_restore"),
    path("change/<id:pk>/deploy/", views.change_deploy, name="change_deploy"),
    path("<id:pk>/cancel/", views.job_cancel, name="job_cancel"),
    path("change/<id:pk>/dry-run/", views.change_dry_run, name="change_dry_run"),
]
