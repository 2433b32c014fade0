"""Verification, the end of change control: did the release land? A verified change request needs a
passed verification (written by the release process when its audit ends), or an override with a
reason, recorded."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from changes.models import ChangeRequest
from changes.services import ChangeConflict, ChangeError, State, _check, _event, _locked, _simple


def change_verify(*, change: ChangeRequest, acting_user, comment: str = "", override: bool = False) -> ChangeRequest:
    """Confirm the release landed: needs a passed verification, or ``override`` with a reason (recorded)."""
    _check("verify", change, acting_user)  # who and which state first: their refusals say more
    passed = (change.verification or {}).get("state") == "passed"
    if not passed and override and not comment.strip():
        raise ChangeError("Give the reason for verifying without a passed verification.")
    if not passed and not override:
        state = (change.verification or {}).get("state") or "not started"
        raise ChangeConflict(f"The verification is {state}: the release has not been shown to have landed. "
                             "Verify with an override and a reason if you checked it otherwise.")
    if not passed:
        with transaction.atomic():
            _check("verify", _locked(change), acting_user)
            _event(change, acting_user, "verification-overridden", comment,
                   verification=(change.verification or {}).get("state", ""))
            return _simple(change, acting_user, "verify", State.VERIFIED, "verified", comment)
    return _simple(change, acting_user, "verify", State.VERIFIED, "verified", comment)


def change_set_verification(*, change: ChangeRequest, state: str, audit: int | None = None,
                            findings: list | None = None, manual: list | None = None, note: str = "") -> ChangeRequest:
    """Record whether a release landed (the deploys app calls this when a verification audit ends)."""
    with transaction.atomic():
        change = _locked(change)
        change.verification = {"state": state, "audit": audit, "findings": findings or [], "manual": manual or [],
                               "note": note, "at": timezone.now().isoformat()}
        change.save(update_fields=["verification", "updated_at"])
        if state != "pending":
            _event(change, None, f"verification-{state}", note or f"Verification {state}"
                   + (f" (audit #{audit})" if audit else ""), audit=audit, findings=len(findings or []))
    return change
