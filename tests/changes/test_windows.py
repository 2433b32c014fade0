"""Windows and freezes at release time: a change is released inside its planned window and the standing
windows of its environments, never in a freeze, except an emergency with a reason (flagged); scheduling
honours the standing windows; staff keep the windows (page, API, record)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from changes import services
from changes.models import ChangeEvent, ChangeRequest, ChangeWindow, FreezePeriod
from tests.changes.apiutil import TEST_BRANCH, TLS_BRANCH, origin_rev, token_client
from tests.changes.ui import action_url, events
from tests.changes.ui import post as form_post
from tests.fixtures.windows import around_now

pytestmark = pytest.mark.django_db
PARIS = ZoneInfo("Europe/Paris")
ROLES = ("viewer", "requester", "approver", "staff")
ALL_DAYS = list(range(7))
WHOLE_DAY = {"start": time(0, 0), "end": time(23, 59, 59, 999999)}


def post(client, url, data=None):
    return client.post(url, data if data is not None else "", content_type="application/json")


def paris(*args) -> datetime:
    return datetime(*args, tzinfo=PARIS)


def window(environment: str, weekdays, start: time, end: time, note: str = "") -> ChangeWindow:
    return ChangeWindow.objects.create(environment=environment, weekdays=list(weekdays), start=start, end=end,
                                       note=note)


def not_today() -> list[int]:
    """A weekday that is not today's in the portal's time zone (a window then that surely is closed now)."""
    return [(timezone.localtime(timezone.now(), timezone.get_default_timezone()).weekday() + 3) % 7]


@pytest.fixture
def paris_time(settings):
    settings.TIME_ZONE = "Europe/Paris"


@pytest.fixture
def cr(branch_repo, requester, approver):
    """``cr(branch=TEST_BRANCH, state="approved", **fields)``: a CR walked to ``state`` by the services."""

    def make(branch=TEST_BRANCH, state="approved", **fields):
        fields.setdefault("title", f"Change on {branch}")
        change = services.change_create(acting_user=requester, branch=branch, **fields)
        if state == "draft":
            return change
        change = services.change_submit(change=change, acting_user=requester)
        if state == "approved":
            change = services.change_approve(change=change, acting_user=approver)
            assert change.state == ChangeRequest.State.APPROVED
        return change

    return make


def unreleased(branch_repo, change: ChangeRequest, main_before: str, state: str = "approved") -> None:
    """A refused release leaves origin's main, the CR and the record as they were."""
    assert origin_rev(branch_repo) == main_before
    change.refresh_from_db()
    assert (change.state, change.merged_sha, change.released_outside_window) == (state, "", "")
    assert "merged" not in events(change)


# ====================================================================================================
# The rule (ChangeRequest.release_window_problem), at fixed moments
# ====================================================================================================


def production_change(**fields) -> ChangeRequest:
    return ChangeRequest(impact={"cis": [{"environment": "production"}]}, **fields)


def test_the_release_rule_names_the_planned_window_in_the_portals_time_zone(paris_time):
    change = production_change(planned_start=paris(2025, 12, 2, 7), planned_end=paris(2025, 12, 2, 9))
    assert change.release_window_problem(paris(2025, 11, 29, 8)) == (
        "outside its planned window (Tue 2 Dec 07:00–09:00 Europe/Paris)")
    assert change.release_window_problem(paris(2025, 12, 2, 9)) is not None  # the end is outside
    assert change.release_window_problem(paris(2025, 12, 2, 7)) is None
    overnight = production_change(planned_start=paris(2025, 12, 2, 22), planned_end=paris(2025, 12, 3, 2))
    assert overnight.release_window_problem(paris(2025, 12, 3, 3)) == (
        "outside its planned window (Tue 2 Dec 22:00 – Wed 3 Dec 02:00 Europe/Paris)")


