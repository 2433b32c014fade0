from django.apps import AppConfig


class AuditsConfig(AppConfig):
    name = "audits"
    verbose_name = "Auditing and status accounting"

    def ready(self) -> None:
        from audits.panels import machine_panel
        from cmdb import layout, panels

        panels.register(name="audits.machine", order=10, kinds=(layout.MACHINE,), render=machine_panel)
