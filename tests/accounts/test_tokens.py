"""Personal API tokens: made by their owner, shown once, stored hashed, never more than the owner's groups."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import Client, override_settings
from django.utils import timezone

from accounts import services
from accounts.models import ApiToken, digest
from changes.models import ChangeEvent
from tests.changes.ui import post

pytestmark = pytest.mark.django_db

KEY = re.compile(r'data-token-key value="([^"]+)"')


def api(key: str) -> Client:
    return Client(enforce_csrf_checks=True, headers={"Authorization": f"Token {key}"})


def make(user, name="ci", **kwargs) -> str:
    return services.token_create(acting_user=user, owner=user, name=name, **kwargs).key


def test_the_profile_page_makes_a_token_shows_it_once_and_stores_only_its_digest(client_for, requester):
    client = client_for(requester)
    r = post(client, "/account/", {"name": "GitLab pipeline", "expires_on": ""})
    assert r.status_code == 200 and r["Cache-Control"] == "no-store"
    key = KEY.search(r.content.decode()).group(1)
    token = ApiToken.objects.get(user=requester)
    assert token.key_digest == digest(key) and key not in {token.prefix, token.key_digest, token.name}
    assert key.startswith(token.prefix) and token.created_by == requester and token.expires_at is None
    event = ChangeEvent.objects.get(action="token-created")
    assert event.actor == requester and event.data["token"] == token.pk and key not in event.message

    again = client.get("/account/")
    assert again.status_code == 200 and key not in again.content.decode() and "GitLab pipeline" in again.content.decode()
    assert "requester" in again.content.decode()  # the roles the token will act with


def test_a_token_lists_and_acts_with_its_owners_groups_and_records_its_last_use(synced, requester):
    key = make(requester)
    r = api(key).get("/api/environments/")
    assert r.status_code == 200
    assert ApiToken.objects.get().last_used_at is not None
    assert api(key).get("/api/tokens/").json()["count"] == 1


def test_a_token_never_grants_more_than_its_owners_groups_at_the_time_of_the_request(tls_branch, requester):
    key = make(requester)
    body = {"branch": "change/tls", "title": "TLS", "type": "normal", "risk": "low"}
    assert api(key).post("/api/changes/", body, content_type="application/json").status_code == 201
    requester.groups.remove(Group.objects.get(name="requesters"))
    requester.groups.add(Group.objects.get(name="viewers"))
    body["branch"] = "change/other"
    r = api(key).post("/api/changes/", body, content_type="application/json")
    assert r.status_code == 403


@pytest.mark.parametrize("state", ["expired", "revoked", "inactive user", "unknown"])
def test_expired_revoked_unknown_and_inactive_users_tokens_are_refused_with_401(synced, viewer, state):
    key = make(viewer, expires_at=timezone.now() + timedelta(days=1))
    token = ApiToken.objects.get()
    if state == "expired":
        ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    elif state == "revoked":
        services.token_revoke(acting_user=viewer, token=token)
    elif state == "inactive user":
        viewer.is_active = False
        viewer.save()
    else:
        key = key[:-2] + ("AA" if not key.endswith("AA") else "BB")
    r = api(key).get("/api/environments/")
    assert r.status_code == 401 and r.json() == {"detail": "Invalid, expired or revoked token."}


def test_owners_revoke_their_own_tokens_in_the_browser_and_the_revocation_is_recorded(client_for, synced, viewer):
    key = make(viewer)
    token = ApiToken.objects.get()
    r = post(client_for(viewer), f"/account/tokens/{token.pk}/revoke/")
    assert r.status_code == 302 and r["Location"] == "/account/"
    token.refresh_from_db()
    assert token.revoked_at and token.revoked_by == viewer and token.state() == "revoked"
    assert ChangeEvent.objects.filter(action="token-revoked", actor=viewer).count() == 1
    assert api(key).get("/api/environments/").status_code == 401


def test_nobody_but_the_owner_and_staff_can_see_or_revoke_a_token(client_for, viewer, requester, staff):
    make(viewer)
    token = ApiToken.objects.get()
    assert post(client_for(requester), f"/account/tokens/{token.pk}/revoke/").status_code == 404
    assert client_for(requester).get("/account/tokens/").status_code == 403
    assert api(make(requester)).get(f"/api/tokens/{token.pk}/").status_code == 404
    assert api(make(requester, "2")).post(f"/api/tokens/{token.pk}/revoke/").status_code == 404
    assert ApiToken.objects.get(pk=token.pk).revoked_at is None

    staff_client = client_for(staff)
    listing = staff_client.get("/account/tokens/")
    assert listing.status_code == 200 and viewer.username in listing.content.decode()
    r = post(staff_client, f"/account/tokens/{token.pk}/revoke/")
    assert r.status_code == 302 and r["Location"] == "/account/tokens/"
    token.refresh_from_db()
    assert token.revoked_by == staff


def test_anonymous_visitors_are_sent_to_the_login_page(client):
    assert client.get("/account/")["Location"].startswith("/accounts/login/")
    assert client.get("/api/tokens/").status_code in (401, 403)


def test_api_creates_a_token_from_a_session_with_location_and_the_key_once(client_for, requester):
    client = client_for(requester)
    r = client.post("/api/tokens/", {"name": "deploy bot"}, content_type="application/json",
                    headers={"X-CSRFToken": "x" * 32}, )
    if r.status_code == 403:  # CSRF: send the cookie and header like a browser's fetch()
        client.cookies["csrftoken"] = "x" * 32
        r = client.post("/api/tokens/", {"name": "deploy bot"}, content_type="application/json",
                        headers={"X-CSRFToken": "x" * 32})
    assert r.status_code == 201, r.content
    body = r.json()
    assert r["Location"] == body["url"] and body["url"].startswith("http://testserver/api/tokens/")
    assert api(body["key"]).get(f"/api/tokens/{body['id']}/").json()["state"] == "active"
    assert "key" not in api(body["key"]).get("/api/tokens/").json()["results"][0]


def test_a_token_cannot_mint_tokens(requester):
    r = api(make(requester)).post("/api/tokens/", {"name": "more"}, content_type="application/json")
    assert r.status_code == 403 and "signed-in session" in r.json()["detail"]
    assert ApiToken.objects.count() == 1


def test_staff_make_tokens_for_service_accounts_and_others_only_for_themselves(requester, viewer, staff):
    made = services.token_create(acting_user=staff, owner=viewer, name="ci-bot")
    assert made.token.user == viewer and made.token.created_by == staff
    from portal.errors import Forbidden

    with pytest.raises(Forbidden):
        services.token_create(acting_user=requester, owner=viewer, name="sneaky")
    with pytest.raises(Forbidden):
        services.token_owner(acting_user=requester, username=viewer.username)


@pytest.mark.parametrize(("expires_in", "message"), [
    (None, "within 30 days"), (timedelta(days=31), "within 30 days"), (timedelta(days=-1), "in the future"),
])
@override_settings(CMDB_API_TOKEN_MAX_DAYS=30)
def test_expiry_must_be_in_the_future_and_within_the_configured_limit(viewer, expires_in, message):
    from accounts.errors import TokenError

    expires_at = timezone.now() + expires_in if expires_in else None
    with pytest.raises(TokenError, match=message):
        make(viewer, expires_at=expires_at)
    assert not ApiToken.objects.exists() and not ChangeEvent.objects.exists()


def test_a_bad_form_keeps_what_was_typed_and_says_why(client_for, viewer):
    r = post(client_for(viewer), "/account/", {"name": "", "expires_on": "not a date"})
    assert r.status_code == 400 and not ApiToken.objects.exists()
    r = post(client_for(viewer), "/account/", {"name": "old", "expires_on": "2001-01-01"})
    assert r.status_code == 400 and "in the future" in r.content.decode() and 'value="old"' in r.content.decode()


def test_token_create_command_prints_a_key_for_a_service_account(synced, viewer):
    out = io.StringIO()
    call_command("token_create", viewer.username, "--name", "gitlab", "--days", "90", stdout=out)
    key = out.getvalue().strip()
    assert api(key).get("/api/environments/").status_code == 200
    token = ApiToken.objects.get()
    assert token.name == "gitlab" and timedelta(days=89) < token.expires_at - timezone.now() <= timedelta(days=90)


def test_token_lists_keep_a_fixed_query_count(client_for, django_assert_max_num_queries, viewer, staff):
    for i in range(5):
        make(viewer, f"t{i}")
        services.token_create(acting_user=staff, owner=staff, name=f"s{i}")
    staff_client, viewer_client = client_for(staff), client_for(viewer)
    with django_assert_max_num_queries(6):
        assert staff_client.get("/account/tokens/").status_code == 200
    with django_assert_max_num_queries(6):
        assert viewer_client.get("/account/").status_code == 200
    key = make(staff, "lister")
    with django_assert_max_num_queries(6):
        assert api(key).get("/api/tokens/").json()["count"] == 11
