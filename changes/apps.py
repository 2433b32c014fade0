from django.apps import AppConfig


class ChangesConfig(AppConfig):
    name = "changes"
    verbose_name = "Change control"

    def ready(self) -> None:
        from changes.panels import machine_panel
        from cmdb import layout, panels
        from cmdb.signals import index_updated

        index_updated.connect(_after_sync, dispatch_uid="changes.after_sync")
        panels.register(name="changes.machine", order=30, kinds=(layout.MACHINE,), render=machine_panel)


def _after_sync(sender, previous, current, **kwargs) -> None:
    """After every sync: flag commits that bypassed change control, then refresh open CRs' branches."""
    from changes import services, unauthorized

    unauthorized.unauthorized_scan(previous=previous, current=current)
    services.refresh_open_changes()
