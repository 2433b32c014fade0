"""The audit schedule is said in words (cron-descriptor) where it is shown, with the crontab kept in small text."""

from __future__ import annotations

import pytest

from audits.queries import audit_schedule_words


@pytest.mark.parametrize(("crontab", "words"), [
    ({"minute": "0", "hour": "2", "day_of_month": "1", "month_of_year": "*", "day_of_week": "*"},
     "at 02:00, on day 1 of the month"),
    ({"minute": "30", "hour": "3", "day_of_month": "*", "month_of_year": "*", "day_of_week": "1-5"},
     "at 03:30, monday through friday"),
])
def test_schedule_in_words(settings, crontab, words):
    settings.CMDB_AUDIT_CRONTAB = crontab
    assert audit_schedule_words().lower() == words


def test_a_crontab_the_library_cannot_say_is_shown_as_written(settings):
    settings.CMDB_AUDIT_CRONTAB = {"minute": "0", "hour": "2", "day_of_month": "1", "month_of_year": "*",
                                   "day_of_week": "not-a-day"}
    assert audit_schedule_words() == "0 2 1 * not-a-day"


def test_audits_page_home_and_api_say_the_schedule(synced, viewer, client_for, api_for):
    client = client_for(viewer)
    audits = client.get("/audits/").content.decode()
    assert "A full audit runs <span data-schedule-words>at 02:00, on day 1 of the month</span>" in audits
    assert "crontab <code>0 2 1 * *</code>" in audits
    assert "(runs at 02:00, on day 1 of the month)" in client.get("/").content.decode()
    assert api_for(viewer).get("/api/status/").json()["audit_schedule"] == "at 02:00, on day 1 of the month"
