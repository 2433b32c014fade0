"""Browser pages of standing change windows, next to the freeze periods: everyone reads, staff write.

Thin like ``changes.views``: the form validates, ``changes.windows`` decides and records; a refusal
re-renders the page with the service's message and status.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST, require_safe

from changes import impact, permissions, services, windows
from changes.forms import WindowForm
from changes.models import ChangeWindow, portal_time
from portal.listing import form_error


def _page(request: HttpRequest, *, form: WindowForm | None = None, error: str = "", status: int = 200) -> HttpResponse:
    rows = list(ChangeWindow.objects.order_by("environment", "start", "pk"))
    now = timezone.now()
    by_environment: dict[str, list[ChangeWindow]] = {}
    for window in rows:
        by_environment.setdefault(window.environment, []).append(window)
    can_manage = permissions.is_staff(request.user)
    return render(request, "changes/window_list.html", {
        "by_environment": by_environment,
        "open_now": {w.pk for w in rows if w.contains(now)},
        "now_local": portal_time(now),
        "time_zone": timezone.get_default_timezone_name(),
        "can_manage": can_manage,
        "form": form or WindowForm(auto_id="window_%s"),
        # Only a staff member fills the form: others need not pay for the suggestions.
        "environments": sorted(impact.known_environments()) if can_manage else [],
        "error": error,
    }, status=status)


@require_safe
def window_list(request: HttpRequest) -> HttpResponse:
    return _page(request)


@require_POST
def window_create(request: HttpRequest) -> HttpResponse:
    form = WindowForm(request.POST, auto_id="window_%s")
    try:
        if not permissions.is_staff(request.user):
            raise services.ChangeForbidden(windows.STAFF_ONLY)
        if not form.is_valid():
            return _page(request, form=form, error=form_error(form), status=400)
        window = windows.window_create(acting_user=request.user, **form.cleaned_data)
    except services.ChangeError as exc:
        return _page(request, form=form, error=str(exc), status=exc.status)
    messages.success(request, f"{window.environment} has a new standing window: {window.describe()}.")
    return redirect("changes:window_list")


@require_POST
def window_delete(request: HttpRequest, pk: int) -> HttpResponse:
    window = get_object_or_404(ChangeWindow, pk=pk)
    try:
        windows.window_delete(window=window, acting_user=request.user)
    except services.ChangeError as exc:
        return _page(request, error=str(exc), status=exc.status)
    messages.success(request, f"The window {window} was removed.")
    return redirect("changes:window_list")
