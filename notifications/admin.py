"""Admin: targets without their secrets; the delivery log read-only."""

from django.contrib import admin

from notifications.models import Delivery, Target


@admin.register(Target)
class TargetAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "enabled", "created_by", "created_at")
    list_filter = ("kind", "enabled")
    search_fields = ("name",)
    # Secrets and token-bearing URLs are set in the portal's own form, which never shows them back.
    exclude = ("secret", "url")
    readonly_fields = ("secret_masked", "url_masked", "created_by", "created_at")

    def has_add_permission(self, request):
        return False  # created in /notifications/, whose service checks what each kind needs


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ("created_at", "target", "event", "dedupe_key", "state", "attempts", "http_status")
    list_filter = ("state", "event", "target")
    search_fields = ("dedupe_key",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
