"""How a refused action reaches the browser: one page, with the service's message and status."""

from __future__ import annotations

from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme

from portal.errors import ServiceError


class RefusalMiddleware:
    """Views let a :class:`~portal.errors.ServiceError` propagate; this renders it as the refusal page
    (the message, the status, a link back to the page the action came from) instead of a 500."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, ServiceError) or request.path.startswith("/api/"):
            return None
        back = request.headers.get("referer", "")
        if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()},
                                               require_https=request.is_secure()):
            back = ""
        template = "refused_partial.html" if getattr(request, "htmx", False) else "refused.html"
        return render(request, template, {"error": str(exception), "status": exception.status, "back": back},
                      status=exception.status)
