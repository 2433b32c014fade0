"""Standing change windows: the staff's writes (``window_create``, ``window_delete``), each recorded.

The rules that use the windows are methods of the models (``ChangeRequest.release_window_problem``,
``ChangeRequest.schedule_window_problem``), so any release path can ask them; these are the
services of the windows themselves, kept out of ``changes.services`` (the change-request workflows),
whose conventions they follow: keyword-only, permission first, one transaction with its record event.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import time

from django.core.exceptions import ValidationError
from django.db import transaction

from changes import permissions
from changes.models import ChangeWindow
from changes.services import ChangeConflict, ChangeError, ChangeForbidden, record_event

STAFF_ONLY = "Only staff may manage standing change windows."


def window_create(*, acting_user, environment: str, weekdays: Iterable[int], start: time, end: time,
                  note: str = "") -> ChangeWindow:
    """Give ``environment`` a standing window (every week on ``weekdays``, start..end, portal time)."""
    if not permissions.is_staff(acting_user):
        raise ChangeForbidden(STAFF_ONLY)
    window = ChangeWindow(environment=environment.strip(), weekdays=list(weekdays), start=start, end=end,
                          note=note.strip())
    try:
        window.full_clean()
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise ChangeError(f"{field.replace('_', ' ').capitalize()}: {messages[0]}") from None
    with transaction.atomic():
        window.save()
        record_event(actor=acting_user, action="window-created", message=str(window), window=window.pk,
                     environment=window.environment, weekdays=window.weekdays, start=f"{start:%H:%M}",
                     end=f"{end:%H:%M}", note=window.note)
    return window


def window_delete(*, window: ChangeWindow, acting_user) -> None:
    """Remove a standing window; the record keeps what it was."""
    if not permissions.is_staff(acting_user):
        raise ChangeForbidden(STAFF_ONLY)
    with transaction.atomic():
        deleted, _ = ChangeWindow.objects.filter(pk=window.pk).delete()
        if not deleted:
            raise ChangeConflict("This window was removed already.")
        record_event(actor=acting_user, action="window-deleted", message=str(window), window=window.pk,
                     environment=window.environment)
