"""Writes of the accounts app: making and revoking personal API tokens, each in the record."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from accounts import permissions
from accounts.errors import TokenError
from accounts.models import KEY_PREFIX, ApiToken, digest, new_key
from changes.services import record_event
from portal.errors import Forbidden, NotFound

# Writing last_used_at on every request would turn each API read into a write; a minute is
# precise enough to tell a token in use from a forgotten one.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class NewToken:
    token: ApiToken
    key: str  # shown once; only its digest is stored


def _check_expiry(expires_at: datetime | None, now: datetime) -> None:
    max_days = settings.CMDB_API_TOKEN_MAX_DAYS
    if expires_at is not None and expires_at <= now:
        raise TokenError("The expiry date must be in the future.")
    if max_days and (expires_at is None or expires_at > now + timedelta(days=max_days)):
        raise TokenError(f"Tokens expire within {max_days} days here (CMDB_API_TOKEN_MAX_DAYS); "
                         "choose an expiry date no later than that.")


def token_create(*, acting_user, owner, name: str, expires_at: datetime | None = None) -> NewToken:
    """Make a token for ``owner`` (yourself, or anyone for staff). It acts with the owner's groups
    at the time of each request, so it can never do more than its owner can."""
    if not permissions.can_create_token_for(acting_user, owner):
        raise Forbidden("You may only create tokens for yourself.")
    name = name.strip()
    if not name:
        raise TokenError("Give the token a name (what uses it).")
    now = timezone.now()
    _check_expiry(expires_at, now)
    key = new_key()
    with transaction.atomic():
        token = ApiToken.objects.create(user=owner, name=name[:100], prefix=key[:len(KEY_PREFIX) + 6],
                                        key_digest=digest(key), created_at=now, created_by=acting_user,
                                        expires_at=expires_at)
        record_event(actor=acting_user, action="token-created",
                     message=f"API token “{token.name}” ({token.prefix}…) for {owner.get_username()}"
                             + (f", expires {expires_at:%Y-%m-%d %H:%M %Z}" if expires_at else ", no expiry"),
                     token=token.pk, owner=owner.get_username())
    return NewToken(token=token, key=key)


def token_revoke(*, acting_user, token: ApiToken) -> ApiToken:
    if not permissions.can_manage_token(acting_user, token):
        # Someone else's token does not exist as far as this user can tell.
        raise NotFound("No such token.")
    with transaction.atomic():
        token = ApiToken.objects.select_for_update().get(pk=token.pk)
        if token.revoked_at:
            raise TokenError("This token is already revoked.")
        token.revoked_at = timezone.now()
        token.revoked_by = acting_user
        token.save(update_fields=["revoked_at", "revoked_by"])
        record_event(actor=acting_user, action="token-revoked",
                     message=f"API token “{token.name}” ({token.prefix}…) of {token.user.get_username()} revoked",
                     token=token.pk, owner=token.user.get_username())
    return token


def token_authenticate(key: str) -> ApiToken | None:
    """The active token for ``key`` with its user, or None (unknown, revoked, expired, inactive user)."""
    token = ApiToken.objects.select_related("user").filter(key_digest=digest(key)).first()
    if token is None or not token.is_active or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or token.last_used_at < now - LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


def tokens_visible_to(user):
    """Tokens a user may list: their own; staff everyone's."""
    tokens = ApiToken.objects.select_related("user", "revoked_by")
    return tokens if user.is_staff else tokens.filter(user=user)


def token_owner(*, acting_user, username: str | None):
    """The user a new token is for: the acting user unless staff names another."""
    if not username or username == acting_user.get_username():
        return acting_user
    if not acting_user.is_staff:
        raise Forbidden("You may only create tokens for yourself.")
    owner = get_user_model().objects.filter(username=username, is_active=True).first()
    if owner is None:
        raise TokenError(f"No active user named {username!r}.")
    return owner
