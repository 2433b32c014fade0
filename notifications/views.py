"""Browser pages of notifications, mounted at ``/notifications/`` (staff only: every view asks the
service, which refuses others with a 403 through the refusal page)."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from notifications import permissions, services
from notifications.forms import TargetForm
from notifications.models import Delivery, Target
from portal.errors import Forbidden, NotFound
from portal.listing import form_error

DELIVERIES_PER_PAGE = 50


def _staff(request) -> None:
    if not permissions.can_manage(request.user):
        raise Forbidden(permissions.DENIAL)


@require_GET
def target_list(request):
    _staff(request)
    targets = Target.objects.all()
    return render(request, "notifications/target_list.html", {"targets": targets})


@require_http_methods(["GET", "POST"])
def target_create(request):
    _staff(request)
    form = TargetForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        try:
            target = services.target_create(acting_user=request.user, **data)
        except services.NotificationError as exc:
            form.add_error(None, str(exc))
        else:
            return _saved(request, target, generated=target.kind == Target.Kind.WEBHOOK and not data.get("secret"))
    return render(request, "notifications/target_form.html", {"form": form, "target": None,
                                                              "error": form_error(form) if form.errors else ""},
                  status=400 if form.errors else 200)


@require_http_methods(["GET", "POST"])
def target_edit(request, pk: int):
    target = services.target_get(acting_user=request.user, pk=pk)
    form = TargetForm(request.POST or None, target=target)
    if request.method == "POST" and form.is_valid():
        old_secret = target.secret
        try:
            target = services.target_update(acting_user=request.user, target=target, **form.cleaned_data)
        except services.NotificationError as exc:
            form.add_error(None, str(exc))
        else:
            generated = target.kind == Target.Kind.WEBHOOK and target.secret != old_secret and \
                not form.cleaned_data.get("secret")
            return _saved(request, target, generated=generated)
    return render(request, "notifications/target_form.html", {"form": form, "target": target,
                                                              "error": form_error(form) if form.errors else ""},
                  status=400 if form.errors else 200)


def _saved(request, target: Target, *, generated: bool):
    """A secret the portal generated is shown in this answer only (never stored in a message or a
    cookie, never shown again): the receiver's owner copies it now."""
    if not generated:
        messages.success(request, f"Target {target.name} saved.")
        return redirect(target)
    page = Paginator(target.deliveries.all(), DELIVERIES_PER_PAGE).get_page(1)
    return render(request, "notifications/target_detail.html", {"target": target, "page": page,
                                                                "new_secret": target.secret})


@require_GET
def target_detail(request, pk: int):
    """The target and its delivery log, newest first."""
    target = services.target_get(acting_user=request.user, pk=pk)
    page = Paginator(target.deliveries.all(), DELIVERIES_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "notifications/target_detail.html", {"target": target, "page": page})


@require_POST
def target_delete(request, pk: int):
    target = services.target_get(acting_user=request.user, pk=pk)
    services.target_delete(acting_user=request.user, target=target)
    messages.success(request, f"Target {target.name} deleted.")
    return redirect("notifications:target_list")


@require_POST
def target_test(request, pk: int):
    target = services.target_get(acting_user=request.user, pk=pk)
    delivery = services.delivery_send_test(acting_user=request.user, target=target)
    return redirect("notifications:delivery_detail", pk=delivery.pk)


@require_GET
def delivery_detail(request, pk: int):
    """One delivery; refreshes itself until it is sent or given up (the *send test* outcome)."""
    _staff(request)
    delivery = Delivery.objects.select_related("target").filter(pk=pk).first()
    if delivery is None:
        raise NotFound("No such delivery.")
    template = "notifications/_delivery_body.html" if getattr(request, "htmx", False) else \
        "notifications/delivery_detail.html"
    return render(request, template, {"delivery": delivery, "target": delivery.target})