def test_the_release_rule_refuses_a_freeze_of_its_environments_until_it_ends(paris_time):
    change = production_change(planned_start=paris(2025, 12, 20), planned_end=paris(2026, 1, 5))
    FreezePeriod.objects.create(start=paris(2025, 12, 22), end=paris(2025, 12, 24, 18), reason="staging only",
                                environment="staging")
    assert change.release_window_problem(paris(2025, 12, 23, 8)) is None  # another environment's freeze
    FreezePeriod.objects.create(start=paris(2025, 12, 22), end=paris(2025, 12, 24, 18), reason="holidays")
    assert change.release_window_problem(paris(2025, 12, 23, 8)) == (
        "inside the freeze “holidays” until Wed 24 Dec 18:00 Europe/Paris")
    assert change.release_window_problem(paris(2025, 12, 24, 18)) is None  # the freeze is over


def test_the_release_rule_honours_standing_windows_and_needs_some_window(paris_time):
    window("production", [1, 3], time(7), time(9))
    no_plan = production_change()
    assert no_plan.release_window_problem(paris(2025, 12, 4, 8, 30)) is None  # Thursday 08:30
    assert no_plan.release_window_problem(paris(2025, 12, 3, 8, 30)) == (
        "outside the standing change windows of production (Tue, Thu 07:00–09:00 Europe/Paris)")
    planned = production_change(planned_start=paris(2025, 12, 2, 8), planned_end=paris(2025, 12, 2, 12))
    assert planned.release_window_problem(paris(2025, 12, 2, 10)) is not None  # planned, but not standing
    # An environment without standing windows is unconstrained inside a planned window ...
    test_only = ChangeRequest(impact={"cis": [{"environment": "test"}]}, planned_start=paris(2025, 12, 3, 10),
                              planned_end=paris(2025, 12, 3, 11))
    assert test_only.release_window_problem(paris(2025, 12, 3, 10, 30)) is None
    # ... and without one, nothing vouches for the moment.
    assert ChangeRequest(impact={"cis": [{"environment": "test"}]}).release_window_problem(
        paris(2025, 12, 3, 10, 30)) == "without a planned window, and no standing change window covers its environments"


# ====================================================================================================
# Implement: API and browser
# ====================================================================================================


def test_implement_before_the_window_is_a_409_with_the_reason_and_changes_nothing(branch_repo, cr, staff, paris_time):
    start = timezone.now() + timedelta(days=3)
    change = cr(planned_start=start, planned_end=start + timedelta(hours=2))
    main = origin_rev(branch_repo)
    r = post(token_client(staff), f"/api/changes/{change.pk}/implement/")
    assert r.status_code == 409
    assert r.json()["detail"].startswith(f"{change.reference} cannot be released now: it would be released "
                                         "outside its planned window (")
    assert "Europe/Paris)" in r.json()["detail"]
    unreleased(branch_repo, change, main)


def test_implement_inside_the_window_releases(branch_repo, cr, staff):
    change = cr(**around_now())
    r = post(token_client(staff), f"/api/changes/{change.pk}/implement/")
    assert r.status_code == 200, r.content
    assert r.json()["state"] == "implemented" and r.json()["flags"]["released_outside_window"] == ""
    assert origin_rev(branch_repo) == change.head_sha
    merged = ChangeEvent.objects.get(change=change, action="merged")
    assert (merged.data["outside_window"], merged.data["reason"]) == ("", "")


def test_the_release_button_warns_and_the_form_is_refused_with_the_reason(branch_repo, cr, staff, client_for):
    start = timezone.now() + timedelta(days=3)
    change = cr(planned_start=start, planned_end=start + timedelta(hours=2))
    main = origin_rev(branch_repo)
    client = client_for(staff)
    page = client.get(change.get_absolute_url()).content.decode()
    assert "release-window-problem" in page and "Now it would be released outside its planned window" in page
    response = form_post(client, action_url(change, "implement"))
    assert response.status_code == 409
    assert "cannot be released now: it would be released outside its planned window" in response.content.decode()
    unreleased(branch_repo, change, main)


def test_inside_the_window_the_form_releases(branch_repo, cr, staff, client_for):
    change = cr(**around_now())
    client = client_for(staff)
    assert "release-window-problem" not in client.get(change.get_absolute_url()).content.decode()
    response = form_post(client, action_url(change, "implement"))
    assert response.status_code == 302
    assert ChangeRequest.objects.get(pk=change.pk).state == "implemented"


