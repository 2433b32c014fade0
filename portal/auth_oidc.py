"""OpenID Connect sign-in: the only module that talks to the OpenID provider (mozilla-django-oidc).

Users are matched by the username claim (``CMDB_OIDC_USERNAME_CLAIM``), created without a password,
and their roles are re-applied from the groups claim at every login (``portal.sso.apply_roles``).
When the provider refuses (the user cancels, an error comes back) or cannot be reached, the browser
lands on one page that says which, never on a 500.
"""

from __future__ import annotations

import logging
from functools import wraps

import jwt
import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import SuspiciousOperation
from django.http import Http404
from django.shortcuts import render
from django.urls import path, reverse
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from portal import sso

logger = logging.getLogger(__name__)

FAILURE = "cm_sso_failure"  # session key: why the last OIDC sign-in failed, shown once


class ProviderBackend(OIDCAuthenticationBackend):
    def authenticate(self, request, **kwargs):
        try:
            return super().authenticate(request, **kwargs)
        except requests.RequestException as exc:
            # Unreachable, timed out, or an error status from the token, keys or userinfo endpoint.
            logger.warning("OpenID provider failed: %s", exc)
            _fail(request, f"{settings.CMDB_OIDC_PROVIDER_NAME} could not be reached or answered with an error.")
        except SuspiciousOperation as exc:
            logger.warning("OpenID sign-in refused: %s", exc)
            _fail(request, "The answer of the provider could not be verified.")
        return None

    def get_user(self, user_id):
        user = super().get_user(user_id)
        # As ModelBackend does: deactivating an account in the admin ends its open sessions.
        return user if user is not None and user.is_active else None

    def verify_token(self, token, **kwargs):
        try:
            payload = super().verify_token(token, **kwargs)
        except (jwt.PyJWTError, ValueError, KeyError, TypeError) as exc:  # expired, malformed, missing
            raise SuspiciousOperation(f"ID token not valid: {exc}") from exc
        # mozilla-django-oidc leaves the audience unchecked: a token the provider issued to another
        # of its clients is not a sign-in to the portal.
        audience = payload.get("aud")
        if settings.OIDC_RP_CLIENT_ID not in (audience if isinstance(audience, list) else [audience]):
            raise SuspiciousOperation("ID token issued to another client")
        return payload

    def _username(self, claims) -> str:
        value = claims.get(settings.CMDB_OIDC_USERNAME_CLAIM)
        return value.strip() if isinstance(value, str) else ""

    def verify_claims(self, claims):
        if not self._username(claims):
            _fail(self.request, f"The provider sent no {settings.CMDB_OIDC_USERNAME_CLAIM!r} claim.")
            return False
        return True

    def filter_users_by_claims(self, claims):
        return get_user_model().objects.filter(username__iexact=self._username(claims))

    def create_user(self, claims):
        user = get_user_model()(username=self._username(claims)[:150])
        user.set_unusable_password()
        return self.update_user(user, claims)

    def update_user(self, user, claims):
        if user.pk and user.has_usable_password():
            # A local account (break-glass staff) is never taken over by a provider's account.
            _fail(self.request, f"{user.get_username()} is a local account: sign in with its password.")
            return None
        user.email = str(claims.get("email") or "")[:254]
        user.first_name = str(claims.get("given_name") or "")[:150]
        user.last_name = str(claims.get("family_name") or "")[:150]
        user.save()
        groups = claims.get(settings.CMDB_OIDC_GROUPS_CLAIM) or []
        if isinstance(groups, str):
            groups = [groups]
        memberships = {str(g) for g in groups} if isinstance(groups, list) else set()
        role_map = settings.CMDB_OIDC_ROLE_MAP
        sso.apply_roles(user, role_map.roles_for(memberships), role_map, source=settings.CMDB_OIDC_PROVIDER_NAME)
        return user


def _fail(request, reason: str) -> None:
    if request is not None and hasattr(request, "session"):
        request.session[FAILURE] = reason


class CallbackView(OIDCAuthenticationCallbackView):
    @property
    def failure_url(self):
        return reverse("sso_failed")

    def get(self, request):
        if request.GET.get("error"):
            description = request.GET.get("error_description") or request.GET["error"]
            _fail(request, f"{settings.CMDB_OIDC_PROVIDER_NAME} refused the sign-in: {description[:200]}")
        try:
            response = super().get(request)
        except SuspiciousOperation:
            # A callback this browser did not start (an old tab, a replayed link).
            _fail(request, "This sign-in was not started here, or it expired: start again.")
            return self.login_failure()
        if FAILURE not in request.session and not request.user.is_authenticated:
            _fail(request, f"{settings.CMDB_OIDC_PROVIDER_NAME} did not sign you in.")
        return response


def failed(request):
    reason = request.session.pop(FAILURE, "") or f"{settings.CMDB_OIDC_PROVIDER_NAME} did not sign you in."
    return render(request, "registration/sso_failed.html", {
        "reason": reason, "provider": settings.CMDB_OIDC_PROVIDER_NAME,
    }, status=403)


def configured(view):
    """Without CMDB_OIDC_CLIENT_ID these pages do not exist (and reading the unset OIDC_* settings
    would be a 500)."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not getattr(settings, "OIDC_RP_CLIENT_ID", ""):
            raise Http404("OpenID Connect is not configured.")
        return view(request, *args, **kwargs)

    return login_not_required(wrapper)


urlpatterns = [
    path("authenticate/", configured(OIDCAuthenticationRequestView.as_view()), name="oidc_authentication_init"),
    path("callback/", configured(CallbackView.as_view()), name="oidc_authentication_callback"),
    path("failed/", configured(failed), name="sso_failed"),
]
