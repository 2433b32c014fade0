"""Admin for the CM identification index: read-only, since the index is rebuilt from Git by every sync."""

from django.contrib import admin

from cmdb.models import Artifact, Commit, ConfigItem, LintWarning, SyncRun, SyncState


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows come from the repository: they can be looked at and searched, never added, edited or deleted."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Commit)
class CommitAdmin(ReadOnlyAdmin):
    list_display = ("short_sha", "summary", "author_name", "committed_at")
    search_fields = ("sha", "summary", "author_name", "author_email")
    date_hierarchy = "committed_at"


@admin.register(ConfigItem)
class ConfigItemAdmin(ReadOnlyAdmin):
    list_display = ("path", "kind", "name", "has_readme", "artifact_count", "warning_count", "last_commit")
    list_filter = ("kind", "has_readme")
    search_fields = ("path", "name")
    list_select_related = ("last_commit",)
    exclude = ("readme_html",)
    raw_id_fields = ("parent", "last_commit")


@admin.register(Artifact)
class ArtifactAdmin(ReadOnlyAdmin):
    list_display = ("path", "size", "is_secret", "is_binary", "is_image", "is_symlink")
    list_filter = ("is_secret", "is_binary", "is_image", "is_symlink")
    search_fields = ("path", "blob_sha")
    raw_id_fields = ("ci",)


@admin.register(LintWarning)
class LintWarningAdmin(ReadOnlyAdmin):
    list_display = ("path", "code", "severity", "message")
    list_filter = ("severity", "code")
    search_fields = ("path", "message")
    raw_id_fields = ("ci",)


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyAdmin):
    list_display = ("started_at", "trigger", "requested_by", "status", "mode", "to_sha", "paths_changed", "duration_ms")
    list_filter = ("status", "mode", "trigger")
    search_fields = ("from_sha", "to_sha", "error", "trigger")
    list_select_related = ("requested_by",)
    date_hierarchy = "started_at"


@admin.register(SyncState)
class SyncStateAdmin(ReadOnlyAdmin):
    list_display = ("branch", "indexed_commit", "indexed_at", "running_since", "pending", "last_error_at")
    list_select_related = ("indexed_commit",)
