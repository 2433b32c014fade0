"""Tokens made before personal tokens existed (DRF's authtoken, which stored keys in clear) keep
working: each becomes a personal token holding only the key's digest, and the clear-text table goes."""

import hashlib
from datetime import UTC

from django.db import migrations
from django.utils.dateparse import parse_datetime

LEGACY_TABLE = "authtoken_token"


def forwards(apps, schema_editor):
    connection = schema_editor.connection
    if LEGACY_TABLE not in connection.introspection.table_names():
        return
    ApiToken = apps.get_model("accounts", "ApiToken")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT key, user_id, created FROM {LEGACY_TABLE}")  # noqa: S608 (constant name)
        rows = cursor.fetchall()
    for key, user_id, created in rows:
        if isinstance(created, str):  # SQLite hands raw rows back as text
            created = parse_datetime(created)
        if created is not None and created.tzinfo is None:  # stored in UTC (USE_TZ)
            created = created.replace(tzinfo=UTC)
        ApiToken.objects.create(user_id=user_id, name="token made before personal tokens", prefix=key[:6],
                                key_digest=hashlib.sha256(key.encode()).hexdigest(), created_at=created)
    schema_editor.execute(f"DROP TABLE {LEGACY_TABLE}")


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
