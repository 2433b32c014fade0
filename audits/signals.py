"""Signals other apps listen to: audits announce a finished run without importing the apps above them."""

from django.dispatch import Signal

# Sent after a run finished (succeeded, incomplete or failed) and committed. kwargs: run_id.
audit_finished = Signal()

# Sent after a person recorded a manual check and the transaction committed. kwargs: run_id, check_id.
manual_check_recorded = Signal()