def test_a_freeze_in_force_refuses_the_release(branch_repo, cr, staff):
    change = cr(**around_now())
    now = timezone.now()
    FreezePeriod.objects.create(start=now - timedelta(hours=1), end=now + timedelta(hours=1), reason="prod only",
                                environment="production")
    FreezePeriod.objects.create(start=now - timedelta(hours=1), end=now + timedelta(days=2), reason="holidays",
                                environment="test")
    main = origin_rev(branch_repo)
    r = post(token_client(staff), f"/api/changes/{change.pk}/implement/")
    assert r.status_code == 409
    assert "it would be released inside the freeze “holidays” until " in r.json()["detail"]
    unreleased(branch_repo, change, main)


def test_an_emergency_outside_its_window_needs_a_reason_and_stays_flagged(branch_repo, cr, staff, client_for):
    start = timezone.now() + timedelta(days=3)
    change = cr(type="emergency", state="draft", planned_start=start, planned_end=start + timedelta(hours=2))
    main = origin_rev(branch_repo)
    client = token_client(staff)
    for body in (None, {"reason": "   "}):
        r = post(client, f"/api/changes/{change.pk}/implement/", body)
        assert r.status_code == 400
        assert "outside its planned window" in r.json()["detail"] and "say why" in r.json()["detail"]
        unreleased(branch_repo, change, main, state="draft")

    r = post(client, f"/api/changes/{change.pk}/implement/", {"reason": "TLS certificate expires tonight"})
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["flags"]["released_outside_window"] == "TLS certificate expires tonight"
    assert origin_rev(branch_repo) == change.head_sha
    merged = ChangeEvent.objects.get(change=change, action="merged")
    assert merged.data["reason"] == "TLS certificate expires tonight"
    assert merged.data["outside_window"].startswith("outside its planned window (")
    flagged = ChangeEvent.objects.get(change=change, action="released-outside-window")
    assert (flagged.message, flagged.actor, flagged.commit_sha) == ("TLS certificate expires tonight", staff,
                                                                    body["merged_sha"])
    page = client_for(staff).get(change.get_absolute_url()).content.decode()
    assert "warning-outside-window" in page and "released outside its window:</strong> TLS certificate" in page


def test_an_emergency_through_the_form_without_a_reason_is_a_400_and_with_one_is_released(branch_repo, cr, staff,
                                                                                       client_for):
    now = timezone.now()
    FreezePeriod.objects.create(start=now - timedelta(hours=1), end=now + timedelta(hours=3), reason="holidays")
    change = cr(type="emergency", state="draft", **around_now())
    client = client_for(staff)
    page = client.get(change.get_absolute_url()).content.decode()
    assert "inside the freeze “holidays”" in page and 'name="reason"' in page
    response = form_post(client, action_url(change, "implement"), {"reason": ""})
    assert response.status_code == 400 and "say why the emergency cannot wait" in response.content.decode()
    response = form_post(client, action_url(change, "implement"), {"reason": "Outage"})
    assert response.status_code == 302
    change.refresh_from_db()
    assert (change.state, change.released_outside_window) == ("implemented", "Outage")
    assert "released-outside-window" in events(change)


def test_an_emergency_inside_its_window_needs_no_reason_and_is_not_flagged(branch_repo, cr, staff):
    change = cr(type="emergency", state="draft", **around_now())
    r = post(token_client(staff), f"/api/changes/{change.pk}/implement/")
    assert r.status_code == 200 and r.json()["flags"]["released_outside_window"] == ""
    assert "released-outside-window" not in events(change)


def test_implement_honours_the_standing_windows_of_its_environments(branch_repo, cr, staff):
    change = cr(**around_now())
    closed = window("test", not_today(), time(7), time(9))
    main = origin_rev(branch_repo)
    r = post(token_client(staff), f"/api/changes/{change.pk}/implement/")
    assert r.status_code == 409 and "outside the standing change windows of test" in r.json()["detail"]
    unreleased(branch_repo, change, main)
    closed.delete()
    # Without a planned window, a standing window open now is enough.
    ChangeRequest.objects.filter(pk=change.pk).update(planned_start=None, planned_end=None)
    window("test", ALL_DAYS, **WHOLE_DAY)
    r = post(token_client(staff), f"/api/changes/{change.pk}/implement/")
    assert r.status_code == 200, r.content


