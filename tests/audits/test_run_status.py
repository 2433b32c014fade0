"""Starting an audit from the portal: its page says it is queued while it is, and no "queued" message stays
once the run is over (the status line lives in the part the page refreshes)."""

from __future__ import annotations

from django.test import Client

from audits.models import AuditRun


def test_queued_message_is_replaced_when_the_run_finishes(audit_env, staff, django_capture_on_commit_callbacks):
    client = Client()  # CSRF is tested elsewhere
    client.force_login(staff)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post("/audits/start/", {"scope": ""})
    run = AuditRun.objects.get()
    assert response.status_code == 302 and response["Location"] == run.get_absolute_url()

    page = client.get(run.get_absolute_url()).content.decode()
    assert f"Audit #{run.pk} of everything\n    queued (7 machines)." in page
    assert 'hx-trigger="every 2s"' in page  # the live part refreshes itself while the run is active
    # The sentence is in the part that refreshes (a flash message above it would stay as it was).
    poll = client.get(run.get_absolute_url(), HTTP_HX_REQUEST="true").content.decode()
    assert "queued (7 machines)." in poll

    for callback in callbacks:  # the queued tasks run (Celery is eager in the tests)
        callback()
    run.refresh_from_db()
    assert run.state == "succeeded"
    poll = client.get(run.get_absolute_url(), HTTP_HX_REQUEST="true").content.decode()
    assert "data-audit-status" in poll and "succeeded" in poll and "queued" not in poll
    assert 'hx-trigger="every 2s"' not in poll  # over: polling stops
    page = client.get(run.get_absolute_url()).content.decode()
    assert "queued" not in page
