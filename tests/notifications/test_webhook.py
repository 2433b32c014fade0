"""Notifications delivered to a real HTTP receiver on loopback, raised by real flows (a change request
approved, an audit run, a failing sync, a direct push to main)."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from django.db import transaction

from changes import services as change_services
from changes.models import ChangeRequest
from notifications import receivers, services, tasks
from notifications.models import Delivery
from tests.services import free_port

pytestmark = pytest.mark.django_db

SECRET = "a-webhook-secret-of-the-receiver"


@pytest.fixture
def webhook(http_receiver, staff):
    def make(events=("cr-approved",), environments=(), kind="webhook", path="/hook", **extra):
        return services.target_create(acting_user=staff, name=f"{kind}-{path}-{len(events)}", kind=kind,
                                      url=http_receiver.url + path, secret=extra.pop("secret", SECRET),
                                      events=list(events), environments=list(environments), **extra)
    return make


@pytest.fixture
def submitted(test_branch, make_change, requester, django_capture_on_commit_callbacks):
    change = make_change(test_branch)
    with django_capture_on_commit_callbacks(execute=True):
        change_services.change_submit(change=change, acting_user=requester)
    return change


def approve(change, user, capture):
    with capture(execute=True):
        return change_services.change_approve(change=change, acting_user=user)


def test_an_approval_is_posted_signed_with_the_targets_secret(webhook, http_receiver, submitted, approver, settings,
                                                             django_capture_on_commit_callbacks):
    settings.CMDB_PUBLIC_URL = "https://cm.example.org"
    target = webhook()
    change = approve(submitted, approver, django_capture_on_commit_callbacks)
    assert change.state == ChangeRequest.State.APPROVED

    [got] = http_receiver.requests
    assert got.method == "POST" and got.path == "/hook"
    expected = "sha256=" + hmac.new(SECRET.encode(), got.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(got.headers["X-CMDB-Signature"], expected)
    wrong = "sha256=" + hmac.new(b"another secret", got.body, hashlib.sha256).hexdigest()
    assert got.headers["X-CMDB-Signature"] != wrong
    delivery = Delivery.objects.get(target=target)
    assert got.headers["X-CMDB-Event"] == "cr-approved"
    assert got.headers["X-CMDB-Delivery"] == delivery.dedupe_key
    assert delivery.dedupe_key.startswith(f"cr-approved:{change.pk}:")
    body = got.json()
    assert body["event"] == "cr-approved" and body["id"] == delivery.dedupe_key
    assert body["title"] == f"{change.reference} approved: {change.title}"
    assert body["url"] == f"https://cm.example.org/changes/{change.pk}/"
    assert body["environments"] == ["test"]
    assert body["data"]["change"] == change.pk and body["data"]["actor"] == approver.get_username()
    assert (delivery.state, delivery.attempts, delivery.http_status) == ("sent", 1, 200)
    assert delivery.sent_at is not None


def test_a_failed_attempt_is_retried_and_the_event_is_delivered_once(webhook, http_receiver, submitted, approver,
                                                                    django_capture_on_commit_callbacks):
    target = webhook()
    http_receiver.fail_next(500)
    approve(submitted, approver, django_capture_on_commit_callbacks)

    first, second = http_receiver.requests
    assert first.body == second.body and first.headers["X-CMDB-Delivery"] == second.headers["X-CMDB-Delivery"]
    delivery = Delivery.objects.get(target=target)
    assert (delivery.state, delivery.attempts, delivery.http_status, delivery.last_error) == ("sent", 2, 200, "")

    # The task delivered again (a redelivered message, a second worker): nothing is sent twice.
    assert tasks.delivery_send.delay(delivery.pk).get() == "skipped"
    assert len(http_receiver.requests) == 2
    assert Delivery.objects.get(pk=delivery.pk).attempts == 2


def test_the_same_event_raised_again_is_not_delivered_again(webhook, http_receiver, staff,
                                                           django_capture_on_commit_callbacks):
    webhook(events=("checks-overdue",))
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            services.event_raise(event="checks-overdue", dedupe_key="checks-overdue:2026-11", title="3 overdue")
    assert len(http_receiver.requests) == 1
    assert Delivery.objects.count() == 1


def test_targets_hear_only_of_their_events_and_environments(webhook, http_receiver, submitted, approver,
                                                           django_capture_on_commit_callbacks):
    webhook(events=("cr-approved",), environments=("production",), path="/prod-only")
    webhook(events=("cr-rejected",), path="/rejections")
    webhook(events=("cr-approved", "cr-rejected"), environments=("test",), path="/test")
    webhook(events=("cr-approved",), path="/disabled", enabled=False)
    approve(submitted, approver, django_capture_on_commit_callbacks)
    assert [r.path for r in http_receiver.requests] == ["/test"]


def test_a_target_that_cannot_be_reached_never_fails_the_approval(staff, submitted, approver, settings,
                                                                  django_capture_on_commit_callbacks):
    settings.CMDB_NOTIFY_MAX_ATTEMPTS = 3
    target = services.target_create(acting_user=staff, name="closed", kind="webhook",
                                    url=f"http://127.0.0.1:{free_port()}/hook", events=["cr-approved"])
    change = approve(submitted, approver, django_capture_on_commit_callbacks)
    change.refresh_from_db()
    assert change.state == ChangeRequest.State.APPROVED
    assert change.events.filter(action="approved").exists()
    delivery = Delivery.objects.get(target=target)
    assert (delivery.state, delivery.attempts) == ("gave-up", 3)
    assert "cannot reach the target" in delivery.last_error and "127.0.0.1" not in delivery.last_error


def test_a_rolled_back_action_notifies_nobody(webhook, http_receiver, submitted, approver,
                                              django_capture_on_commit_callbacks):
    webhook()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            change_services.change_approve(change=submitted, acting_user=approver)
            raise RuntimeError("something later in the same transaction failed")
    assert callbacks == []
    assert not Delivery.objects.exists() and http_receiver.requests == []
    assert ChangeRequest.objects.get(pk=submitted.pk).state == ChangeRequest.State.SUBMITTED


@pytest.mark.parametrize("kind", ["slack", "mattermost", "teams"])
def test_chat_presets_post_their_own_body(webhook, http_receiver, staff, kind, django_capture_on_commit_callbacks):
    webhook(events=("sync-failing",), kind=kind, path=f"/{kind}")
    with django_capture_on_commit_callbacks(execute=True):
        services.event_raise(event="sync-failing", dedupe_key="sync-failing:1:2026-11-28",
                             title="The portal cannot sync", text="origin unreachable", url="/sync/runs/")
    [got] = http_receiver.requests
    body = got.json()
    assert "X-CMDB-Signature" not in got.headers
    if kind == "teams":
        assert body["@type"] == "MessageCard" and body["title"] == "The portal cannot sync"
        assert body["potentialAction"][0]["targets"][0]["uri"].endswith("/sync/runs/")
    else:
        assert set(body) == {"text"} and "The portal cannot sync" in body["text"] and "origin unreachable" in body["text"]
        link = "<http://localhost:8000/sync/runs/|" if kind == "slack" else "(http://localhost:8000/sync/runs/)"
        assert link in body["text"]


def test_matrix_sends_a_room_message_with_the_access_token(webhook, http_receiver, staff,
                                                          django_capture_on_commit_callbacks):
    target = webhook(events=("sync-failing",), kind="matrix", path="", secret="syt_token", room="!room:example.org")
    with django_capture_on_commit_callbacks(execute=True):
        services.event_raise(event="sync-failing", dedupe_key="sync-failing:1:2026-11-28", title="Sync <failing>")
    [got] = http_receiver.requests
    assert got.method == "PUT"
    assert got.path.startswith("/_matrix/client/v3/rooms/%21room%3Aexample.org/send/m.room.message/")
    assert got.headers["Authorization"] == "Bearer syt_token"
    body = got.json()
    assert body["msgtype"] == "m.text" and body["body"].startswith("Sync <failing>")
    assert "<strong>Sync &lt;failing&gt;</strong>" in body["formatted_body"]
    assert Delivery.objects.get(target=target).state == "sent"


def test_email_targets_are_mailed(staff, mailoutbox, django_capture_on_commit_callbacks):
    services.target_create(acting_user=staff, name="ops mail", kind="email", addresses=["ops@example.org"],
                           events=["checks-overdue"])
    with django_capture_on_commit_callbacks(execute=True):
        services.event_raise(event="checks-overdue", dedupe_key="checks-overdue:2026-11", title="2 checks overdue",
                             text="prod: 2")
    [mail] = mailoutbox
    assert mail.to == ["ops@example.org"] and mail.subject == "[CM] 2 checks overdue" and "prod: 2" in mail.body


def test_an_audit_with_new_drift_sends_one_digest_per_run(dry_env, webhook, http_receiver, staff,
                                                          django_capture_on_commit_callbacks):
    from audits import services as audit_services
    from cmdb import services as cmdb_services

    cmdb_services.repo_sync(trigger="test")
    webhook(events=("audit-drift",))
    with django_capture_on_commit_callbacks(execute=True):
        run = audit_services.audit_start(acting_user=staff, scope="prod/web1")
    run.refresh_from_db()
    assert run.state == "succeeded" and run.findings.count() > 1

    [got] = http_receiver.requests
    body = got.json()
    assert body["event"] == "audit-drift" and body["id"] == f"audit-drift:{run.pk}"
    assert body["data"]["new_findings"] == {"prod": run.findings.count()}
    assert body["url"].endswith(f"/audits/{run.pk}/") and body["environments"] == ["prod"]

    # The same drift seen again is not news.
    with django_capture_on_commit_callbacks(execute=True):
        again = audit_services.audit_start(acting_user=staff, scope="prod/web1")
    again.refresh_from_db()
    assert again.state == "succeeded" and again.findings.count() == run.findings.count()
    assert len(http_receiver.requests) == 1


def test_a_direct_push_to_main_is_reported_once_with_its_environment(synced, direct_push, webhook, http_receiver,
                                                                     django_capture_on_commit_callbacks):
    webhook(events=("unauthorized-commit",), environments=("production",))
    with django_capture_on_commit_callbacks(execute=True):
        commit = direct_push(synced)
    [got] = http_receiver.requests
    body = got.json()
    assert body["id"] == f"unauthorized:{commit.sha}" and body["environments"] == ["production"]
    assert commit.sha[:10] in body["title"]


def test_a_failing_sync_is_reported_at_most_once_a_day_until_it_recovers(synced, webhook, http_receiver, settings,
                                                                         django_capture_on_commit_callbacks):
    from cmdb import services as cmdb_services

    webhook(events=("sync-failing",))
    good = settings.CMDB_REPO_URL
    settings.CMDB_REPO_URL = "/nonexistent/origin"
    import shutil

    shutil.rmtree(settings.CMDB_CLONE_DIR)
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True), pytest.raises(cmdb_services.SyncError):
            cmdb_services.repo_sync(trigger="test")
    assert len(http_receiver.requests) == 1
    assert http_receiver.requests[0].json()["event"] == "sync-failing"

    settings.CMDB_REPO_URL = good
    shutil.rmtree(settings.CMDB_CLONE_DIR, ignore_errors=True)
    cmdb_services.repo_sync(trigger="test")
    settings.CMDB_REPO_URL = "/nonexistent/origin"
    shutil.rmtree(settings.CMDB_CLONE_DIR)
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(cmdb_services.SyncError):
        cmdb_services.repo_sync(trigger="test")
    assert len(http_receiver.requests) == 2  # a new failing streak is news again


def test_overdue_manual_checks_are_raised_once_a_month(webhook, http_receiver, django_capture_on_commit_callbacks):
    from datetime import date

    from audits.models import AuditRun, ManualCheck

    webhook(events=("checks-overdue",))
    run = AuditRun.objects.create(scope="", state="succeeded")
    ManualCheck.objects.create(run=run, machine_path="prod/db1", environment="prod", due=date(2020, 1, 1))
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            assert tasks.checks_overdue.delay().get() == 1
    [got] = http_receiver.requests
    assert got.json()["data"]["overdue"] == {"prod": 1}


def test_the_webhook_body_verifies_as_the_readme_shows(webhook, http_receiver, django_capture_on_commit_callbacks):
    webhook(events=("checks-overdue",))
    with django_capture_on_commit_callbacks(execute=True):
        services.event_raise(event="checks-overdue", dedupe_key="k", title="t")
    got = http_receiver.requests[0]
    # What a receiver does (README, Notifications): HMAC of the raw body, constant-time comparison.
    signature = got.headers["X-CMDB-Signature"].removeprefix("sha256=")
    assert hmac.compare_digest(signature, hmac.new(SECRET.encode(), got.body, hashlib.sha256).hexdigest())
    assert json.loads(got.body)["title"] == "t"
    assert receivers  # the receivers module is what connects the signals (imported by the app)
