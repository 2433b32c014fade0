"""Browser UI of audits and status accounting, mounted at ``/audits/``."""

from django.urls import path

from audits import views
from cmdb import converters  # noqa: F401 (registers the id converter)

app_name = "audits"

urlpatterns = [
    path("", views.audit_list, name="audit_list"),
    path("start/", views.audit_start, name="audit_start"),
    path("<id:pk>/", views.audit_detail, name="audit_detail"),
    path("findings/", views.finding_list, name="finding_list"),
    path("findings/<id:pk>/", views.finding_detail, name="finding_detail"),
    path("findings/<id:pk>/act/", views.finding_act, name="finding_act"),
    path("checks/", views.check_list, name="check_list"),
    path("checks/<id:pk>/", views.check_record, name="check_record"),
    path("machines/", views.machinestatus_list, name="machinestatus_list"),
]
