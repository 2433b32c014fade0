"""Helpers for the change-control browser-UI tests (plain functions; fixtures are in conftest.py)."""

from __future__ import annotations

import re
import subprocess

from django.conf import settings
from django.middleware.csrf import CSRF_ALLOWED_CHARS
from django.urls import reverse
from django.utils.crypto import get_random_string

from changes import services, verification
from changes.models import ChangeEvent, ChangeRequest

_ACTION_ATTR = re.compile(r'data-action="([a-z_]+)"')


def post(client, url: str, data: dict | None = None):
    """POST like a browser does: the CSRF cookie and the same token in the form (the client enforces CSRF)."""
    token = client.cookies.get(settings.CSRF_COOKIE_NAME)
    if token is None or not token.value:
        secret = get_random_string(32, CSRF_ALLOWED_CHARS)
        client.cookies[settings.CSRF_COOKIE_NAME] = secret
    else:
        secret = token.value
    return client.post(url, {**(data or {}), "csrfmiddlewaretoken": secret})


def action_url(change: ChangeRequest, action: str) -> str:
    return reverse("changes:change_action", kwargs={"pk": change.pk, "action": action})


def buttons(response) -> set[str]:
    """The actions a page offers (each form, button or link carries ``data-action``)."""
    return set(_ACTION_ATTR.findall(response.content.decode())) - {"review"}


def events(change: ChangeRequest) -> list[str]:
    return list(ChangeEvent.objects.filter(change=change).values_list("action", flat=True))


def origin_head(repo, ref: str = "main") -> str:
    return subprocess.run(["git", "-C", str(repo.origin), "rev-parse", ref], capture_output=True, text=True,
                          check=True).stdout.strip()


def in_state(change: ChangeRequest, state: str, *, approver=None, staff=None) -> ChangeRequest:
    """Walk a fresh draft to ``state`` through the services (the record is written as in real use)."""
    State = ChangeRequest.State
    if state == State.DRAFT:
        return change
    change = services.change_submit(change=change, acting_user=change.requester)
    if state == State.SUBMITTED:
        return change
    if state == State.REJECTED:
        return services.change_reject(change=change, acting_user=approver, comment="no")
    change = services.change_approve(change=change, acting_user=approver)
    assert change.state == State.APPROVED, "in_state() walks changes that need one approval"
    if state == State.APPROVED:
        return change
    if state == State.WITHDRAWN:
        return services.change_withdraw(change=change, acting_user=change.requester)
    change = services.change_implement(change=change, acting_user=staff)
    if state == State.IMPLEMENTED:
        return change
    change = verification.change_verify(change=change, acting_user=change.requester, override=True,
                                    comment="checked by hand (no verification audit here)")
    if state == State.VERIFIED:
        return change
    return services.change_close(change=change, acting_user=change.requester)
