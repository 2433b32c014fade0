"""Admin for audits: read-mostly (runs and findings are written by the services, never by hand)."""

from django.contrib import admin

from audits.models import AuditRun, Finding, MachineResult, MachineStatus, ManualCheck


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(AuditRun)
class AuditRunAdmin(_ReadOnly):
    list_display = ["id", "scope", "state", "trigger", "requested_by", "created_at", "machines_done", "machines_total"]
    list_filter = ["state", "trigger"]


@admin.register(MachineResult)
class MachineResultAdmin(_ReadOnly):
    list_display = ["run", "machine_path", "status", "compliance"]
    list_filter = ["status", "environment"]
    search_fields = ["machine_path"]


@admin.register(Finding)
class FindingAdmin(_ReadOnly):
    list_display = ["id", "run", "machine_path", "target", "kind", "state", "change"]
    list_filter = ["kind", "state", "environment"]
    search_fields = ["machine_path", "target"]


@admin.register(ManualCheck)
class ManualCheckAdmin(_ReadOnly):
    list_display = ["run", "machine_path", "state", "checked_by", "due"]
    list_filter = ["state"]


@admin.register(MachineStatus)
class MachineStatusAdmin(_ReadOnly):
    list_display = ["machine_path", "status", "compliance", "open_findings", "last_audit_at"]
    list_filter = ["status", "environment"]
    search_fields = ["machine_path"]
