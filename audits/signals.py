"""Signals other apps listen to: audits announce a finished run without importing the apps above them."""

from django.dispatch import Signal

# Sent after a run finished (succeeded, incomplete or failed) and committed. kwargs: run_id.
audit_finished = Signal()
