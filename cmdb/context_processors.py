"""Template context shared by every page: the indexed commit and the state of the last sync."""

from cmdb.models import SyncState


def repository(request):
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    state = SyncState.objects.select_related("indexed_commit").filter(pk=1).first()
    return {"sync_state": state}
