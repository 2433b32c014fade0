"""The profile page: who you are, your roles, and your personal API tokens.

Refusals propagate to :class:`portal.middleware.RefusalMiddleware`."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import forms, services
from accounts.models import ApiToken
from portal import roles
from portal.errors import Forbidden, ServiceError
from portal.listing import form_error

TOKENS_PER_PAGE = 50


def _roles(user) -> list[str]:
    names = [name for name, check in (("requester", roles.is_requester), ("approver", roles.is_approver))
             if check(user)]
    return (["staff"] if user.is_staff else []) + names or ["viewer"]


@require_http_methods(["GET", "POST"])
def profile(request):
    form = forms.TokenForm(request.POST or None)
    created = None
    error = ""
    status = 400 if request.method == "POST" and not form.is_valid() else 200
    if request.method == "POST":
        if form.is_valid():
            try:
                created = services.token_create(acting_user=request.user, owner=request.user,
                                                name=form.cleaned_data["name"], expires_at=form.expires_at())
                form = forms.TokenForm()
            except ServiceError as exc:  # the form again, with what was typed
                error, status = str(exc), exc.status
        else:
            error = form_error(form)
    tokens = services.tokens_visible_to(request.user).filter(user=request.user)
    # The new key is in this response only (no redirect, no session): reloading cannot show it again.
    response = render(request, "accounts/profile.html", {
        "form": form, "created": created, "tokens": tokens, "roles": _roles(request.user), "error": error,
    }, status=status)
    if created:
        response["Cache-Control"] = "no-store"
    return response


@require_POST
def token_revoke(request, pk: int):
    token = get_object_or_404(ApiToken.objects.select_related("user"), pk=pk)
    services.token_revoke(acting_user=request.user, token=token)
    messages.success(request, f"Token “{token.name}” revoked; requests with it now get 401.")
    if token.user_id != request.user.pk:
        return redirect("accounts:token_list")
    return redirect("accounts:profile")


@require_GET
def token_list(request):
    """Every user's tokens, for staff: find and revoke a leaked or forgotten one."""
    if not request.user.is_staff:
        raise Forbidden("Only staff can see everyone's tokens; yours are on your profile page.")
    tokens = services.tokens_visible_to(request.user)
    state = request.GET.get("state", "")
    if state == "active":
        tokens = tokens.filter(revoked_at__isnull=True)
    page = Paginator(tokens, TOKENS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "accounts/token_list.html", {"page": page, "state": state})
