"""Backup and restore of what the database holds and Git does not: every model round-trips field by
field, on SQLite and on PostgreSQL, an archive made on SQLite restores into the database the suite
runs on, and a restore is refused (changing nothing) for a used database or another schema."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from datetime import date, time, timedelta
from pathlib import Path

import pytest
from django.apps import apps
from django.contrib.auth.models import Group
from django.core import serializers
from django.core.management import call_command
from django.utils import timezone

from portal.backup import (
    BACKED_UP,
    NOT_BACKED_UP,
    NOT_BACKED_UP_APPS,
    BackupError,
    backup_restore,
    backup_write,
    delete_portal_data,
)

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]


def test_every_model_is_either_backed_up_or_said_to_be_rebuilt():
    # Every model of every installed app: a new app's models cannot slip out of the archive unnoticed.
    labels = {m._meta.label_lower for m in apps.get_models()
              if m._meta.app_label not in NOT_BACKED_UP_APPS and not m._meta.proxy}
    assert labels == set(BACKED_UP) | set(NOT_BACKED_UP), labels ^ (set(BACKED_UP) | set(NOT_BACKED_UP))


def fill_every_model(synced, requester, approver, staff):
    from audits.models import AuditRun, Finding, MachineResult, MachineStatus, ManualCheck
    from changes import services as cs
    from changes.models import ApprovalPolicy, ChangeRequest, ChangeWindow, FreezePeriod, UnauthorizedCommit
    from cmdb import services
    from cmdb.models import WebhookDelivery
    from deploys.models import Job, JobLogLine, MachinePlan
    from tests.fixtures.windows import around_now
    from tests.gitutil import on_branch

    on_branch(synced, "change/b", {"test/web-test1/nginx/files/etc/nginx/nginx.conf": "worker_processes 3;\n"})
    change = cs.change_create(acting_user=requester, branch="change/b", title="Three workers", description="x",
                              **around_now())
    cs.change_comment(change=change, acting_user=approver, body="looks fine")
    cs.change_submit(change=change, acting_user=requester)
    cs.change_approve(change=change, acting_user=approver, comment="ok")
    change = ChangeRequest.objects.get(pk=change.pk)
    cs.change_implement(change=change, acting_user=staff)
    cs.baseline_create(acting_user=staff, name="baseline-2026-11", note="monthly")
    synced.git("fetch", "-q", "origin")
    synced.git("reset", "-q", "--hard", "origin/main")  # the release moved origin's main
    synced.write("README.md", "# direct push\n")
    synced.commit("pushed without a change request")
    services.repo_sync(trigger="test")
    assert UnauthorizedCommit.objects.exists()
    ApprovalPolicy.objects.create(environment="test", required_approvals=1)
    FreezePeriod.objects.create(start=timezone.now(), end=timezone.now() + timedelta(days=1), reason="holidays")
    ChangeWindow.objects.create(environment="production", weekdays=[1, 3], start=time(7), end=time(9), note="ops")
    from accounts.services import token_create

    token_create(acting_user=staff, owner=staff, name="backup test")
    WebhookDelivery.objects.create(key="id:abc")
    job = Job.objects.create(change=change, revision="a" * 40, requested_by=requester, machines=["p/w"],
                                   machines_total=1, machines_done=1, state="succeeded")
    MachinePlan.objects.create(job=job, machine_path="p/w", status="planned", items=[{"target": "/etc/x"}])
    JobLogLine.objects.create(job=job, message="Finished.")
    run = AuditRun.objects.create(scope="", state="succeeded", requested_by=staff, machines=["p/w", "p/m"],
                                  machines_total=2, machines_done=2, summary={"compliance": 50.0})
    result = MachineResult.objects.create(run=run, machine_path="p/w", environment="p", status="drifted",
                                          files_total=2, files_in_sync=1, compliance=50.0)
    Finding.objects.create(run=run, result=result, machine_path="p/w", environment="p", target="/etc/x",
                           kind="content", fingerprint="f" * 64, state="acknowledged", note="known",
                           handled_by=approver, handled_at=timezone.now(), change=change)
    ManualCheck.objects.create(run=run, machine_path="p/m", environment="p", due=date(2026, 12, 1))
    MachineStatus.objects.create(machine_path="p/w", environment="p", last_result=result, status="drifted")
    from notifications.models import Delivery, Target

    target = Target.objects.create(name="ops", kind="webhook", url="https://hooks.example.org/x", secret="s" * 40,
                                   events=["cr-approved"], environments=["test"], created_by=staff)
    Delivery.objects.create(target=target, event="cr-approved", dedupe_key="cr-approved:1:2", environments=["test"],
                            payload={"title": "CR-1 approved"}, state="sent", attempts=2, http_status=200,
                            sent_at=timezone.now())
    from django.contrib.admin.models import ADDITION, LogEntry

    LogEntry.objects.log_actions(user_id=staff.pk, queryset=[change], action_flag=ADDITION)


def snapshot() -> dict[str, list]:
    out = {}
    for label in BACKED_UP:
        model = apps.get_model(label)
        rows = serializers.serialize("python", model._default_manager.order_by("pk"),
                                     use_natural_foreign_keys=True, use_natural_primary_keys=True)
        for row in rows:
            if label in ("auth.user", "auth.group"):
                row.pop("pk", None)  # restored by natural key: the row id may differ
        out[label] = rows
    return out


def test_every_row_round_trips_field_by_field(synced, requester, approver, staff, tmp_path):
    fill_every_model(synced, requester, approver, staff)
    before = snapshot()
    assert all(before[label] for label in BACKED_UP), [label for label in BACKED_UP if not before[label]]
    archive = tmp_path / "portal.backup.gz"
    call_command("portal_backup", str(archive), stdout=open(os.devnull, "w"))
    assert archive.stat().st_mode & 0o777 == 0o600

    delete_portal_data()
    call_command("portal_restore", str(archive), stdout=open(os.devnull, "w"))
    after = snapshot()
    for label in BACKED_UP:
        for old, new in zip(before[label], after[label], strict=True):
            changed = {k: (v, new["fields"].get(k)) for k, v in old["fields"].items() if new["fields"].get(k) != v}
            assert not changed and old.get("pk") == new.get("pk"), (label, changed)

    # The portal works on the restored database, and new rows do not collide with restored ids.
    from changes import services as cs
    from tests.gitutil import on_branch

    on_branch(synced, "change/c", {"test/web-test1/nginx/files/etc/nginx/nginx.conf": "worker_processes 4;\n"})
    requester = type(requester).objects.get(username=requester.username)  # restored by name, maybe a new id
    new = cs.change_create(acting_user=requester, branch="change/c", title="after restore")
    assert new.pk > max(r["pk"] for r in before["changes.changerequest"])
    from django.test import Client

    c = Client()
    c.force_login(requester)
    assert c.get(new.get_absolute_url()).status_code == 200


def test_restore_refuses_a_used_database_and_changes_nothing(synced, requester, approver, staff, tmp_path):
    fill_every_model(synced, requester, approver, staff)
    archive = tmp_path / "b.gz"
    backup_write(path=archive)
    before = snapshot()
    with pytest.raises(BackupError, match="already holds portal data"):
        backup_restore(path=archive)
    assert snapshot() == before
    backup_restore(path=archive, replace=True)
    assert snapshot() == before


def test_restore_refuses_another_schema_or_a_broken_file(db, tmp_path):
    archive = tmp_path / "b.gz"
    backup_write(path=archive)
    body = json.loads(gzip.open(archive).read())
    body["manifest"]["migrations"]["changes"].append("0099_from_the_future")
    gzip.open(archive, "wb").write(json.dumps(body).encode())
    with pytest.raises(BackupError, match="schema differs.*0099_from_the_future"):
        backup_restore(path=archive)
    (tmp_path / "junk.gz").write_bytes(b"not a backup")
    with pytest.raises(BackupError, match="not a portal backup"):
        backup_restore(path=tmp_path / "junk.gz")


MAKE_ROWS = """
from django.contrib.auth import get_user_model
from changes.models import ChangeEvent, Baseline
u = get_user_model().objects.create_user("sqlite-made", password="x")
ChangeEvent.objects.create(actor=u, action="baseline", message="made on SQLite")
Baseline.objects.create(name="b-sqlite", sha="c" * 40, created_by=u)
"""


def test_an_archive_made_on_sqlite_restores_into_this_database(db, tmp_path):
    from changes.models import Baseline, ChangeEvent

    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CMDB_DATA_DIR")}
    env.update(DJANGO_DEBUG="true", CMDB_DATA_DIR=str(tmp_path / "sqlite-portal"))
    for argv in (["migrate", "--noinput"], ["shell", "-c", MAKE_ROWS], ["portal_backup", str(tmp_path / "s.gz")]):
        subprocess.run([sys.executable, "manage.py", *argv], cwd=ROOT, env=env, check=True, capture_output=True,
                       timeout=300)
    backup_restore(path=tmp_path / "s.gz")
    assert ChangeEvent.objects.get().actor.username == "sqlite-made"
    assert Baseline.objects.get().name == "b-sqlite"
    assert Group.objects.filter(name="viewers").count() == 1
