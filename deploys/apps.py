from django.apps import AppConfig


class DeploysConfig(AppConfig):
    name = "deploys"
    verbose_name = "Release (dry runs, deploys, verification)"

    def ready(self) -> None:
        from audits.signals import audit_finished, manual_check_recorded
        from changes.signals import change_released
        from cmdb import layout, panels
        from deploys import verification
        from deploys.panels import machine_panel

        audit_finished.connect(verification.on_audit_finished, dispatch_uid="deploys.verification")
        manual_check_recorded.connect(verification.on_manual_check_recorded, dispatch_uid="deploys.manual_checks")
        change_released.connect(verification.on_change_released, dispatch_uid="deploys.release_verification")
        panels.register(name="deploys.machine", order=20, kinds=(layout.MACHINE,), render=machine_panel)
