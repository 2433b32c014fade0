"""Browser UI of dry-run jobs, mounted at ``/jobs/``."""

from django.urls import path

from changes import views_jobs

app_name = "jobs"

urlpatterns = [
    path("<int:pk>/", views_jobs.job_detail, name="job_detail"),
    path("<int:pk>/cancel/", views_jobs.job_cancel, name="job_cancel"),
    path("change/<int:pk>/dry-run/", views_jobs.change_dry_run, name="change_dry_run"),
]
