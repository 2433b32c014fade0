"""Sign-in plumbing shared by every app: the page shown while django-axes locks a login out."""

from __future__ import annotations

from django.conf import settings
from django.shortcuts import render


def locked_out(request, original_response=None, credentials=None):
    """django-axes' lockout response: a page that says why and for how long (429, with Retry-After)."""
    minutes = settings.CMDB_LOGIN_COOLOFF_MINUTES
    response = render(request, "registration/locked_out.html", {
        "minutes": minutes, "failure_limit": settings.AXES_FAILURE_LIMIT,
    }, status=429)
    response["Retry-After"] = str(minutes * 60)
    return response
