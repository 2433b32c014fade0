"""The full-text search table (FTS5 on SQLite, tsvector + GIN on PostgreSQL) and the role groups."""

from django.db import migrations

ROLE_GROUPS = ("viewers", "requesters", "approvers")


def create_search_table(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute(
            "CREATE VIRTUAL TABLE cmdb_search USING fts5(name, path, body, tokenize='unicode61 remove_diacritics 2')"
        )
    else:
        schema_editor.execute("CREATE TABLE cmdb_search (ci_id bigint PRIMARY KEY, body text NOT NULL, doc tsvector NOT NULL)")
        schema_editor.execute("CREATE INDEX cmdb_search_doc ON cmdb_search USING GIN (doc)")


def drop_search_table(apps, schema_editor):
    schema_editor.execute("DROP TABLE IF EXISTS cmdb_search")


def create_groups(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for name in ROLE_GROUPS:
        Group.objects.get_or_create(name=name)


def delete_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLE_GROUPS).delete()


class Migration(migrations.Migration):
    dependencies = [("cmdb", "0001_initial"), ("auth", "0012_alter_user_first_name_max_length")]

    operations = [
        migrations.RunPython(create_search_table, drop_search_table),
        migrations.RunPython(create_groups, delete_groups),
    ]
