"""Single sign-on: the settings of the directory (LDAP / Active Directory) and OpenID Connect logins,
read from the environment, and the one mapping from directory groups or OIDC claims to portal roles.

Both backends (``portal/auth_ldap.py``, ``portal/auth_oidc.py``) call :func:`apply_roles` at every
login, so leaving a directory group removes the role at the next sign-in. This module is imported by
``portal/settings.py``: models and the LDAP library are imported inside the functions that need them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured

from portal.env import env_bool, env_int, env_list, env_str

logger = logging.getLogger(__name__)

STAFF = "staff"
ROLES = ("viewers", "requesters", "approvers", STAFF)


@dataclass(frozen=True)
class RoleMap:
    """Which portal roles each directory group (a DN) or claim value grants."""

    entries: tuple[tuple[str, str], ...]  # (normalised group or claim value, role)

    @property
    def roles(self) -> set[str]:
        """The roles this mapping manages: only these are added or removed at login."""
        return {role for _, role in self.entries}

    def roles_for(self, memberships) -> set[str]:
        return {role for value, role in self.entries if value in memberships}


def parse_role_map(name: str, raw: str, *, normalise=lambda value: value) -> RoleMap:
    """``role=value;role=value``: the role first (it holds no ``=``), so a DN's own ``=`` and ``,``
    need no quoting; a role may appear several times. Any other shape stops start-up."""
    entries = []
    for item in raw.split(";"):
        item = item.strip()
        if not item:
            continue
        role, sep, value = item.partition("=")
        role, value = role.strip(), value.strip()
        if not sep or not value:
            raise ImproperlyConfigured(f"{name}: {item!r} is not role=group (e.g. requesters=cn=ops,ou=groups,dc=example,dc=org).")
        if role not in ROLES:
            raise ImproperlyConfigured(f"{name}: {role!r} is not a portal role; use one of {', '.join(ROLES)}.")
        try:
            entries.append((normalise(value), role))
        except ValueError as exc:
            raise ImproperlyConfigured(f"{name}: {value!r} is not valid: {exc}") from None
    if not entries:
        raise ImproperlyConfigured(f"{name} maps no group to a role (role=group;role=group).")
    return RoleMap(tuple(entries))


def normalise_dn(dn: str) -> str:
    """One spelling per DN (case, spaces after commas), so the mapping matches what the server returns."""
    import ldap.dn

    try:
        return ldap.dn.dn2str(ldap.dn.str2dn(dn)).lower()
    except ldap.DECODING_ERROR:
        raise ValueError("not a distinguished name") from None


def apply_roles(user, entitled: set[str], role_map: RoleMap, *, source: str) -> None:
    """Make the user's mapped roles exactly ``entitled``: add the missing portal groups, remove the
    mapped ones no longer granted, set or clear ``is_staff`` when the mapping manages staff. Groups
    the mapping does not name are left alone (a role given by hand in the admin stays)."""
    from django.contrib.auth.models import Group
    from django.db import transaction

    from changes.services import record_event

    managed = role_map.roles
    current = set(user.groups.filter(name__in=managed).values_list("name", flat=True))
    if user.is_staff:
        current.add(STAFF)
    wanted = entitled & managed
    added, removed = sorted(wanted - current), sorted((current - wanted) & managed)
    if not added and not removed:
        return
    with transaction.atomic():
        for role in added:
            if role == STAFF:
                user.is_staff = True
            else:
                user.groups.add(Group.objects.get_or_create(name=role)[0])
        for role in removed:
            if role == STAFF:
                user.is_staff = False
            else:
                user.groups.remove(*Group.objects.filter(name=role))
        if STAFF in added or STAFF in removed:
            user.save(update_fields=["is_staff"])
        record_event(actor=user, action="roles-applied",
                     message=f"{source} sign-in: roles added {', '.join(added) or 'none'}, "
                             f"removed {', '.join(removed) or 'none'}",
                     source=source, added=added, removed=removed)
    user._cm_groups = None  # portal.roles caches the groups per request
    logger.info("%s sign-in of %s: roles added %s, removed %s", source, user.get_username(), added, removed)


# --- LDAP / Active Directory ----------------------------------------------------------------------
GROUP_TYPES = {
    # name: (django-auth-ldap group type, default group search filter)
    "groupOfNames": ("GroupOfNamesType", "(objectClass=groupOfNames)"),
    "groupOfUniqueNames": ("GroupOfUniqueNamesType", "(objectClass=groupOfUniqueNames)"),
    "activeDirectory": ("ActiveDirectoryGroupType", "(objectClass=group)"),
    "nestedActiveDirectory": ("NestedActiveDirectoryGroupType", "(objectClass=group)"),
}


def ldap_settings() -> dict:
    """The ``AUTH_LDAP_*`` settings from ``CMDB_LDAP_*``; empty when ``CMDB_LDAP_URI`` is not set."""
    uri = env_str("CMDB_LDAP_URI")
    if not uri:
        return {}
    import ldap
    from django_auth_ldap import config

    if not uri.startswith(("ldap://", "ldaps://")):
        raise ImproperlyConfigured(f"CMDB_LDAP_URI={uri!r}: expected ldap://host[:port] or ldaps://host[:port].")
    user_base = env_str("CMDB_LDAP_USER_SEARCH_BASE", required=True)
    group_base = env_str("CMDB_LDAP_GROUP_SEARCH_BASE", required=True)
    user_filter = env_str("CMDB_LDAP_USER_FILTER", "(uid=%(user)s)")
    if "%(user)s" not in user_filter or not (user_filter.startswith("(") and user_filter.endswith(")")):
        raise ImproperlyConfigured(f"CMDB_LDAP_USER_FILTER={user_filter!r}: a parenthesised filter with %(user)s, "
                                   "e.g. (uid=%(user)s) or (sAMAccountName=%(user)s).")
    group_type = env_str("CMDB_LDAP_GROUP_TYPE", "groupOfNames")
    if group_type not in GROUP_TYPES:
        raise ImproperlyConfigured(f"CMDB_LDAP_GROUP_TYPE={group_type!r}: one of {', '.join(GROUP_TYPES)}.")
    type_class, default_filter = GROUP_TYPES[group_type]
    group_filter = env_str("CMDB_LDAP_GROUP_FILTER", default_filter)
    for name, dn in (("CMDB_LDAP_USER_SEARCH_BASE", user_base), ("CMDB_LDAP_GROUP_SEARCH_BASE", group_base)):
        try:
            normalise_dn(dn)
        except ValueError:
            raise ImproperlyConfigured(f"{name}={dn!r} is not a distinguished name.") from None
    timeout = env_int("CMDB_LDAP_TIMEOUT", 5, minimum=1)
    start_tls = env_bool("CMDB_LDAP_START_TLS", False)
    if start_tls and uri.startswith("ldaps://"):
        raise ImproperlyConfigured("CMDB_LDAP_START_TLS=true with an ldaps:// URI: use one or the other.")
    options: dict = {ldap.OPT_NETWORK_TIMEOUT: timeout, ldap.OPT_TIMEOUT: timeout, ldap.OPT_REFERRALS: 0}
    ca_file = env_str("CMDB_LDAP_CA_FILE")
    if ca_file:
        options[ldap.OPT_X_TLS_CACERTFILE] = ca_file
        options[ldap.OPT_X_TLS_NEWCTX] = 0  # applies the CA file to this connection's TLS context
    return {
        "AUTH_LDAP_SERVER_URI": uri,
        "AUTH_LDAP_BIND_DN": env_str("CMDB_LDAP_BIND_DN"),
        "AUTH_LDAP_BIND_PASSWORD": env_str("CMDB_LDAP_BIND_PASSWORD"),
        "AUTH_LDAP_START_TLS": start_tls,
        "AUTH_LDAP_CONNECTION_OPTIONS": options,
        "AUTH_LDAP_USER_SEARCH": config.LDAPSearch(user_base, ldap.SCOPE_SUBTREE, user_filter),
        "AUTH_LDAP_GROUP_SEARCH": config.LDAPSearch(group_base, ldap.SCOPE_SUBTREE, group_filter),
        "AUTH_LDAP_GROUP_TYPE": getattr(config, type_class)(),
        "AUTH_LDAP_USER_ATTR_MAP": {"first_name": "givenName", "last_name": "sn", "email": "mail"},
        "AUTH_LDAP_ALWAYS_UPDATE_USER": True,
        # Group lookups are not cached: a removal from a directory group counts at the next sign-in.
        "AUTH_LDAP_CACHE_TIMEOUT": 0,
        "CMDB_LDAP_ROLE_MAP": parse_role_map("CMDB_LDAP_GROUP_ROLES", env_str("CMDB_LDAP_GROUP_ROLES", required=True),
                                             normalise=normalise_dn),
    }


# --- OpenID Connect --------------------------------------------------------------------------------
OIDC_ENDPOINTS = ("AUTHORIZATION", "TOKEN", "USERINFO", "JWKS")


def oidc_settings() -> dict:
    """The ``OIDC_*`` settings of mozilla-django-oidc from ``CMDB_OIDC_*``; empty without a client id."""
    client_id = env_str("CMDB_OIDC_CLIENT_ID")
    if not client_id:
        return {}
    endpoints = {}
    for which in OIDC_ENDPOINTS:
        name = f"CMDB_OIDC_{which}_ENDPOINT"
        url = env_str(name, required=True)
        if not url.startswith(("https://", "http://")):
            raise ImproperlyConfigured(f"{name}={url!r} is not an http(s) URL.")
        endpoints[which] = url
    scopes = env_list("CMDB_OIDC_SCOPES", ["openid", "email", "profile", "groups"])
    if "openid" not in scopes:
        raise ImproperlyConfigured("CMDB_OIDC_SCOPES must include openid.")
    return {
        "OIDC_RP_CLIENT_ID": client_id,
        "OIDC_RP_CLIENT_SECRET": env_str("CMDB_OIDC_CLIENT_SECRET", required=True),
        "OIDC_OP_AUTHORIZATION_ENDPOINT": endpoints["AUTHORIZATION"],
        "OIDC_OP_TOKEN_ENDPOINT": endpoints["TOKEN"],
        "OIDC_OP_USER_ENDPOINT": endpoints["USERINFO"],
        "OIDC_OP_JWKS_ENDPOINT": endpoints["JWKS"],
        "OIDC_RP_SIGN_ALGO": env_str("CMDB_OIDC_SIGN_ALGO", "RS256"),
        "OIDC_RP_SCOPES": " ".join(scopes),
        "OIDC_USE_PKCE": True,
        "OIDC_TIMEOUT": env_int("CMDB_OIDC_TIMEOUT", 10, minimum=1),
        "OIDC_AUTHENTICATION_CALLBACK_URL": "oidc_authentication_callback",
        "CMDB_OIDC_PROVIDER_NAME": env_str("CMDB_OIDC_PROVIDER_NAME", "single sign-on"),
        "CMDB_OIDC_USERNAME_CLAIM": env_str("CMDB_OIDC_USERNAME_CLAIM", "preferred_username"),
        "CMDB_OIDC_GROUPS_CLAIM": env_str("CMDB_OIDC_GROUPS_CLAIM", "groups"),
        "CMDB_OIDC_ROLE_MAP": parse_role_map("CMDB_OIDC_GROUP_ROLES", env_str("CMDB_OIDC_GROUP_ROLES", required=True)),
    }
