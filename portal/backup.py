"""Backup and restore of what the portal's database holds and Git does not: change requests, votes,
comments, the record, baselines, dry runs, audits, findings, manual checks, machine statuses, sync
history, users, groups and API tokens.

The archive is Django's own serialization, as JSON (natural keys for users and groups, so it restores
into a database of either engine, whose migrations created the groups already), gzipped, with a
manifest: format version, when, the Git head the index was at, the applied migrations of every app
in it and the row count per model. Restore is all or nothing, into a database migrated to the same
schema, and refuses one that already holds portal data unless told to replace it.

Left out, and why (``NOT_BACKED_UP``): the index of the repository (rebuilt by a sync from Git),
sessions, login-failure counters, Celery's task results and beat schedules (beat recreates them from
the settings), permissions and content types (created by ``migrate``).
"""

from __future__ import annotations

import datetime
import gzip
import json
import os
from dataclasses import dataclass
from pathlib import Path

from django.apps import apps
from django.core import serializers
from django.core.management.color import no_style
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

FORMAT = 1

# In dependency order: what a row refers to comes before it.
BACKED_UP = [
    "auth.group", "auth.user", "accounts.apitoken", "admin.logentry",
    "cmdb.syncrun", "cmdb.secretpath", "cmdb.webhookdelivery",
    "changes.changerequest", "changes.impactedci", "changes.approval", "changes.approvalpolicy",
    "changes.freezeperiod", "changes.changewindow", "changes.comment", "changes.changeevent", "changes.baseline",
    "changes.unauthorizedcommit", "changes.releasedcommit",
    "deploys.job", "deploys.machineplan", "deploys.joblogline",
    "audits.auditrun", "audits.machineresult", "audits.finding", "audits.manualcheck", "audits.machinestatus",
    "notifications.target", "notifications.delivery",
]
NOT_BACKED_UP = {
    "cmdb.commit": "index: rebuilt by a sync", "cmdb.configitem": "index: rebuilt by a sync",
    "cmdb.artifact": "index: rebuilt by a sync", "cmdb.lintwarning": "index: rebuilt by a sync",
    "cmdb.syncstate": "index: rebuilt by a sync",
    "auth.permission": "created by migrate", "contenttypes.contenttype": "created by migrate",
    "sessions.session": "sign-ins: people sign in again",
    "changes.branchlock": "lock rows: made again on demand",
    "axes.accessattempt": "login-failure counters", "axes.accessfailurelog": "login-failure counters",
    "axes.accesslog": "login log", "axes.accessattemptexpiration": "login-failure counters",
}
# Apps whose rows are in no archive at all (Celery's own state: beat rebuilds its schedule from settings).
NOT_BACKED_UP_APPS = {"django_celery_results", "django_celery_beat"}


class _Encoder(DjangoJSONEncoder):
    """Django's JSON encoder, but times keep their microseconds (it rounds them to milliseconds, and
    the record's order and a restored row's equality depend on them)."""

    def default(self, o):
        if isinstance(o, (datetime.datetime, datetime.time)):
            return o.isoformat()
        return super().default(o)


class BackupError(Exception):
    """An archive that cannot be restored here; the message says why."""


@dataclass(frozen=True)
class Manifest:
    format: int
    created_at: str
    indexed_commit: str
    migrations: dict[str, list[str]]
    counts: dict[str, int]


def _models():
    return [apps.get_model(label) for label in BACKED_UP]


def _migrations() -> dict[str, list[str]]:
    labels = {label.split(".")[0] for label in BACKED_UP}
    applied: dict[str, list[str]] = {}
    for app, name in MigrationRecorder(connection).applied_migrations():
        if app in labels:
            applied.setdefault(app, []).append(name)
    return {app: sorted(names) for app, names in sorted(applied.items())}


def backup_write(*, path: Path) -> Manifest:
    """Write the archive to ``path`` (mode 0600: it holds password hashes and token keys)."""
    from cmdb.services import indexed_sha

    objects = []
    counts = {}
    with transaction.atomic():  # one consistent snapshot (a repeatable view on PostgreSQL)
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        for model in _models():
            rows = list(model._default_manager.order_by("pk"))
            counts[model._meta.label_lower] = len(rows)
            objects.extend(rows)
        data = serializers.serialize("python", objects, use_natural_foreign_keys=True, use_natural_primary_keys=True)
        manifest = Manifest(format=FORMAT, created_at=timezone.now().isoformat(), indexed_commit=indexed_sha() or "",
                            migrations=_migrations(), counts=counts)
    payload = json.dumps({"manifest": manifest.__dict__, "objects": data}, cls=_Encoder).encode()
    tmp = path.with_name(path.name + ".part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb") as out:
        out.write(payload)
    os.replace(tmp, path)
    return manifest


def backup_read(path: Path) -> tuple[Manifest, list]:
    try:
        with gzip.open(path, "rb") as f:
            body = json.loads(f.read())
        manifest = Manifest(**body["manifest"])
        objects = body["objects"]
    except (OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"{path} is not a portal backup: {exc}") from exc
    if manifest.format != FORMAT:
        raise BackupError(f"{path} is a backup of format {manifest.format}; this portal reads format {FORMAT}.")
    return manifest, objects


def _holds_data() -> list[str]:
    # Groups are created by the migrations: they do not make a database "used".
    return [label for label, model in zip(BACKED_UP, _models(), strict=True)
            if label != "auth.group" and model._default_manager.exists()]


def delete_portal_data() -> None:
    """Delete every backed-up row (the groups stay: migrate made them). Raw deletes, in reverse
    dependency order: the append-only record refuses Model.delete(), on purpose."""
    for model in reversed(_models()):
        for field in model._meta.local_many_to_many:
            field.remote_field.through._default_manager.all()._raw_delete(connection.alias)
        if model._meta.label_lower != "auth.group":
            model._default_manager.all()._raw_delete(connection.alias)


def backup_restore(*, path: Path, replace: bool = False) -> Manifest:
    """Restore an archive into this database, all or nothing. Refused when the schema differs from
    the archive's, or when the database holds portal data already (unless ``replace``: it is deleted
    first, in the same transaction)."""
    manifest, objects = backup_read(path)
    here = _migrations()
    if here != manifest.migrations:
        diff = sorted({f"{a}.{n}" for a, ns in here.items() for n in ns}
                      ^ {f"{a}.{n}" for a, ns in manifest.migrations.items() for n in ns})
        raise BackupError("The archive's schema differs from this database's (migrations "
                          f"{', '.join(diff[:5])}{' …' if len(diff) > 5 else ''}): restore it with the portal "
                          "version that made it, or migrate this database to the same state first.")
    with transaction.atomic():
        used = _holds_data()
        if used and not replace:
            raise BackupError(f"This database already holds portal data ({', '.join(used[:5])}); "
                              "restore into an empty, migrated database, or pass --replace.")
        if used:
            delete_portal_data()
        for obj in serializers.deserialize("python", objects, handle_forward_references=True):
            obj.save()
        with connection.cursor() as cursor:
            for sql in connection.ops.sequence_reset_sql(no_style(), _models()):
                cursor.execute(sql)
    return manifest