def test_without_any_window_a_normal_change_is_not_released(branch_repo, cr, staff):
    change = cr()
    main = origin_rev(branch_repo)
    r = post(token_client(staff), f"/api/changes/{change.pk}/implement/")
    assert r.status_code == 409 and "without a planned window" in r.json()["detail"]
    unreleased(branch_repo, change, main)


# ====================================================================================================
# Scheduling honours the standing windows
# ====================================================================================================


def next_weekday(weekday: int, hour: int, minute: int = 0) -> datetime:
    """The next such weekday (at least a day ahead) at hour:minute, in the portal's time zone."""
    today = timezone.localtime(timezone.now(), timezone.get_default_timezone()).date() + timedelta(days=1)
    day = today + timedelta(days=(weekday - today.weekday()) % 7)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=timezone.get_default_timezone())


def test_scheduling_inside_a_standing_window_is_accepted_and_outside_refused(shared_branch_repo, cr, requester,
                                                                              paris_time):
    window("test", [1, 3], time(7), time(9), note="ops hours")
    window("production", [0], time(20), time(22))  # another environment's windows do not apply
    change = cr()
    start = next_weekday(1, 7, 30)
    r = post(token_client(requester), f"/api/changes/{change.pk}/schedule/",
             {"planned_start": (start + timedelta(hours=1)).isoformat(),
              "planned_end": (start + timedelta(hours=2)).isoformat()})
    assert r.status_code == 409
    assert r.json()["detail"].startswith("The planned window (")
    assert "is outside the standing change windows of test (Tue, Thu 07:00–09:00 Europe/Paris)" in r.json()["detail"]
    assert ChangeRequest.objects.get(pk=change.pk).state == "approved" and "scheduled" not in events(change)
    r = post(token_client(requester), f"/api/changes/{change.pk}/schedule/",
             {"planned_start": start.isoformat(), "planned_end": (start + timedelta(hours=1)).isoformat()})
    assert r.status_code == 200, r.content
    assert r.json()["state"] == "scheduled"


def test_a_change_touching_several_environments_must_fit_the_windows_of_each(shared_branch_repo, cr, requester,
                                                                             approver, approver2, paris_time):
    change = services.change_approve(change=cr(TLS_BRANCH, state="submitted"), acting_user=approver2)
    change = services.change_approve(change=change, acting_user=approver)
    assert change.state == "approved" and change.environments() == ["production"]
    window("production", [2], time(6), time(8))
    start = next_weekday(2, 6, 30)
    change = services.change_schedule(change=change, acting_user=requester, planned_start=start,
                                      planned_end=start + timedelta(hours=1))
    assert change.state == "scheduled"
    with pytest.raises(services.ChangeConflict, match="standing change windows of production"):
        services.change_schedule(change=change, acting_user=requester, planned_start=start + timedelta(hours=1),
                                 planned_end=start + timedelta(hours=2))


def test_an_environment_without_standing_windows_is_unconstrained(shared_branch_repo, cr, requester):
    window("production", [0], time(7), time(8))
    change = cr()  # the test environment only
    start = next_weekday(5, 23)
    change = services.change_schedule(change=change, acting_user=requester, planned_start=start,
                                      planned_end=start + timedelta(minutes=30))
    assert change.state == "scheduled"


def test_an_emergency_may_be_scheduled_outside_the_standing_windows(shared_branch_repo, cr, requester, staff):
    window("test", [0], time(7), time(8))
    change = cr(type="emergency")
    start = next_weekday(4, 15)
    change = services.change_schedule(change=change, acting_user=requester, planned_start=start,
                                      planned_end=start + timedelta(hours=1))
    assert change.state == "scheduled"


# ====================================================================================================
# Staff keep the windows: page, API, record, permissions
# ====================================================================================================


