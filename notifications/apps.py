from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        from audits.signals import audit_finished
        from changes.signals import event_recorded
        from cmdb.signals import sync_failed
        from notifications import receivers

        event_recorded.connect(receivers.on_event_recorded, dispatch_uid="notifications.record")
        audit_finished.connect(receivers.on_audit_finished, dispatch_uid="notifications.audit")
        sync_failed.connect(receivers.on_sync_failed, dispatch_uid="notifications.sync")
