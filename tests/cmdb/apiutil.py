"""Helpers for the API tests: token clients, webhook signatures, fast password hashing.

Import ``fast_password_hashing`` into a test module to make it autouse there."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from django.test import Client


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """The role fixtures create users with passwords; the production hasher costs ~1 s a user."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def token_client(user=None) -> Client:
    """A client that authenticates with ``Authorization: Token <key>`` (CSRF checks on, no session)."""
    if user is None:
        return Client(enforce_csrf_checks=True)
    from django.utils import timezone

    from accounts.models import ApiToken, digest, new_key

    # A row, not accounts.services.token_create: the record of the test stays the test's own; and
    # last used "now", so a pinned query count measures the page, not the once-a-minute last-use write.
    key = new_key()
    ApiToken.objects.create(user=user, name="test client", prefix=key[:10], key_digest=digest(key),
                            last_used_at=timezone.now())
    return Client(enforce_csrf_checks=True, headers={"Authorization": f"Token {key}"})


def github_signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def paths(response) -> list[str]:
    return [row["path"] for row in response.json()["results"]]
