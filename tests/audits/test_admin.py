"""The admin names the audit models in plain English."""

from __future__ import annotations

from audits.models import MachineStatus


def test_admin_index_says_machine_statuses(staff, client):
    staff.is_superuser = True  # the admin index lists what its user may view
    staff.save()
    client.force_login(staff)
    html = client.get("/admin/").content.decode()
    assert "Machine statuses" in html
    assert "statuss" not in html.lower()
    assert MachineStatus._meta.verbose_name_plural == "machine statuses"
