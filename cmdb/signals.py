"""Signals other apps listen to: cmdb announces a new index without importing the apps built on it."""

from django.dispatch import Signal

# Sent after a sync committed a new index. kwargs: previous (sha or None), current (sha).
index_updated = Signal()

# Sent after a sync failed and its failure was recorded (the previous index is kept). kwargs: run_id, error.
sync_failed = Signal()
