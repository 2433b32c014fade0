"""Notification workflows: staff manage targets; events raised by the other apps' signals become one
:class:`Delivery` per interested target, written in the transaction of the action that caused them
and sent by Celery after it commits (a rolled-back action notifies nobody).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from changes import services as change_services
from notifications import permissions, senders
from notifications.models import TEST_EVENT, Delivery, Event, Target, new_secret
from portal.errors import Forbidden, NotFound, ServiceError

log = logging.getLogger(__name__)

FIELDS = ("name", "kind", "url", "addresses", "secret", "room", "events", "environments", "enabled")


class NotificationError(ServiceError):
    status = 400


def _require_staff(user) -> None:
    if not permissions.can_manage(user):
        raise Forbidden(permissions.DENIAL)


def _clean(target: Target) -> None:
    """What each kind needs; raised as one message fit for the form and the API."""
    unknown = sorted(set(target.events) - set(Event.values))
    if unknown:
        raise NotificationError(f"Unknown event(s): {', '.join(unknown)}.")
    if not target.name.strip():
        raise NotificationError("A target needs a name.")
    if target.kind not in Target.Kind.values:
        raise NotificationError(f"Unknown kind {target.kind!r}.")
    if target.kind == Target.Kind.EMAIL:
        if not target.addresses:
            raise NotificationError("An e-mail target needs at least one address.")
        return
    problem = senders.url_problem(target.url)
    if problem:
        raise NotificationError(problem)
    if target.kind == Target.Kind.MATRIX and not (target.room and target.secret):
        raise NotificationError("A Matrix target needs a room id and an access token.")


def target_create(*, acting_user, **fields) -> Target:
    """Create a target; a generic webhook without a secret gets a generated one."""
    _require_staff(acting_user)
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise NotificationError(f"Cannot set {', '.join(sorted(unknown))}.")
    target = Target(created_by=acting_user, **fields)
    if target.kind == Target.Kind.WEBHOOK and not target.secret:
        target.secret = new_secret()
    _clean(target)
    with transaction.atomic():
        if Target.objects.filter(name=target.name).exists():
            raise NotificationError(f"A target named {target.name!r} exists already.")
        target.save()
        change_services.record_event(actor=acting_user, action="notification-target-created",
                                     message=f"Notification target {target.name} ({target.kind})", target=target.pk)
    return target


def target_update(*, acting_user, target: Target, **fields) -> Target:
    """Change a target; an empty ``secret`` or ``url`` keeps the stored one (forms never show them back)."""
    _require_staff(acting_user)
    unknown = set(fields) - set(FIELDS) - {"regenerate_secret"}
    if unknown:
        raise NotificationError(f"Cannot set {', '.join(sorted(unknown))}.")
    regenerate = fields.pop("regenerate_secret", False)
    with transaction.atomic():
        target = Target.objects.select_for_update().get(pk=target.pk)
        for kept in ("secret", "url"):  # never shown back, so an empty value means "keep"
            if not fields.get(kept, "x"):
                fields.pop(kept)
        for key, value in fields.items():
            setattr(target, key, value)
        if regenerate or (target.kind == Target.Kind.WEBHOOK and not target.secret):
            target.secret = new_secret()
        _clean(target)
        if Target.objects.filter(name=target.name).exclude(pk=target.pk).exists():
            raise NotificationError(f"A target named {target.name!r} exists already.")
        target.save()
        change_services.record_event(actor=acting_user, action="notification-target-edited",
                                     message=f"Notification target {target.name}: {', '.join(sorted(fields)) or '-'}"
                                     + (" (secret regenerated)" if regenerate else ""), target=target.pk)
    return target


def target_delete(*, acting_user, target: Target) -> None:
    _require_staff(acting_user)
    with transaction.atomic():
        change_services.record_event(actor=acting_user, action="notification-target-deleted",
                                     message=f"Notification target {target.name} deleted", target=target.pk)
        target.delete()


def target_get(*, acting_user, pk: int) -> Target:
    _require_staff(acting_user)
    target = Target.objects.filter(pk=pk).first()
    if target is None:
        raise NotFound("No such notification target.")
    return target


# --- raising events --------------------------------------------------------------------------------
def event_raise(*, event: str, dedupe_key: str, title: str, text: str = "", url: str = "",
                environments: Iterable[str] = (), data: dict | None = None) -> list[Delivery]:
    """One delivery per interested target, in the caller's transaction; each is sent after it commits.

    ``dedupe_key`` names the happening (``cr-approved:12:…``, ``audit-drift:7``): a target that had
    it already gets nothing. Never raises: a notification problem must not undo the action that
    caused it (its savepoint is rolled back and the problem logged).
    """
    envs = sorted(set(environments))
    payload = {"event": event, "title": title, "text": text, "url": absolute(url), "environments": envs,
               "data": data or {}, "at": timezone.now().isoformat()}
    created: list[Delivery] = []
    try:
        with transaction.atomic():
            for target in Target.objects.filter(enabled=True):
                if not target.wants(event, envs):
                    continue
                try:
                    with transaction.atomic():
                        created.append(Delivery.objects.create(target=target, event=event, dedupe_key=dedupe_key[:255],
                                                               environments=envs, payload=payload))
                except IntegrityError:
                    continue  # this target had this event already
    except Exception:  # noqa: BLE001 - see the docstring
        log.exception("notification %s (%s) could not be queued", event, dedupe_key)
        return []
    ids = [d.pk for d in created]
    if ids:
        transaction.on_commit(lambda: _queue(ids))
    return created


def _queue(ids: list[int]) -> None:
    from notifications import tasks

    for pk in ids:
        try:
            tasks.delivery_send.delay(pk)
        except Exception:  # noqa: BLE001 - a broker outage must not fail the committed action
            log.exception("delivery %s could not be queued", pk)


def absolute(url: str) -> str:
    if not url or url.startswith(("http://", "https://")):
        return url
    return settings.CMDB_PUBLIC_URL.rstrip("/") + url


def delivery_send_test(*, acting_user, target: Target) -> Delivery:
    """The *send test* button: a test delivery to this target only, sent like any other."""
    _require_staff(acting_user)
    with transaction.atomic():
        delivery = Delivery.objects.create(
            target=target, event=TEST_EVENT, dedupe_key=f"test:{uuid.uuid4()}",
            payload={"event": TEST_EVENT, "title": f"Test notification from the CM portal to {target.name}",
                     "text": f"Sent by {acting_user.get_username()} to check this target.",
                     "url": absolute("/notifications/"), "environments": [], "data": {},
                     "at": timezone.now().isoformat()},
        )
        pk = delivery.pk
        transaction.on_commit(lambda: _queue([pk]))
    return delivery


# --- sending (called by the task) ------------------------------------------------------------------
def delivery_claim(*, delivery_id: int) -> Delivery | None:
    """Take a delivery for one attempt; None when it is sent, given up, or held by another worker."""
    now = timezone.now()
    lease = now + timedelta(seconds=2 * settings.CMDB_NOTIFY_TIMEOUT + 30)
    with transaction.atomic():
        delivery = (Delivery.objects.select_for_update().select_related("target")
                    .filter(pk=delivery_id).first())
        if delivery is None or delivery.is_finished:
            return None
        if delivery.locked_until and delivery.locked_until > now:
            return None
        delivery.state, delivery.locked_until = Delivery.State.SENDING, lease
        delivery.attempts += 1
        delivery.save(update_fields=["state", "locked_until", "attempts"])
    return delivery


def delivery_attempt(*, delivery_id: int) -> tuple[Delivery | None, bool]:
    """One attempt at sending; (delivery, retry?) — retry is True when a later attempt may succeed."""
    delivery = delivery_claim(delivery_id=delivery_id)
    if delivery is None:
        return None, False
    try:
        status = senders.send(delivery.target, delivery)
    except senders.DeliveryFailed as exc:
        last = delivery.attempts >= settings.CMDB_NOTIFY_MAX_ATTEMPTS or not exc.retry
        state = Delivery.State.GAVE_UP if last else Delivery.State.FAILED
        Delivery.objects.filter(pk=delivery.pk).update(state=state, last_error=str(exc)[:2000],
                                                       http_status=exc.status, locked_until=None)
        log.warning("notification %s to %s: attempt %d failed: %s", delivery.dedupe_key, delivery.target.name,
                    delivery.attempts, exc)
        delivery.refresh_from_db()
        return delivery, not last
    Delivery.objects.filter(pk=delivery.pk).update(state=Delivery.State.SENT, http_status=status, last_error="",
                                                   sent_at=timezone.now(), locked_until=None)
    delivery.refresh_from_db()
    return delivery, False
