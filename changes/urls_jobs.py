"""Browser UI of dry-run jobs, mounted at ``/jobs/``."""

from django.urls import path

from changes import views_jobs
from cmdb import converters  # noqa: F401 (registers the id converter)

app_name = "jobs"

urlpatterns = [
    path("<id:pk>/", views_jobs.job_detail, name="job_detail"),
    path("<id:pk>/cancel/", views_jobs.job_cancel, name="job_cancel"),
    path("change/<id:pk>/dry-run/", views_jobs.change_dry_run, name="change_dry_run"),
]
