"""Signals other apps listen to: change control announces a release without importing the apps above it."""

from django.dispatch import Signal

# Sent after a change request was released to main and the transaction committed. kwargs: change_id.
change_released = Signal()

# Sent when an entry of the change record is written, inside the transaction that writes it (a
# rolled-back action announces nothing). kwargs: event (the ChangeEvent). Receivers must not raise.
event_recorded = Signal()
