"""Single sign-on is configured from the environment: off unless asked for, and a value that cannot be
right stops start-up with the variable's name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from portal import sso

ROOT = Path(__file__).resolve().parents[2]
LDAP = {"CMDB_LDAP_URI": "ldap://ldap.example.org", "CMDB_LDAP_USER_SEARCH_BASE": "ou=people,dc=example,dc=org",
        "CMDB_LDAP_GROUP_SEARCH_BASE": "ou=groups,dc=example,dc=org",
        "CMDB_LDAP_GROUP_ROLES": "requesters=cn=ops,ou=groups,dc=example,dc=org"}
OIDC = {"CMDB_OIDC_CLIENT_ID": "portal", "CMDB_OIDC_CLIENT_SECRET": "s3cret",
        "CMDB_OIDC_AUTHORIZATION_ENDPOINT": "https://id.example.org/auth",
        "CMDB_OIDC_TOKEN_ENDPOINT": "https://id.example.org/token",
        "CMDB_OIDC_USERINFO_ENDPOINT": "https://id.example.org/me",
        "CMDB_OIDC_JWKS_ENDPOINT": "https://id.example.org/jwks", "CMDB_OIDC_GROUP_ROLES": "approvers=/cab"}


def with_env(monkeypatch, values):
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def test_neither_method_is_on_without_its_variables(monkeypatch):
    for name in [*LDAP, *OIDC]:
        monkeypatch.delenv(name, raising=False)
    assert sso.ldap_settings() == {} and sso.oidc_settings() == {}


def test_the_role_mapping_takes_the_role_first_and_any_dn(monkeypatch):
    with_env(monkeypatch, {**LDAP, "CMDB_LDAP_GROUP_ROLES":
                           " requesters = cn=Ops,ou=groups,dc=example,dc=org ; requesters=cn=dev,ou=groups,dc=example,dc=org;"
                           "staff=cn=admins,ou=groups,dc=example,dc=org"})
    role_map = sso.ldap_settings()["CMDB_LDAP_ROLE_MAP"]
    assert role_map.roles == {"requesters", "staff"}
    assert role_map.roles_for({sso.normalise_dn("CN=ops, OU=groups, DC=example, DC=org")}) == {"requesters"}


@pytest.mark.parametrize(("value", "message"), [
    ("cn=ops,ou=groups,dc=example,dc=org=requesters", "is not a portal role"),
    ("admins=cn=ops,dc=example,dc=org", "is not a portal role"),
    ("requesters=", "is not role=group"),
    ("requesters", "is not role=group"),
    ("requesters=not a dn", "is not valid"),
    (" ; ", "maps no group"),
])
def test_a_bad_ldap_mapping_fails_loudly(monkeypatch, value, message):
    with_env(monkeypatch, {**LDAP, "CMDB_LDAP_GROUP_ROLES": value})
    with pytest.raises(ImproperlyConfigured, match=message) as raised:
        sso.ldap_settings()
    assert "CMDB_LDAP_GROUP_ROLES" in str(raised.value)


@pytest.mark.parametrize(("name", "value", "message"), [
    ("CMDB_LDAP_URI", "ldap.example.org", "expected ldap://"),
    ("CMDB_LDAP_USER_FILTER", "(uid=%s)", "%\\(user\\)s"),
    ("CMDB_LDAP_GROUP_TYPE", "posix", "one of groupOfNames"),
    ("CMDB_LDAP_USER_SEARCH_BASE", "people", "not a distinguished name"),
    ("CMDB_LDAP_START_TLS", "maybe", "not a boolean"),
    ("CMDB_LDAP_GROUP_ROLES", "", "is required"),
])
def test_a_bad_ldap_setting_fails_loudly(monkeypatch, name, value, message):
    with_env(monkeypatch, {**LDAP, name: value})
    with pytest.raises(ImproperlyConfigured, match=message):
        sso.ldap_settings()


def test_start_tls_with_ldaps_is_refused(monkeypatch):
    with_env(monkeypatch, {**LDAP, "CMDB_LDAP_URI": "ldaps://ldap.example.org", "CMDB_LDAP_START_TLS": "true"})
    with pytest.raises(ImproperlyConfigured, match="one or the other"):
        sso.ldap_settings()


@pytest.mark.parametrize(("name", "value", "message"), [
    ("CMDB_OIDC_TOKEN_ENDPOINT", "", "CMDB_OIDC_TOKEN_ENDPOINT is required"),
    ("CMDB_OIDC_JWKS_ENDPOINT", "id.example.org/jwks", "is not an http"),
    ("CMDB_OIDC_CLIENT_SECRET", "", "CMDB_OIDC_CLIENT_SECRET is required"),
    ("CMDB_OIDC_SCOPES", "email,profile", "must include openid"),
    ("CMDB_OIDC_GROUP_ROLES", "boss=/cab", "is not a portal role"),
])
def test_a_bad_oidc_setting_fails_loudly(monkeypatch, name, value, message):
    with_env(monkeypatch, {**OIDC, name: value})
    with pytest.raises(ImproperlyConfigured, match=message):
        sso.oidc_settings()


def test_the_portal_does_not_start_with_a_bad_mapping(tmp_path):
    env = {**os.environ, **LDAP, "CMDB_LDAP_GROUP_ROLES": "cn=ops,dc=example,dc=org=requesters",
           "DJANGO_DEBUG": "true", "CMDB_DATA_DIR": str(tmp_path)}
    env.pop("DATABASE_URL", None)
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert "CMDB_LDAP_GROUP_ROLES" in result.stderr


def test_configured_methods_are_offered_on_the_login_page_and_unconfigured_oidc_pages_do_not_exist(client, settings,
                                                                                                    db):
    page = client.get("/accounts/login/").content.decode()
    assert "Sign in with" not in page and "directory account" not in page
    assert client.get("/oidc/authenticate/").status_code == 404
    assert client.get("/oidc/callback/?code=x&state=y").status_code == 404


@pytest.mark.parametrize("query", ["", "?code=x&state=forged", "?error=access_denied&error_description=No%20way",
                                   "?state=x&error=server_error"])
def test_a_callback_this_browser_did_not_start_ends_on_the_failure_page(client, settings, monkeypatch, db, query):
    from tests.fixtures.sso import configure_oidc

    configure_oidc(settings, monkeypatch, "http://127.0.0.1:9", "requesters=ops")
    response = client.get(f"/oidc/callback/{query}", follow=True)
    assert response.redirect_chain[-1][0] == "/oidc/failed/"
    assert response.status_code == 403
    assert "Sign-in with Example ID failed" in response.content.decode()
    if "error=" in query:
        assert "Example ID refused the sign-in" in response.content.decode()
