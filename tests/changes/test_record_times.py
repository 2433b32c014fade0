"""The record shows moments in the portal's local time, as every other page does (not ISO timestamps)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from changes import services
from changes.models import ChangeEvent


def test_scheduled_event_names_the_window_in_local_time(synced, test_branch, make_change, requester, approver,
                                                         settings, client_for):
    settings.TIME_ZONE = "Europe/Paris"
    change = services.change_submit(change=make_change(test_branch), acting_user=requester)
    change = services.change_approve(change=change, acting_user=approver)
    start = datetime(2031, 12, 2, 6, 0, tzinfo=UTC)  # 07:00 in Paris
    services.change_schedule(change=change, acting_user=requester, planned_start=start,
                             planned_end=start + timedelta(hours=2))

    event = ChangeEvent.objects.get(change=change, action="scheduled")
    assert event.message == "Planned window Tue 2 Dec 07:00–09:00 Europe/Paris"
    assert event.data["planned_start"] == "2031-12-02T06:00:00+00:00"  # the exact moment stays in the data
    html = client_for(requester).get(change.get_absolute_url()).content.decode()
    assert "Planned window Tue 2 Dec 07:00–09:00 Europe/Paris" in html
    assert "2031-12-02T06:00:00+00:00 –" not in html
