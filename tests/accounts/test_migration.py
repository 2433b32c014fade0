"""Tokens made with DRF's authtoken before personal tokens existed keep working, and their clear-text
keys leave the database."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.utils import timezone

pytestmark = pytest.mark.django_db(transaction=True)

LEGACY_KEY = "0123456789abcdef0123456789abcdef01234567"


def test_legacy_clear_text_tokens_become_hashed_personal_tokens(synced, viewer):
    call_command("migrate", "accounts", "zero", verbosity=0)
    created = timezone.now().replace(microsecond=0)
    timestamp = "timestamp with time zone" if connection.vendor == "postgresql" else "datetime"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, created {timestamp} NOT NULL, "
                       "user_id integer NOT NULL)")
        cursor.execute("INSERT INTO authtoken_token (key, created, user_id) VALUES (%s, %s, %s)",
                       [LEGACY_KEY, created, viewer.pk])

    call_command("migrate", verbosity=0)

    from accounts.models import ApiToken

    token = ApiToken.objects.get()
    assert (token.user, token.prefix, token.created_at) == (viewer, LEGACY_KEY[:6], created)
    assert LEGACY_KEY not in (token.key_digest, token.name)
    assert "authtoken_token" not in connection.introspection.table_names()
    r = Client().get("/api/environments/", headers={"Authorization": f"Token {LEGACY_KEY}"})
    assert r.status_code == 200
