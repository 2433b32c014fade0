"""Who may do what in the browser UI: the staff-only sync button (POST, CSRF), sync runs for everyone,
staff links, and an admin that never adds, edits or deletes index rows."""

from __future__ import annotations

import pytest
from django.urls import reverse

from cmdb.models import ConfigItem, SyncRun
from tests.cmdb.ui import csrf_post

SYNC = "/sync/"


def test_sync_button_is_shown_to_staff_only(synced, viewer, staff, client_for):
    staff_home = client_for(staff).get(reverse("home")).content.decode()
    assert f'action="{reverse("cmdb:sync_start")}"' in staff_home and "Sync now" in staff_home
    assert f'href="{reverse("admin:index")}"' in staff_home
    viewer_home = client_for(viewer).get(reverse("home")).content.decode()
    assert f'action="{reverse("cmdb:sync_start")}"' not in viewer_home and "Sync now" not in viewer_home
    assert reverse("admin:index") not in viewer_home


@pytest.mark.parametrize("role", ["viewer", "requester", "approver"])
def test_people_who_are_not_staff_cannot_start_a_sync(role, synced, request, client_for):
    before = SyncRun.objects.count()
    response = csrf_post(client_for(request.getfixturevalue(role)), SYNC)
    assert response.status_code == 403
    assert SyncRun.objects.count() == before


def test_staff_starts_a_sync_with_the_button(synced, staff, client_for, django_capture_on_commit_callbacks):
    synced.write("production/README.md", "# Production\n\nAfter the button.\n")
    new_head = synced.commit("Change to pick up")
    client = client_for(staff)
    with django_capture_on_commit_callbacks(execute=True):
        response = csrf_post(client, SYNC, {"next": reverse("home")})
    assert response.status_code == 302 and response["Location"] == reverse("home")
    run = SyncRun.objects.get(trigger="button")
    assert run.requested_by == staff and run.status == SyncRun.Status.SUCCEEDED and run.to_sha == new_head
    home = client.get(reverse("home")).content.decode()
    assert "Sync requested" in home  # the message is shown after the redirect
    runs = client.get(reverse("cmdb:syncrun_list")).content.decode()
    assert "button" in runs and staff.username in runs


def test_sync_without_a_csrf_token_is_refused(synced, staff, client_for):
    response = client_for(staff).post(SYNC)
    assert response.status_code == 403
    assert not SyncRun.objects.filter(trigger="button").exists()


def test_sync_start_accepts_only_post(synced, staff, client_for):
    assert client_for(staff).get(SYNC).status_code == 405


def test_sync_redirect_ignores_a_foreign_next_url(synced, staff, client_for, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = csrf_post(client_for(staff), SYNC, {"next": "https://evil.example/"})
    assert response.status_code == 302 and response["Location"] == reverse("cmdb:syncrun_list")


def test_anonymous_sync_request_is_sent_to_login(synced, client):
    response = client.post(SYNC)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("role", ["viewer", "requester", "approver", "staff"])
def test_everyone_signed_in_can_read_the_sync_runs(role, synced, request, client_for):
    response = client_for(request.getfixturevalue(role)).get(reverse("cmdb:syncrun_list"))
    assert response.status_code == 200
    assert [r.trigger for r in response.context["page"].object_list] == ["test"]


def test_admin_shows_index_rows_but_never_adds_edits_or_deletes_them(synced, admin_client):
    item = ConfigItem.objects.get(path="production/web1")
    assert admin_client.get(reverse("admin:cmdb_configitem_changelist") + "?q=web1").status_code == 200
    for name in ("commit", "artifact", "lintwarning", "syncrun", "syncstate"):
        assert admin_client.get(reverse(f"admin:cmdb_{name}_changelist")).status_code == 200, name
        assert admin_client.get(reverse(f"admin:cmdb_{name}_add")).status_code == 403, name
    change = admin_client.get(reverse("admin:cmdb_configitem_change", args=[item.pk]))
    assert change.status_code == 200 and b'name="_save"' not in change.content  # view only
    assert admin_client.post(reverse("admin:cmdb_configitem_delete", args=[item.pk]), {"post": "yes"}).status_code == 403
    assert ConfigItem.objects.filter(pk=item.pk).exists()
