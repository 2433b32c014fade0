"""Sign-in plumbing shared by every app: the sign-in page (with the methods configured) and the page
shown while django-axes locks a login out."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.shortcuts import render

# Set on the request by portal.auth_ldap when the directory could not be asked.
DIRECTORY_ERROR = "_cm_directory_error"


def locked_out(request, original_response=None, credentials=None):
    """django-axes' lockout response: a page that says why and for how long (429, with Retry-After)."""
    minutes = settings.CMDB_LOGIN_COOLOFF_MINUTES
    response = render(request, "registration/locked_out.html", {
        "minutes": minutes, "failure_limit": settings.AXES_FAILURE_LIMIT,
    }, status=429)
    response["Retry-After"] = str(minutes * 60)
    return response


class SignInForm(AuthenticationForm):
    """Django's sign-in form, which also says when the directory could not be asked (rather than
    "wrong password", which would send people to reset a password that is fine)."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "directory_unreachable": "The directory could not be reached, so directory accounts cannot sign in "
                                 "right now. Try again later; local accounts still work.",
    }

    def get_invalid_login_error(self):
        if getattr(self.request, DIRECTORY_ERROR, False):
            return ValidationError(self.error_messages["directory_unreachable"], code="directory_unreachable")
        return super().get_invalid_login_error()


def sign_in_methods() -> dict:
    """What the sign-in page offers: the form always (local accounts, and directory accounts when
    LDAP is configured), a button per OpenID provider."""
    return {
        "directory": bool(getattr(settings, "AUTH_LDAP_SERVER_URI", "")),
        "oidc_provider": getattr(settings, "CMDB_OIDC_PROVIDER_NAME", "") if getattr(settings, "OIDC_RP_CLIENT_ID", "") else "",
    }


class SignInView(LoginView):
    authentication_form = SignInForm

    def get_context_data(self, **kwargs):
        context = {**super().get_context_data(**kwargs), **sign_in_methods()}
        context["directory_unreachable"] = context["form"].has_error(NON_FIELD_ERRORS, "directory_unreachable")
        return context
