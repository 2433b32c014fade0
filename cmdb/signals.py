"""Signals other apps listen to, so that cmdb never imports them."""

from django.dispatch import Signal

# Sent after a sync committed a new index. kwargs: previous (sha or None), current (sha).
index_updated = Signal()
