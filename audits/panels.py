"""The audit panel of a machine's page (registered with cmdb.panels in AuditsConfig.ready)."""

from __future__ import annotations

from django.http import HttpRequest

from audits.models import Finding, MachineStatus, ManualCheck

FINDINGS_SHOWN = 10


def machine_panel(path: str, request: HttpRequest) -> tuple[str, dict]:
    """Latest status and compliance, the open findings of that audit, the latest manual check.

    Three queries whatever the number of runs: the status row carries its latest result; findings and
    checks are read through their indexed ``machine_path``/result and sliced.
    """
    status = MachineStatus.objects.select_related("last_result").filter(machine_path=path).first()
    findings: list[Finding] = []
    if status is not None and status.last_result_id is not None and status.open_findings:
        findings = list(Finding.objects.filter(result_id=status.last_result_id, state=Finding.State.OPEN)
                        .only("id", "target", "kind", "app_path").order_by("target", "kind")[:FINDINGS_SHOWN])
    check = (ManualCheck.objects.filter(machine_path=path).select_related("checked_by")
             .order_by("-run_id").first())
    return "audits/_machine_panel.html", {
        "status": status,
        "result": status.last_result if status is not None else None,
        "findings": findings,
        "more_findings": max(0, (status.open_findings if status else 0) - len(findings)),
        "check": check,
        "machine_path": path,
    }
