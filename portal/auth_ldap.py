"""Directory sign-in (LDAP / Active Directory): the only module that talks to the directory server.

django-auth-ldap binds with the service account, finds the user, binds as the user, and reads the
user's groups; then :func:`portal.sso.apply_roles` turns the groups into portal roles, at every login.
Configured by ``CMDB_LDAP_*`` (``portal.sso.ldap_settings``); listed in ``AUTHENTICATION_BACKENDS``
only when ``CMDB_LDAP_URI`` is set.
"""

from __future__ import annotations

import logging

import ldap
from django.conf import settings
from django.dispatch import receiver
from django_auth_ldap.backend import LDAPBackend, ldap_error

from portal import sso
from portal.auth import DIRECTORY_ERROR

logger = logging.getLogger(__name__)



class DirectoryBackend(LDAPBackend):
    def get_or_build_user(self, username, ldap_user):
        user, built = super().get_or_build_user(username, ldap_user)
        # A local account (it has a password of its own: break-glass staff) is never taken over by a
        # directory entry of the same name; the next backend checks its own password.
        if not built and user.has_usable_password():
            raise ldap_user.AuthenticationFailed(f"{username} is a local account")
        return user, built

    def get_user(self, user_id):
        user = super().get_user(user_id)
        # As ModelBackend does: deactivating an account in the admin ends its open sessions.
        return user if user is not None and user.is_active else None

    def authenticate_ldap_user(self, ldap_user, password):
        user = super().authenticate_ldap_user(ldap_user, password)
        if user is None:
            return None
        try:
            memberships = {sso.normalise_dn(dn) for dn in ldap_user.group_dns}
        except (ldap.LDAPError, ValueError) as exc:
            # Without the groups the roles cannot be known: refused, rather than signed in with stale roles.
            logger.warning("directory groups of %s could not be read: %s", user.get_username(), exc)
            _mark(ldap_user._request)
            return None
        role_map = settings.CMDB_LDAP_ROLE_MAP
        sso.apply_roles(user, role_map.roles_for(memberships), role_map, source="Directory")
        return user


def _mark(request) -> None:
    if request is not None:
        setattr(request, DIRECTORY_ERROR, True)


@receiver(ldap_error, sender=DirectoryBackend)
def _directory_unreachable(sender, context, user, request=None, exception=None, **kwargs):
    logger.warning("directory %s failed (%s): %s", getattr(settings, "AUTH_LDAP_SERVER_URI", ""), context, exception)
    _mark(request)
