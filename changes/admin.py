"""Admin of change control.

Change requests are handled in the portal (every step must be recorded): here they are read-only
but for their watchers. Staff manage approval policies and freeze periods here; standing change
windows are shown here and written on their page (/changes/windows/), which records each write. The
record (ChangeEvent) is strictly read-only, for superusers too.
"""

from django.contrib import admin

from changes.models import (
    Approval,
    ApprovalPolicy,
    Baseline,
    ChangeEvent,
    ChangeRequest,
    ChangeWindow,
    Comment,
    FreezePeriod,
    ImpactedCI,
    UnauthorizedCommit,
)


class StaffAdmin(admin.ModelAdmin):
    """Staff administer change control: they see these models without per-model permissions."""

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff


class StaffManagedAdmin(StaffAdmin):
    """Configuration staff add, change and delete here (policies, freezes)."""

    def has_add_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_change_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff

    def has_delete_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff


class ReadOnlyAdmin(StaffAdmin):
    """Rows written by the portal's workflows: looked at, never added, edited or deleted here."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff


class ImpactedInline(ReadOnlyInline):
    model = ImpactedCI
    fields = ("path", "kind", "environment", "machine", "reason", "via", "deploy")


class ApprovalInline(ReadOnlyInline):
    model = Approval
    fields = ("user", "decision", "head_sha", "created_at", "dismissed_at", "dismissed_reason", "comment")


class CommentInline(ReadOnlyInline):
    model = Comment
    fields = ("author", "created_at", "body")


class EventInline(ReadOnlyInline):
    model = ChangeEvent
    fields = ("at", "actor", "action", "message", "commit_sha")


@admin.register(ChangeRequest)
class ChangeRequestAdmin(StaffAdmin):
    """Read-mostly: only the watchers may be changed here; every other step goes through the portal."""

    list_display = ("reference", "title", "state", "type", "risk", "requester", "branch", "planned_start", "updated_at")
    list_filter = ("state", "type", "risk", "branch_missing", "implemented_without_approval")
    search_fields = ("title", "branch", "head_sha", "merged_sha", "requester__username")
    list_select_related = ("requester",)
    date_hierarchy = "created_at"
    fields = (
        "title", "state", "type", "risk", "requester", "branch", "head_sha", "base_sha", "merged_sha", "branch_missing",
        "reverts", "required_approvals", "planned_start", "planned_end", "implemented_without_approval",
        "approved_after_the_fact", "created_at", "updated_at", "description", "rollback_plan", "watchers",
    )
    readonly_fields = tuple(f for f in fields if f != "watchers")
    filter_horizontal = ("watchers",)
    inlines = (ImpactedInline, ApprovalInline, CommentInline, EventInline)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ApprovalPolicy)
class ApprovalPolicyAdmin(StaffManagedAdmin):
    list_display = ("environment", "required_approvals")
    search_fields = ("environment",)


@admin.register(FreezePeriod)
class FreezePeriodAdmin(StaffManagedAdmin):
    list_display = ("reason", "environment", "start", "end")
    list_filter = ("environment",)
    search_fields = ("reason", "environment")
    date_hierarchy = "start"


@admin.register(ChangeWindow)
class ChangeWindowAdmin(ReadOnlyAdmin):
    list_display = ("environment", "days", "start", "end", "note")
    list_filter = ("environment",)
    search_fields = ("environment", "note")


@admin.register(Baseline)
class BaselineAdmin(ReadOnlyAdmin):
    list_display = ("name", "sha", "created_by", "created_at")
    search_fields = ("name", "sha", "note")
    list_select_related = ("created_by",)


@admin.register(UnauthorizedCommit)
class UnauthorizedCommitAdmin(ReadOnlyAdmin):
    list_display = ("sha", "summary", "author", "committed_at", "status", "change", "resolved_by")
    list_filter = ("status",)
    search_fields = ("sha", "summary", "author", "reason")
    list_select_related = ("change", "resolved_by")


@admin.register(ChangeEvent)
class ChangeEventAdmin(ReadOnlyAdmin):
    """The append-only record: no add, change or delete for anyone, superusers included."""

    list_display = ("at", "action", "change", "actor", "commit_sha", "message")
    list_filter = ("action",)
    search_fields = ("message", "commit_sha", "action")
    list_select_related = ("change", "actor")
    date_hierarchy = "at"
    actions = None