def test_staff_add_and_remove_a_window_on_the_page_and_each_write_is_recorded(db, staff, client_for, paris_time):
    client = client_for(staff)
    page = client.get(reverse("changes:window_list"))
    assert page.status_code == 200 and 'data-action="window-create"' in page.content.decode()
    response = form_post(client, reverse("changes:window_create"), {
        "environment": "production", "weekdays": ["1", "3"], "start": "07:00", "end": "09:00", "note": "ops"})
    assert response.status_code == 302
    created = ChangeWindow.objects.get()
    assert (created.environment, created.weekdays, created.start, created.end) == ("production", [1, 3], time(7),
                                                                                   time(9))
    event = ChangeEvent.objects.get(action="window-created")
    assert (event.actor, event.message, event.change) == (staff, "production: Tue, Thu 07:00–09:00", None)
    assert event.data["environment"] == "production" and event.data["weekdays"] == [1, 3]
    listing = client.get(reverse("changes:window_list")).content.decode()
    assert "Tue, Thu" in listing and "07:00–09:00" in listing and "Europe/Paris" in listing
    response = form_post(client, reverse("changes:window_delete", kwargs={"pk": created.pk}))
    assert response.status_code == 302 and not ChangeWindow.objects.exists()
    assert ChangeEvent.objects.get(action="window-deleted").message == "production: Tue, Thu 07:00–09:00"


@pytest.mark.parametrize("data", [
    {"environment": "production", "weekdays": ["1"], "start": "09:00", "end": "07:00"},
    {"environment": "production", "weekdays": [], "start": "07:00", "end": "09:00"},
    {"environment": "production", "weekdays": ["9"], "start": "07:00", "end": "09:00"},
    {"environment": "production", "weekdays": ["x"], "start": "07:00", "end": "09:00"},
    {"environment": "", "weekdays": ["1"], "start": "07:00", "end": "09:00"},
    {"environment": "production", "weekdays": ["1"], "start": "25:00", "end": "09:00"},
    {"environment": "x" * 300, "weekdays": ["1"], "start": "07:00", "end": "09:00"},
])
def test_a_bad_window_on_the_page_is_a_400_with_the_form(db, staff, client_for, data):
    response = form_post(client_for(staff), reverse("changes:window_create"), data)
    assert response.status_code == 400 and "alert" in response.content.decode()
    assert not ChangeWindow.objects.exists() and not ChangeEvent.objects.exists()


@pytest.mark.parametrize("body", [
    {"environment": "production", "weekdays": [1], "start": "09:00", "end": "07:00"},
    {"environment": "production", "weekdays": [], "start": "07:00", "end": "09:00"},
    {"environment": "production", "weekdays": [7], "start": "07:00", "end": "09:00"},
    {"environment": "production", "weekdays": "1", "start": "07:00", "end": "09:00"},
    {"environment": " ", "weekdays": [1], "start": "07:00", "end": "09:00"},
    {"environment": "production", "weekdays": [1], "start": "noon", "end": "09:00"},
    {"environment": "production", "weekdays": [1]},
    [1, 2],
])
def test_a_bad_window_in_the_api_is_a_400(db, staff, body):
    r = post(token_client(staff), "/api/change-windows/", body)
    assert r.status_code == 400 and r.json()["detail"], r.content
    assert not ChangeWindow.objects.exists()


def test_the_api_lists_adds_and_removes_windows(db, staff, viewer, paris_time):
    r = post(token_client(staff), "/api/change-windows/",
             {"environment": "production", "weekdays": [3, 1, 3], "start": "07:00", "end": "09:00", "note": "ops"})
    assert r.status_code == 201, r.content
    body = r.json()
    assert r["Location"] == f"http://testserver/api/change-windows/{body['id']}/"
    assert {k: body[k] for k in ("environment", "weekdays", "days", "start", "end", "time_zone", "note")} == {
        "environment": "production", "weekdays": [1, 3], "days": "Tue, Thu", "start": "07:00", "end": "09:00",
        "time_zone": "Europe/Paris", "note": "ops"}
    listed = token_client(viewer).get("/api/change-windows/").json()
    assert [w["id"] for w in listed["results"]] == [body["id"]]
    assert token_client(viewer).get(f"/api/change-windows/{body['id']}/").json()["days"] == "Tue, Thu"
    r = token_client(staff).delete(f"/api/change-windows/{body['id']}/")
    assert r.status_code == 204 and not ChangeWindow.objects.exists()
    assert list(ChangeEvent.objects.values_list("action", flat=True)) == ["window-created", "window-deleted"]
    assert token_client(staff).delete(f"/api/change-windows/{body['id']}/").status_code == 404


