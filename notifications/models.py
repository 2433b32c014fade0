"""Notification targets (where staff want to hear of events) and the delivery log of each.

A :class:`Delivery` is one event for one target. ``(target, dedupe_key)`` is unique, so an event raised
twice (a retried task, a replayed signal, a beat task run twice) is delivered once per target.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone


class Event(models.TextChoices):
    CR_SUBMITTED = "cr-submitted", "change request submitted (awaits the approvers)"
    CR_APPROVED = "cr-approved", "change request approved"
    CR_REJECTED = "cr-rejected", "change request rejected"
    CR_IMPLEMENTED = "cr-implemented", "change request released to main"
    DEPLOY_FINISHED = "deploy-finished", "deploy finished"
    DEPLOY_FAILED = "deploy-failed", "deploy failed"
    DEPLOY_HALTED = "deploy-halted", "deploy halted"
    VERIFICATION_FAILED = "verification-failed", "verification failed"
    AUDIT_DRIFT = "audit-drift", "audit finished with new drift (one digest per run)"
    CHECKS_OVERDUE = "checks-overdue", "manual checks overdue"
    UNAUTHORIZED_COMMIT = "unauthorized-commit", "unauthorized commit on main"
    SYNC_FAILING = "sync-failing", "sync failing"


TEST_EVENT = "test"


def new_secret() -> str:
    return secrets.token_urlsafe(32)


class Target(models.Model):
    class Kind(models.TextChoices):
        EMAIL = "email", "e-mail"
        WEBHOOK = "webhook", "generic webhook (HMAC-SHA256 signed)"
        SLACK = "slack", "Slack (incoming webhook)"
        MATTERMOST = "mattermost", "Mattermost (incoming webhook)"
        TEAMS = "teams", "Microsoft Teams (incoming webhook)"
        MATRIX = "matrix", "Matrix (room message)"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    # Webhook kinds: the URL to POST to (Slack's and Teams' URLs are themselves secrets). Matrix: the
    # homeserver's base URL. E-mail: unused.
    url = models.URLField(max_length=2000, blank=True)
    addresses = models.JSONField(default=list, blank=True, help_text="E-mail: the recipients")
    # Generic webhook: the HMAC key; Matrix: the access token. Never shown back in full.
    secret = models.CharField(max_length=500, blank=True)
    room = models.CharField(max_length=255, blank=True, help_text="Matrix: the room id (!abc:example.org)")
    events = models.JSONField(default=list, blank=True, help_text="The event kinds this target hears of")
    environments = models.JSONField(default=list, blank=True, help_text="Empty: every environment")
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("notifications:target_detail", kwargs={"pk": self.pk})

    @property
    def secret_masked(self) -> str:
        return mask(self.secret)

    @property
    def url_masked(self) -> str:
        """The URL without its path and query: incoming-webhook URLs carry their token in the path."""
        return mask_url(self.url)

    def wants(self, event: str, environments: list[str]) -> bool:
        """Whether this target hears of ``event`` in ``environments`` (an event of no environment, such
        as a failing sync, reaches every target that chose its kind)."""
        if not self.enabled or (event != TEST_EVENT and event not in self.events):
            return False
        return not self.environments or not environments or bool(set(self.environments) & set(environments))


def mask(value: str) -> str:
    if not value:
        return ""
    return "•" * 8 + (value[-4:] if len(value) >= 16 else "")


def mask_url(url: str) -> str:
    from urllib.parse import urlsplit

    if not url:
        return ""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "•" * 8
    host = parts.hostname or ""
    if port:
        host = f"{host}:{port}"
    return f"{parts.scheme}://{host}/…" if parts.path not in ("", "/") or parts.query else f"{parts.scheme}://{host}/"


class Delivery(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued"
        SENDING = "sending"
        SENT = "sent"
        FAILED = "failed", "failed (will retry)"
        GAVE_UP = "gave-up", "gave up"

    FINISHED_STATES = (State.SENT, State.GAVE_UP)

    target = models.ForeignKey(Target, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=40, db_index=True)
    dedupe_key = models.CharField(max_length=255)
    environments = models.JSONField(default=list, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=20, choices=State.choices, default=State.QUEUED, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    http_status = models.PositiveIntegerField(null=True, blank=True)
    # A worker sending this delivery holds it until then; another delivery of the task waits its turn.
    locked_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["target", "dedupe_key"], name="one_delivery_per_target_event")]

    def __str__(self) -> str:
        return f"{self.event} to {self.target_id} ({self.state})"

    @property
    def is_finished(self) -> bool:
        return self.state in self.FINISHED_STATES
