"""Moving the dry-run models from ``changes`` to ``deploys`` keeps their rows, tables and permissions."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

def _old_apps():
    """Migrate back to before the move (as ``manage.py migrate`` does, with its signals) and return
    the historical models of then."""
    call_command("migrate", "deploys", "zero", verbosity=0)
    call_command("migrate", "changes", "0004_dry_run_progress", verbosity=0)
    return MigrationExecutor(connection).loader.project_state([("changes", "0004_dry_run_progress")]).apps


def test_existing_dry_runs_their_plans_logs_and_permissions_survive_the_move():
    from django.contrib.auth.models import Group, Permission, User
    from django.contrib.contenttypes.models import ContentType

    old = _old_apps()  # auth and contenttypes stay migrated: their current models are right
    user = User.objects.create(username="rick")
    change = old.get_model("changes", "ChangeRequest").objects.create(
        title="TLS", branch="change/tls", requester_id=user.pk)
    job = old.get_model("changes", "DryRunJob").objects.create(
        change=change, revision="a" * 40, requested_by_id=user.pk, machines=["prod/web1"], machines_total=1,
        machines_done=1, state="succeeded")
    old.get_model("changes", "MachinePlan").objects.create(job=job, machine_path="prod/web1", status="planned",
                                                           items=[{"target": "/etc/x", "action": "update"}])
    old.get_model("changes", "JobLogLine").objects.create(job=job, message="Finished.")
    ContentType.objects.filter(app_label="deploys").delete()  # as before the move: only changes' exist
    content_type, _ = ContentType.objects.get_or_create(app_label="changes", model="dryrunjob")
    permission, _ = Permission.objects.get_or_create(
        content_type=content_type, codename="view_dryrunjob", defaults={"name": "Can view dry run job"})
    group = Group.objects.create(name="auditors")
    group.permissions.add(permission)

    call_command("migrate", verbosity=0)

    from deploys.models import Job

    moved = Job.objects.get(pk=job.pk)
    assert (moved.change_id, moved.state, moved.machines) == (change.pk, "succeeded", ["prod/web1"])
    assert [p.items for p in moved.plans.all()] == [[{"target": "/etc/x", "action": "update"}]]
    assert [line.message for line in moved.log_lines.all()] == ["Finished."]
    assert Job._meta.db_table == "changes_dryrunjob"
    ContentType.objects.clear_cache()  # it cached the old label
    assert ContentType.objects.get(pk=content_type.pk).app_label == "deploys"
    assert Group.objects.get(name="auditors").permissions.get().content_type.model_class() is Job
    assert moved.kind == Job.Kind.DRY_RUN
    # A new job lands in the same table, after the old one.
    assert Job.objects.create(revision="b" * 40, requested_by_id=user.pk).pk > job.pk