@pytest.mark.parametrize("role", ROLES)
def test_only_staff_write_windows_on_the_page(db, role, all_roles, client_for):
    existing = window("production", [1], time(7), time(9))
    client = client_for(all_roles[role])
    page = client.get(reverse("changes:window_list"))
    assert page.status_code == 200 and "production" in page.content.decode()
    assert ('data-action="window-create"' in page.content.decode()) is (role == "staff")
    created = form_post(client, reverse("changes:window_create"),
                        {"environment": "test", "weekdays": ["1"], "start": "07:00", "end": "09:00"})
    deleted = form_post(client, reverse("changes:window_delete", kwargs={"pk": existing.pk}))
    if role == "staff":
        assert (created.status_code, deleted.status_code) == (302, 302)
        assert list(ChangeWindow.objects.values_list("environment", flat=True)) == ["test"]
    else:
        assert (created.status_code, deleted.status_code) == (403, 403)
        assert "Only staff may manage standing change windows." in created.content.decode()
        assert list(ChangeWindow.objects.values_list("environment", flat=True)) == ["production"]
        assert not ChangeEvent.objects.exists()


@pytest.mark.parametrize("role", ROLES)
def test_only_staff_write_windows_in_the_api(db, role, all_roles):
    existing = window("production", [1], time(7), time(9))
    client = token_client(all_roles[role])
    assert client.get("/api/change-windows/").status_code == 200
    assert client.get(f"/api/change-windows/{existing.pk}/").status_code == 200
    created = post(client, "/api/change-windows/", {"environment": "test", "weekdays": [1], "start": "07:00",
                                                    "end": "09:00"})
    deleted = client.delete(f"/api/change-windows/{existing.pk}/")
    if role == "staff":
        assert (created.status_code, deleted.status_code) == (201, 204)
    else:
        assert (created.status_code, deleted.status_code) == (403, 403)
        assert created.json() == {"detail": "Only staff may manage standing change windows."}
        assert ChangeWindow.objects.get() == existing and not ChangeEvent.objects.exists()
    assert client.put(f"/api/change-windows/{existing.pk}/", {}).status_code in (403, 404, 405)


def test_anonymous_callers_get_neither_the_page_nor_the_api(db, client):
    existing = window("production", [1], time(7), time(9))
    assert client.get(reverse("changes:window_list")).status_code == 302  # to the login page
    assert token_client(None).get("/api/change-windows/").status_code == 401
    assert token_client(None).delete(f"/api/change-windows/{existing.pk}/").status_code == 401
    assert ChangeWindow.objects.exists()


def test_the_service_refuses_non_staff_whatever_the_caller(db, approver, staff):
    with pytest.raises(services.ChangeForbidden):
        from changes import windows

        windows.window_create(acting_user=approver, environment="x", weekdays=[1], start=time(7), end=time(8))
    existing = window("production", [1], time(7), time(9))
    with pytest.raises(services.ChangeForbidden):
        windows.window_delete(window=existing, acting_user=approver)
    assert ChangeWindow.objects.count() == 1


# ====================================================================================================
# Query counts
# ====================================================================================================


def _queries(client, url: str) -> int:
    client.get(url)
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize("role", ["viewer", "staff"])
def test_the_window_and_freeze_pages_cost_a_fixed_number_of_queries(db, role, all_roles, client_for):
    client = client_for(all_roles[role])
    window("production", [1], time(7), time(9))
    # session, user, the windows, the sync state (base page); staff: the known environments for the form
    expected = {"viewer": 4, "staff": 5}[role]
    assert _queries(client, reverse("changes:window_list")) == expected
    for i in range(5):
        window(f"env{i}", [i], time(7), time(9))
        FreezePeriod.objects.create(start=timezone.now(), end=timezone.now() + timedelta(days=i + 1), reason=f"f{i}")
    assert _queries(client, reverse("changes:window_list")) == expected
    freezes = _queries(client, reverse("changes:freeze_list"))
    FreezePeriod.objects.create(start=timezone.now(), end=timezone.now() + timedelta(days=1), reason="one more")
    assert _queries(client, reverse("changes:freeze_list")) == freezes
